package manifest

import (
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// fastParse reads one YAML document written in the subset nearly every manifest keeps to
// (block mappings and sequences, one-line flow collections, one-line plain and quoted scalars,
// comments; or one flow collection over many lines, as JSON is) straight into the values the
// converter makes of yaml.v3's node tree, and the line of its top node. yaml.v3 and the converter read the generated mesh at 7 MB/s, and that was over
// half of `meshguard lint`'s CPU; this reads it at 50 MB/s, with a quarter of the allocations
// (BenchmarkReadDocument). The fields' lines are needed only for the objects a finding is
// reported on, so Object.FieldLine builds their trees with yaml.v3 when asked.
//
// ok is false for anything outside the subset (anchors, aliases, tags, block scalars, explicit
// keys, merge keys, values over several lines, empty values, tabs, carriage returns, bytes outside
// printable ASCII, document markers) and for what the converter would report (a duplicate key, a
// number out of range): the caller then parses the document with yaml.v3, which stays the
// reference. TestFastParseReadsWhatYAMLv3Reads compares the two on every document of the corpora
// and on mutations of them. v is nil for an empty document.
func fastParse(text []byte) (v any, line int, ok bool) {
	for _, c := range text {
		if c >= 0x7f || (c < ' ' && c != '\n') {
			return nil, 0, false
		}
	}
	p := &fastParser{text: text, str: string(text), line: 1}
	ind, ok := p.nextContent()
	if !ok {
		return nil, 0, false
	}
	if ind < 0 {
		return nil, 0, true // blanks and comments only: an empty document
	}
	p.pos += ind
	line = p.line
	p.multiline = p.at(p.pos) == '{' || p.at(p.pos) == '['
	if v, ok = p.block(ind); !ok || v == nil {
		return nil, 0, false
	}
	if ind, ok = p.nextContent(); !ok || ind >= 0 {
		return nil, 0, false
	}
	return v, line, true
}

// fastMaxDepth bounds nesting; deeper documents (Istio objects nest about ten levels) go to
// yaml.v3, which has its own bound.
const fastMaxDepth = 64

// fastMaxKey stays under yaml.v3's limit on the length of an implicit key (1,024).
const fastMaxKey = 1000

type fastParser struct {
	text  []byte
	str   string // text as a string, so that values are substrings of it rather than copies
	pos   int
	line  int // the line of pos, from 1
	depth int
	tmp   yaml.Node // a plain scalar being resolved
	// multiline is set for a document that is one flow collection, as JSON is: its lines may
	// break between the collections' items.
	multiline bool
}

// at returns the byte at i, or 0 past the end (the text holds no NUL).
func (p *fastParser) at(i int) byte {
	if i < len(p.text) {
		return p.text[i]
	}
	return 0
}

// blankAt says whether i holds a space, a line end or the end of the text.
func (p *fastParser) blankAt(i int) bool {
	c := p.at(i)
	return c == ' ' || c == '\n' || c == 0
}

// nextContent moves from a line start to the start of the next line holding more than blanks
// and a comment, and returns its indentation, or -1 at the end of the text.
func (p *fastParser) nextContent() (int, bool) {
	for {
		i := p.pos
		for i < len(p.text) && p.text[i] == ' ' {
			i++
		}
		switch p.at(i) {
		case 0:
			p.pos = i
			return -1, true
		case '\n':
			p.pos = i + 1
			p.line++
			continue
		case '#':
			p.pos = i
			p.skipLine()
			continue
		}
		ind := i - p.pos
		if ind == 0 && (strings.HasPrefix(p.str[i:], "---") || strings.HasPrefix(p.str[i:], "...")) {
			return 0, false
		}
		return ind, true
	}
}

// skipLine moves past the next line end.
func (p *fastParser) skipLine() {
	i := strings.IndexByte(p.str[p.pos:], '\n')
	if i < 0 {
		p.pos = len(p.text)
		return
	}
	p.pos += i + 1
	p.line++
}

// lineEnd moves past the blanks, an optional comment and the line end that must follow a value.
func (p *fastParser) lineEnd() bool {
	for p.at(p.pos) == ' ' {
		p.pos++
	}
	switch p.at(p.pos) {
	case 0:
		return true
	case '\n':
		p.pos++
		p.line++
		return true
	case '#':
		if p.pos > 0 && p.text[p.pos-1] == ' ' { // a comment only after a blank
			p.skipLine()
			return true
		}
	}
	return false
}

// block parses the node starting at pos, in column ind.
func (p *fastParser) block(ind int) (any, bool) {
	if p.depth++; p.depth > fastMaxDepth {
		return nil, false
	}
	var n any
	var ok bool
	switch {
	case p.at(p.pos) == '-' && p.blankAt(p.pos+1):
		n, ok = p.sequence(ind)
	case p.isKey():
		n, ok = p.mapping(ind)
	default:
		if n, ok = p.inline(); ok {
			ok = p.lineEnd()
		}
	}
	p.depth--
	return n, ok
}

// sequence parses a block sequence whose dashes are in column ind.
func (p *fastParser) sequence(ind int) (any, bool) {
	var s []any
	for {
		p.pos++ // the dash
		col := ind + 1
		for p.at(p.pos) == ' ' {
			p.pos++
			col++
		}
		var item any
		var ok bool
		if c := p.at(p.pos); c == '\n' || c == 0 || c == '#' {
			// The item starts on a later line, deeper than the dash.
			if !p.lineEnd() {
				return nil, false
			}
			next, ok := p.nextContent()
			if !ok || next <= ind {
				return nil, false // an empty item
			}
			p.pos += next
			col = next
		}
		if item, ok = p.block(col); !ok {
			return nil, false
		}
		s = append(s, item)
		next, ok := p.nextContent()
		if !ok || next > ind {
			return nil, false
		}
		if next < ind || p.at(p.pos+ind) != '-' || !p.blankAt(p.pos+ind+1) {
			return s, true
		}
		p.pos += ind
	}
}

// mapping parses a block mapping whose keys are in column ind.
func (p *fastParser) mapping(ind int) (any, bool) {
	m := map[string]any{}
	for {
		k, ok := p.key()
		if !ok {
			return nil, false
		}
		if _, dup := m[k]; dup {
			return nil, false
		}
		v, ok := p.mapValue(ind)
		if !ok {
			return nil, false
		}
		m[k] = v
		next, ok := p.nextContent()
		if !ok || next > ind {
			return nil, false
		}
		if next < ind {
			return m, true
		}
		p.pos += ind
	}
}

// mapValue parses the value after a block mapping key in column ind and its colon.
func (p *fastParser) mapValue(ind int) (any, bool) {
	for p.at(p.pos) == ' ' {
		p.pos++
	}
	switch c := p.at(p.pos); {
	case c == '\n' || c == 0 || c == '#':
		if !p.lineEnd() {
			return nil, false
		}
		next, ok := p.nextContent()
		if !ok {
			return nil, false
		}
		if next > ind {
			p.pos += next
			return p.block(next)
		}
		if next == ind && p.at(p.pos+ind) == '-' && p.blankAt(p.pos+ind+1) {
			// A sequence as indented as its key, as kubectl writes them.
			p.pos += ind
			p.depth++
			s, ok := p.sequence(ind)
			p.depth--
			return s, ok
		}
		return nil, false // an empty value
	case c == '-' && p.blankAt(p.pos+1):
		return nil, false
	}
	n, ok := p.inline()
	return n, ok && p.lineEnd()
}

// isKey says whether the line at pos starts with a mapping key and its colon.
func (p *fastParser) isKey() bool {
	switch c := p.at(p.pos); c {
	case '"', '\'':
		end, ok := p.quotedEnd(p.pos)
		return ok && p.at(end) == ':' && p.blankAt(end+1)
	default:
		if !p.plainStart(p.pos, false) {
			return false
		}
		_, colon := p.plainEnd(p.pos)
		return colon
	}
}

// key parses a block mapping key and its colon.
func (p *fastParser) key() (string, bool) {
	var k string
	var ok bool
	start := p.pos
	switch p.at(p.pos) {
	case '"', '\'':
		if k, ok = p.quoted(); !ok {
			return "", false
		}
	default:
		if !p.plainStart(p.pos, false) {
			return "", false
		}
		end, colon := p.plainEnd(p.pos)
		if !colon {
			return "", false
		}
		if k, ok = p.plainText(p.pos, end); !ok {
			return "", false
		}
	}
	if p.pos-start > fastMaxKey || p.at(p.pos) != ':' || !p.blankAt(p.pos+1) {
		return "", false
	}
	p.pos++
	return k, true
}

// inline parses a value that ends on its line: a flow collection or a scalar.
func (p *fastParser) inline() (any, bool) {
	switch p.at(p.pos) {
	case '[', '{':
		return p.flow()
	case '"', '\'':
		return p.quoted()
	}
	if !p.plainStart(p.pos, false) {
		return nil, false
	}
	end, colon := p.plainEnd(p.pos)
	if colon {
		return nil, false // `a: b: c`
	}
	return p.plain(p.pos, end)
}

// plainStart says whether a plain scalar may start at i: not with an indicator, and with a
// dash only before a character that cannot end it.
func (p *fastParser) plainStart(i int, flow bool) bool {
	switch p.at(i) {
	case 0, ' ', '\n', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`':
		return false
	case '-':
		c := p.at(i + 1)
		return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' ||
			!flow && !p.blankAt(i+1)
	}
	return true
}

// plainEnd finds the end of a block plain scalar starting at i: its line end, a comment, or a
// colon and blank, which makes it a key (colon is then true).
func (p *fastParser) plainEnd(i int) (end int, colon bool) {
	for j := i; j < len(p.text); j++ {
		switch p.text[j] {
		case '\n':
			return j, false
		case ':':
			if p.blankAt(j + 1) {
				return j, true
			}
		case '#':
			if p.text[j-1] == ' ' {
				return j, false
			}
		}
	}
	return len(p.text), false
}

// plainText returns text[i:end] without trailing blanks and moves to end. `<<`, which yaml.v3
// tags as a merge key wherever it stands, goes to yaml.v3.
func (p *fastParser) plainText(i, end int) (string, bool) {
	v := strings.TrimRight(p.str[i:end], " ")
	p.pos = end
	return v, v != "<<"
}

// plain reads the plain scalar text[i:end] as the converter reads yaml.v3's node of it: its tag
// resolved by yaml.v3, then the value that tag gives.
func (p *fastParser) plain(i, end int) (any, bool) {
	v, ok := p.plainText(i, end)
	if !ok {
		return nil, false
	}
	p.tmp = yaml.Node{Kind: yaml.ScalarNode, Value: v}
	switch p.tmp.ShortTag() {
	case "!!str":
		return v, true
	case "!!int":
		// Plain decimals, the common case, without a decoder; the rest as the converter does.
		if len(v) < 19 && (v == "0" || v[0] >= '1' && v[0] <= '9') {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				return n, true
			}
		}
	case "!!bool":
		switch v {
		case "true":
			return true, true
		case "false":
			return false, true
		}
	}
	x, problem := scalar(&p.tmp)
	return x, problem == ""
}

// quotedEnd returns the position after the quoted scalar starting at i, on its line.
func (p *fastParser) quotedEnd(i int) (int, bool) {
	q := p.text[i]
	for j := i + 1; j < len(p.text); j++ {
		switch c := p.text[j]; {
		case c == '\n':
			return 0, false
		case c == '\\' && q == '"':
			j++
		case c == q:
			if q == '\'' && p.at(j+1) == '\'' {
				j++
				continue
			}
			return j + 1, true
		}
	}
	return 0, false
}

// quoted reads a single- or double-quoted scalar on one line. Of the double-quoted escapes it
// reads \\\\, \\", \\n and \\t; a document with another goes to yaml.v3.
func (p *fastParser) quoted() (string, bool) {
	q := p.text[p.pos]
	end, ok := p.quotedEnd(p.pos)
	if !ok {
		return "", false
	}
	body := p.str[p.pos+1 : end-1]
	if q == '"' {
		if strings.IndexByte(body, '\\') >= 0 {
			var b strings.Builder
			for i := 0; i < len(body); i++ {
				c := body[i]
				if c == '\\' {
					i++
					switch body[i] {
					case '\\', '"':
						c = body[i]
					case 'n':
						c = '\n'
					case 't':
						c = '\t'
					default:
						return "", false
					}
				}
				b.WriteByte(c)
			}
			body = b.String()
		}
	} else if strings.Contains(body, "''") {
		body = strings.ReplaceAll(body, "''", "'")
	}
	p.pos = end
	return body, true
}

// flow parses a flow sequence or mapping that closes on its line, or, in a document that is one
// flow collection (JSON), on a later one.
func (p *fastParser) flow() (any, bool) {
	if p.depth++; p.depth > fastMaxDepth {
		return nil, false
	}
	defer func() { p.depth-- }()
	mapping := p.at(p.pos) == '{'
	closer := byte(']')
	var m map[string]any
	var l []any
	if mapping {
		m, closer = map[string]any{}, '}'
	} else {
		l = []any{}
	}
	done := func() (any, bool) {
		p.pos++
		if mapping {
			return m, true
		}
		return l, true
	}
	p.pos++
	if !p.flowSpace(true) {
		return nil, false
	}
	if p.at(p.pos) == closer {
		return done()
	}
	for {
		var k string
		if mapping {
			var ok, quoted bool
			// After a quoted key the colon may touch the value, as in JSON.
			if k, quoted, ok = p.flowKey(); !ok || p.at(p.pos) != ':' || !quoted && p.at(p.pos+1) != ' ' {
				return nil, false
			}
			if _, dup := m[k]; dup {
				return nil, false
			}
			p.pos++
			p.flowSpace(false)
		}
		v, ok := p.flowItem()
		if !ok {
			return nil, false
		}
		if mapping {
			m[k] = v
		} else {
			l = append(l, v)
		}
		if !p.flowSpace(true) {
			return nil, false
		}
		switch p.at(p.pos) {
		case ',':
			p.pos++
			if !p.flowSpace(true) {
				return nil, false
			}
			if p.at(p.pos) == closer {
				return done()
			}
		case closer:
			return done()
		default:
			return nil, false
		}
	}
}

// flowSpace moves past blanks, and past line ends too where the document may break lines there
// (lines, in a multiline document). It fails on a document marker.
func (p *fastParser) flowSpace(lines bool) bool {
	for {
		switch p.at(p.pos) {
		case ' ':
			p.pos++
		case '\n':
			if !lines || !p.multiline {
				return true
			}
			p.pos++
			p.line++
			if strings.HasPrefix(p.str[p.pos:], "---") || strings.HasPrefix(p.str[p.pos:], "...") {
				return false
			}
		default:
			return true
		}
	}
}

func (p *fastParser) flowItem() (any, bool) {
	switch p.at(p.pos) {
	case '[', '{':
		return p.flow()
	case '"', '\'':
		return p.quoted()
	}
	end, ok := p.flowPlainEnd(false)
	if !ok {
		return nil, false
	}
	return p.plain(p.pos, end)
}

// flowKey reads the key of a flow mapping, up to its colon, and says whether it was quoted.
func (p *fastParser) flowKey() (string, bool, bool) {
	switch p.at(p.pos) {
	case '"', '\'':
		k, ok := p.quoted()
		return k, true, ok
	}
	end, ok := p.flowPlainEnd(true)
	if !ok || end-p.pos > fastMaxKey {
		return "", false, false
	}
	k, ok := p.plainText(p.pos, end)
	return k, false, ok
}

// flowPlainEnd finds the end of a plain scalar inside a flow collection: a flow indicator, or for
// a key its colon, or in a multiline document the line end (the flow loop then wants a comma or
// the closer next, so a scalar continued on the next line goes to yaml.v3). One holding a colon
// (other than a key's), a question mark or a comment goes to yaml.v3.
func (p *fastParser) flowPlainEnd(key bool) (int, bool) {
	if !p.plainStart(p.pos, true) {
		return 0, false
	}
	for j := p.pos; j < len(p.text); j++ {
		switch p.text[j] {
		case ',', '[', ']', '{', '}':
			return j, !key
		case ':':
			return j, key
		case '\n':
			return j, p.multiline && !key
		case '?':
			return 0, false
		case '#':
			if p.text[j-1] == ' ' {
				return 0, false
			}
		}
	}
	return 0, false
}
