package manifest

import (
	"bytes"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxAliasedValues bounds how many values one document's aliases may expand to, so a "billion
// laughs" document is refused instead of exhausting memory. Only values reached through an
// alias count: values written out are already bounded by the file size (--max-file-size), and
// a `kind: List` of 100,000 objects is large but not a bomb.
const maxAliasedValues = 1 << 20

// maxDepth bounds how deeply values nest, so that an alias to itself (`a: &a [*a]`) stops at
// once instead of spelling out a million-level path. Istio objects nest about ten levels.
const maxDepth = 256

// document is one YAML document of a file, with the line it starts on.
type document struct {
	text      []byte
	firstLine int // 1-based line of the document's first line within the file
}

// splitDocuments cuts a multi-document YAML stream at its `---` markers (a line of `---`, then
// only blanks or a comment). Splitting before parsing lets a syntax error in one document leave
// the others readable. A byte scan rather than a multi-line regexp: on a 10,000-object
// directory the regexp was 6% of loading.
func splitDocuments(data []byte) []document {
	var docs []document
	start, line := 0, 1
	for pos := 0; pos < len(data); {
		end := bytes.IndexByte(data[pos:], '\n')
		if end < 0 {
			end = len(data)
		} else {
			end += pos
		}
		if isDocSeparator(data[pos:end]) {
			docs = append(docs, document{text: data[start:pos], firstLine: line})
			line += bytes.Count(data[start:end], []byte("\n"))
			start = end
		}
		pos = end + 1
	}
	return append(docs, document{text: data[start:], firstLine: line})
}

func isDocSeparator(line []byte) bool {
	if !bytes.HasPrefix(line, []byte("---")) {
		return false
	}
	rest := bytes.TrimLeft(bytes.TrimSuffix(line[3:], []byte("\r")), " \t")
	return len(rest) == 0 || rest[0] == '#'
}

// parseDocument reads one document: its generic value, the line of its top node, and the node
// tree when yaml.v3 read it. A document in the fast path's subset has no tree (Object.FieldLine
// builds it when a finding needs a field's line), save a `kind: List`, whose items' lines are
// needed at once. It returns a nil value for an empty document.
func parseDocument(doc document) (*yaml.Node, int, any, *Problem) {
	if v, line, ok := fastParse(doc.text); ok {
		if _, list := listItems(v); !list {
			return nil, line, v, nil
		}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(doc.text, &root); err != nil {
		line, msg := yamlErrorLine(err)
		return nil, 0, nil, &Problem{Line: doc.firstLine + max(line-1, 0), Message: "invalid YAML: " + msg}
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, 0, nil, nil
	}
	top := root.Content[0]
	c := converter{offset: doc.firstLine - 1}
	v, err := c.value(top)
	if err != nil {
		return nil, 0, nil, err
	}
	return top, top.Line, v, nil
}

var (
	yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	anyLineRE  = regexp.MustCompile(`line (\d+)`)
)

func yamlErrorLine(err error) (int, string) {
	msg := err.Error()
	if te, ok := err.(*yaml.TypeError); ok && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, m[2]
	}
	if m := anyLineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, strings.TrimPrefix(msg, "yaml: ")
	}
	return 0, strings.TrimPrefix(msg, "yaml: ")
}

// converter turns a yaml.Node tree into JSON-compatible values, the way the Kubernetes API
// server reads YAML: keys are strings, timestamps stay strings. It keeps the current field path
// as a stack of segments and spells it out only for a problem.
type converter struct {
	aliased int // values reached through aliases so far
	inAlias int // how many aliases the current value is reached through
	depth   int // how deeply the current value nests
	offset  int // lines before the document in its file
	path    []string
}

func (c *converter) problem(n *yaml.Node, format string, args ...any) *Problem {
	return &Problem{Line: n.Line + c.offset, Path: c.pathString(), Message: fmt.Sprintf(format, args...)}
}

func (c *converter) pathString() string {
	p := ""
	for _, seg := range c.path {
		if seg != "" && seg[0] == '[' {
			p += seg
		} else {
			p = JoinField(p, seg)
		}
	}
	return p
}

func (c *converter) value(n *yaml.Node) (any, *Problem) {
	if c.depth++; c.depth > maxDepth {
		return nil, c.problem(n, "values nest deeper than %d levels (a recursive alias?)", maxDepth)
	}
	defer func() { c.depth-- }()
	if c.inAlias > 0 {
		c.aliased++
		if c.aliased > maxAliasedValues {
			return nil, c.problem(n, "aliases expand to more than %d values (alias bomb?)", maxAliasedValues)
		}
	}
	switch n.Kind {
	case yaml.AliasNode:
		c.inAlias++
		v, p := c.value(n.Alias)
		c.inAlias--
		return v, p
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return c.value(n.Content[0])
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
				if p := c.merge(m, v); p != nil {
					return nil, p
				}
				continue
			}
			if k.Kind != yaml.ScalarNode {
				return nil, c.problem(k, "mapping key is not a scalar")
			}
			c.path = append(c.path, k.Value)
			if _, dup := m[k.Value]; dup {
				return nil, c.problem(k, "duplicate key %q", k.Value)
			}
			val, p := c.value(v)
			if p != nil {
				return nil, p
			}
			c.path = c.path[:len(c.path)-1]
			m[k.Value] = val
		}
		return m, nil
	case yaml.SequenceNode:
		l := make([]any, 0, len(n.Content))
		for i, e := range n.Content {
			c.path = append(c.path, "["+strconv.Itoa(i)+"]")
			val, p := c.value(e)
			if p != nil {
				return nil, p
			}
			c.path = c.path[:len(c.path)-1]
			l = append(l, val)
		}
		return l, nil
	case yaml.ScalarNode:
		v, err := scalar(n)
		if err != "" {
			return nil, c.problem(n, "%s", err)
		}
		return v, nil
	}
	return nil, c.problem(n, "unsupported YAML node")
}

// merge applies a `<<:` merge key: keys already present win.
func (c *converter) merge(into map[string]any, v *yaml.Node) *Problem {
	val, p := c.value(v)
	if p != nil {
		return p
	}
	var srcs []any
	switch t := val.(type) {
	case map[string]any:
		srcs = []any{t}
	case []any:
		srcs = t
	}
	for _, s := range srcs {
		sm, ok := s.(map[string]any)
		if !ok {
			return c.problem(v, "merge key value is not a mapping")
		}
		for k, x := range sm {
			if _, ok := into[k]; !ok {
				into[k] = x
			}
		}
	}
	return nil
}

// scalar resolves a scalar by its tag; the string is a problem, empty when there is none.
func scalar(n *yaml.Node) (any, string) {
	switch n.ShortTag() {
	case "!!null":
		return nil, ""
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, err.Error()
		}
		return b, ""
	case "!!int":
		var i int64
		if err := n.Decode(&i); err == nil {
			return i, ""
		}
		var u uint64
		if err := n.Decode(&u); err == nil {
			return float64(u), ""
		}
		return nil, fmt.Sprintf("integer %s out of range", n.Value)
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return nil, err.Error()
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Sprintf("%s is not a JSON number", n.Value)
		}
		// Whole floats become int64, as JSON decoders do: `attempts: 3.0` is 3.
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f), ""
		}
		return f, ""
	default: // !!str, !!binary, !!timestamp and custom tags are strings to the API server
		return n.Value, ""
	}
}
