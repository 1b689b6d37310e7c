// Package manifest loads Istio objects from YAML and JSON files, checks them against the
// istio.io/api types, and remembers where each object and field came from.
package manifest

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/proto"
)

// Object is one Istio object: its identity, its generic form (what Rego and CEL read) and the
// typed istio.io/api spec. Objects are never mutated after loading, so any number of goroutines
// may evaluate them at once.
type Object struct {
	APIVersion  string
	Kind        string
	Namespace   string
	Name        string
	Labels      map[string]string
	Annotations map[string]string
	// Created is metadata.creationTimestamp (RFC 3339) where known; Istio breaks ties between
	// competing policies by age.
	Created string

	// Raw is the whole document as JSON-compatible values (map[string]any, []any, string,
	// int64, float64, bool, nil).
	Raw map[string]any

	// File and Line locate the object; Line is 0 for objects that did not come from a file.
	File string
	Line int

	node     *yaml.Node // the document's node tree, built from text on first use when nil
	text     []byte
	nodeOnce sync.Once
	offset   int // lines before the object's document in its file
	specOnce sync.Once
	spec     proto.Message
	specErr  error
	lines    sync.Map // field path -> line, filled on demand
	memo     sync.Map // evaluator caches, see Memo
}

// Spec decodes the spec into its istio.io/api type as the type's own UnmarshalJSON would,
// unknown fields refused. Loading has already checked the spec field by field against the same
// type's descriptor (to name the exact field at fault); decoding is done on first use, as lint's
// rules read the generic form and only istiod's validation needs the typed copy.
func (o *Object) Spec() (proto.Message, error) {
	o.specOnce.Do(func() {
		k, ok := kinds[o.Kind]
		if !ok || k.newSpec == nil {
			o.specErr = fmt.Errorf("%s is not an Istio kind meshguard checks", o.Kind)
			return
		}
		msg := k.newSpec()
		spec, ok := o.Raw["spec"]
		if !ok || spec == nil {
			spec = map[string]any{}
		}
		if err := decodeSpec(spec, msg); err != nil {
			o.specErr = fmt.Errorf("decode %s spec: %w", o.Ref(), err)
			return
		}
		o.spec = msg
	})
	return o.spec, o.specErr
}

// Ref names the object the way kubectl does: Kind namespace/name.
func (o *Object) Ref() string {
	if o.Namespace == "" {
		return o.Kind + " " + o.Name
	}
	return o.Kind + " " + o.Namespace + "/" + o.Name
}

// Key identifies the object within an inventory.
func (o *Object) Key() string { return o.Kind + "/" + o.Namespace + "/" + o.Name }

// FieldLine returns the line of the field at path (e.g. "spec.http[0].retries.attempts"),
// falling back to its closest present ancestor and then to the object's line.
func (o *Object) FieldLine(path string) int {
	if path == "" {
		return o.Line
	}
	if v, ok := o.lines.Load(path); ok {
		return v.(int)
	}
	n := o.tree()
	if n == nil {
		return o.Line
	}
	line := o.Line
	for _, seg := range SplitPath(path) {
		next := child(n, seg)
		if next == nil {
			break
		}
		n = next
		line = n.Line + o.offset
	}
	o.lines.Store(path, line)
	return line
}

// tree returns the object's node tree, parsing its document with yaml.v3 the first time it is
// needed when the fast path read it; nil for an object that did not come from a file.
func (o *Object) tree() *yaml.Node {
	o.nodeOnce.Do(func() {
		if o.node != nil || o.text == nil {
			return
		}
		var root yaml.Node
		if yaml.Unmarshal(o.text, &root) == nil && len(root.Content) > 0 {
			o.node = root.Content[0]
		}
	})
	return o.node
}

// child steps from n to its member seg: a mapping key or a list index.
func child(n *yaml.Node, seg string) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil {
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == seg {
				// Point at the key: that is the line a reader looks for.
				k := *n.Content[i+1]
				k.Line = n.Content[i].Line
				return &k
			}
		}
	case yaml.SequenceNode:
		i, err := strconv.Atoi(seg)
		if err == nil && i >= 0 && i < len(n.Content) {
			return n.Content[i]
		}
	}
	return nil
}

// SplitPath splits a field path written as `a.b[2]["c.d"]` into a, b, 2, c.d.
func SplitPath(path string) []string {
	var segs []string
	for len(path) > 0 {
		switch path[0] {
		case '.':
			path = path[1:]
		case '[':
			end := strings.IndexByte(path, ']')
			if end < 0 {
				return append(segs, path[1:])
			}
			inner := path[1:end]
			if len(inner) >= 2 && inner[0] == '"' {
				if s, err := strconv.Unquote(inner); err == nil {
					inner = s
				} else if q := strings.Index(path, `"]`); q > 0 {
					inner, end = path[2:q], q+1
				}
			}
			segs = append(segs, inner)
			path = path[end+1:]
		default:
			end := strings.IndexAny(path, ".[")
			if end < 0 {
				end = len(path)
			}
			segs = append(segs, path[:end])
			path = path[end:]
		}
	}
	return segs
}

// JoinField appends a mapping key to a field path, quoting keys that are not identifiers.
func JoinField(path, key string) string {
	if isIdent(key) {
		if path == "" {
			return key
		}
		return path + "." + key
	}
	return path + "[" + strconv.Quote(key) + "]"
}

// JoinIndex appends a list index to a field path.
func JoinIndex(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_' || r == '-' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z'):
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// NewObject builds an Object from a generic document such as an admission request's object or
// an API list item, with numbers as Normalize leaves them. It returns (nil, nil) for a kind
// meshguard does not check, and the Problem MG001 reports (with its field path) when the spec
// fails the strict check that Load applies; the Object is still returned then, for its identity.
func NewObject(raw map[string]any) (*Object, *Problem) {
	return fromRaw(raw, source{})
}

// SpecMap is the object's spec in its generic form, or nil when it has none (or it is not a map).
func (o *Object) SpecMap() map[string]any {
	spec, _ := o.Raw["spec"].(map[string]any)
	return spec
}

// Memo returns the value f computes for key, computing it once per object. Evaluators use it to
// cache their own forms of the object (an objects is immutable once loaded).
func (o *Object) Memo(key string, f func() any) any {
	if v, ok := o.memo.Load(key); ok {
		return v
	}
	v, _ := o.memo.LoadOrStore(key, f())
	return v
}
