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

// maxNodes bounds how many values one document may expand to, aliases included, so a
// "billion laughs" document is refused instead of exhausting memory.
const maxNodes = 1 << 20

// document is one YAML document of a file, with the line it starts on.
type document struct {
	text      []byte
	firstLine int // 1-based line of the document's first line within the file
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*(#.*)?$`)

// splitDocuments cuts a multi-document YAML stream at its `---` markers. Splitting before parsing
// lets a syntax error in one document leave the others readable.
func splitDocuments(data []byte) []document {
	var docs []document
	start, line := 0, 1
	for _, m := range docSeparator.FindAllIndex(data, -1) {
		docs = append(docs, document{text: data[start:m[0]], firstLine: line})
		line += bytes.Count(data[start:m[1]], []byte("\n"))
		start = m[1]
	}
	return append(docs, document{text: data[start:], firstLine: line})
}

// parseDocument parses one document into its node tree and generic value.
// It returns (nil, nil, nil) for an empty document.
func parseDocument(doc document) (*yaml.Node, any, *Problem) {
	var root yaml.Node
	if err := yaml.Unmarshal(doc.text, &root); err != nil {
		line, msg := yamlErrorLine(err)
		return nil, nil, &Problem{Line: doc.firstLine + max(line-1, 0), Message: "invalid YAML: " + msg}
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, nil, nil
	}
	shiftLines(&root, doc.firstLine-1, map[*yaml.Node]bool{})
	c := converter{}
	v, err := c.value(root.Content[0], "")
	if err != nil {
		return nil, nil, err
	}
	return root.Content[0], v, nil
}

func shiftLines(n *yaml.Node, by int, seen map[*yaml.Node]bool) {
	if by == 0 || seen[n] {
		return
	}
	seen[n] = true
	n.Line += by
	for _, c := range n.Content {
		shiftLines(c, by, seen)
	}
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func yamlErrorLine(err error) (int, string) {
	msg := err.Error()
	if te, ok := err.(*yaml.TypeError); ok && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, m[2]
	}
	if m := regexp.MustCompile(`line (\d+)`).FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, strings.TrimPrefix(msg, "yaml: ")
	}
	return 0, strings.TrimPrefix(msg, "yaml: ")
}

// converter turns a yaml.Node tree into JSON-compatible values, the way the Kubernetes API
// server reads YAML: keys are strings, timestamps stay strings.
type converter struct{ nodes int }

func (c *converter) value(n *yaml.Node, path string) (any, *Problem) {
	c.nodes++
	if c.nodes > maxNodes {
		return nil, &Problem{Line: n.Line, Path: path, Message: fmt.Sprintf("document expands to more than %d values (alias bomb?)", maxNodes)}
	}
	switch n.Kind {
	case yaml.AliasNode:
		return c.value(n.Alias, path)
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return c.value(n.Content[0], path)
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
				if p := c.merge(m, v, path); p != nil {
					return nil, p
				}
				continue
			}
			if k.Kind != yaml.ScalarNode {
				return nil, &Problem{Line: k.Line, Path: path, Message: "mapping key is not a scalar"}
			}
			fp := JoinField(path, k.Value)
			if _, dup := m[k.Value]; dup {
				return nil, &Problem{Line: k.Line, Path: fp, Message: fmt.Sprintf("duplicate key %q", k.Value)}
			}
			val, p := c.value(v, fp)
			if p != nil {
				return nil, p
			}
			m[k.Value] = val
		}
		return m, nil
	case yaml.SequenceNode:
		l := make([]any, 0, len(n.Content))
		for i, e := range n.Content {
			val, p := c.value(e, JoinIndex(path, i))
			if p != nil {
				return nil, p
			}
			l = append(l, val)
		}
		return l, nil
	case yaml.ScalarNode:
		return scalar(n, path)
	}
	return nil, &Problem{Line: n.Line, Path: path, Message: "unsupported YAML node"}
}

// merge applies a `<<:` merge key: keys already present win.
func (c *converter) merge(into map[string]any, v *yaml.Node, path string) *Problem {
	val, p := c.value(v, path)
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
			return &Problem{Line: v.Line, Path: path, Message: "merge key value is not a mapping"}
		}
		for k, x := range sm {
			if _, ok := into[k]; !ok {
				into[k] = x
			}
		}
	}
	return nil
}

func scalar(n *yaml.Node, path string) (any, *Problem) {
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, &Problem{Line: n.Line, Path: path, Message: err.Error()}
		}
		return b, nil
	case "!!int":
		var i int64
		if err := n.Decode(&i); err == nil {
			return i, nil
		}
		var u uint64
		if err := n.Decode(&u); err == nil {
			return float64(u), nil
		}
		return nil, &Problem{Line: n.Line, Path: path, Message: fmt.Sprintf("integer %s out of range", n.Value)}
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return nil, &Problem{Line: n.Line, Path: path, Message: err.Error()}
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, &Problem{Line: n.Line, Path: path, Message: fmt.Sprintf("%s is not a JSON number", n.Value)}
		}
		// Whole floats become int64, as JSON decoders do: `attempts: 3.0` is 3.
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f), nil
		}
		return f, nil
	case "!!binary":
		return n.Value, nil
	default: // !!str, !!timestamp and custom tags are strings to the API server
		return n.Value, nil
	}
}
