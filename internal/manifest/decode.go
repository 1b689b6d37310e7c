package manifest

import (
	"encoding/base64"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Problem is a document that cannot be checked: invalid YAML or JSON, or a spec that does not
// decode into its istio.io/api type. It becomes an MG001 finding.
type Problem struct {
	File       string
	Line       int
	Path       string
	Message    string
	APIVersion string
	Kind       string
	Namespace  string
	Name       string
	// Annotations of the document, where it got that far.
	Annotations map[string]string
	// Warning marks what Istio accepts but warns about (MG003) rather than refuses (MG001).
	Warning bool
}

func (p *Problem) Error() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
	}
	if p.Path != "" {
		b.WriteString(p.Path + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// source is where a document came from: its file, the line of its top node, the lines before it
// in the file, and its node tree, or the text to build that from when a field's line is asked.
type source struct {
	file   string
	line   int
	offset int
	node   *yaml.Node
	text   []byte
}

// fromRaw builds an Object from a generic document. It returns (nil, nil) for documents of
// kinds meshguard does not check.
func fromRaw(raw map[string]any, src source) (*Object, *Problem) {
	apiVersion, _ := raw["apiVersion"].(string)
	kind, _ := raw["kind"].(string)
	known, served := classify(apiVersion, kind)
	if !known {
		return nil, nil
	}
	meta, _ := raw["metadata"].(map[string]any)
	o := &Object{
		APIVersion:  apiVersion,
		Kind:        kind,
		Raw:         raw,
		File:        src.file,
		Line:        src.line + src.offset,
		node:        src.node,
		text:        src.text,
		offset:      src.offset,
		Labels:      stringMap(meta["labels"]),
		Annotations: stringMap(meta["annotations"]),
	}
	o.Namespace, _ = meta["namespace"].(string)
	o.Name, _ = meta["name"].(string)
	o.Created, _ = meta["creationTimestamp"].(string)
	problem := func(path, format string, args ...any) *Problem {
		p := &Problem{File: src.file, Path: path, Message: fmt.Sprintf(format, args...),
			APIVersion: apiVersion, Kind: kind, Namespace: o.Namespace, Name: o.Name, Annotations: o.Annotations}
		p.Line = o.FieldLine(path)
		return p
	}
	if !served {
		group, versions := GroupVersions(kind)
		return o, problem("apiVersion", "%s is not served for %s: use %s/%s", apiVersion, kind, group, strings.Join(versions, ", "+group+"/"))
	}
	if InventoryOnly(kind) {
		// Context only: what meshguard does not model is not its to judge, and a nameless
		// Service names no host.
		if o.Name == "" {
			return nil, nil
		}
		return o, nil
	}
	if o.Name == "" && meta["generateName"] == nil {
		return o, problem("metadata.name", "metadata.name is required")
	}
	spec, ok := raw["spec"]
	if !ok || spec == nil {
		spec = map[string]any{}
	}
	desc := kinds[kind].newSpec().ProtoReflect().Descriptor()
	if path, err := checkSpec(desc, spec); err != nil {
		return o, problem(path, "%v", err)
	}
	return o, nil
}

// decodeSpec builds the typed spec from the generic form as the JSON decoder istio.io/api's own
// UnmarshalJSON uses would, minus its tolerance of unknown fields, without a round trip through
// JSON text (TestTypedSpecsEqualIstiosJSONDecoder holds the two equal).
func decodeSpec(spec any, msg proto.Message) error {
	return fill(msg.ProtoReflect(), spec)
}

func stringMap(v any) map[string]string {
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, x := range m {
		switch t := x.(type) {
		case string:
			out[k] = t
		case nil:
			out[k] = ""
		default:
			out[k] = fmt.Sprint(t)
		}
	}
	return out
}

// checkSpec checks a spec against its message descriptor and returns the path and reason of the
// first mismatch in field order. Nearly every spec passes, so the check first runs without
// spelling out paths or ordering keys, and runs again with them only to report a mismatch.
func checkSpec(md protoreflect.MessageDescriptor, spec any) (string, error) {
	if _, err := (checker{}).message(md, spec, ""); err == nil {
		return "", nil
	}
	return checker{paths: true}.message(md, spec, "spec")
}

// checker walks a generic value against a protobuf message descriptor the way Istio's JSON
// decoder reads it. It exists to name the exact field: the decoder's own errors do not say where
// in the document they are. With paths, it visits keys in order and names each field's path.
type checker struct{ paths bool }

func (c checker) field(path, key string) string {
	if !c.paths {
		return ""
	}
	return JoinField(path, key)
}

func (c checker) index(path string, i int) string {
	if !c.paths {
		return ""
	}
	return JoinIndex(path, i)
}

func (c checker) keys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	if c.paths {
		sort.Strings(keys)
	}
	return keys
}

// message checks an object against a message descriptor: known fields, one of each oneof.
func (c checker) message(md protoreflect.MessageDescriptor, v any, path string) (string, error) {
	if v == nil {
		return "", nil
	}
	if wk, ok := wellKnown[md.FullName()]; ok {
		if err := wk(v); err != nil {
			return path, err
		}
		return "", nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return path, fmt.Errorf("expected an object (%s), got %s", md.Name(), describe(v))
	}
	keys := c.keys(m)
	fields := md.Fields()
	oneofs := map[protoreflect.FullName]string{}
	for _, k := range keys {
		fp := c.field(path, k)
		fd := fields.ByJSONName(k)
		if fd == nil {
			fd = fields.ByName(protoreflect.Name(k))
		}
		if fd == nil {
			return fp, unknownField(md, k)
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() && m[k] != nil {
			if prev, ok := oneofs[od.FullName()]; ok {
				return fp, fmt.Errorf("%s and %s are alternatives (oneof %s): set only one", prev, k, od.Name())
			}
			oneofs[od.FullName()] = k
		}
		if p, err := c.value(fd, m[k], fp); err != nil {
			return p, err
		}
	}
	return "", nil
}

// value checks a field's value: a map, a list or a single value.
func (c checker) value(fd protoreflect.FieldDescriptor, v any, path string) (string, error) {
	if v == nil {
		return "", nil
	}
	switch {
	case fd.IsMap():
		m, ok := v.(map[string]any)
		if !ok {
			return path, fmt.Errorf("expected a map, got %s", describe(v))
		}
		for _, k := range c.keys(m) {
			fp := c.field(path, k)
			if err := checkMapKey(fd.MapKey(), k); err != nil {
				return fp, err
			}
			if p, err := c.single(fd.MapValue(), m[k], fp); err != nil {
				return p, err
			}
		}
		return "", nil
	case fd.IsList():
		l, ok := v.([]any)
		if !ok {
			return path, fmt.Errorf("expected a list, got %s", describe(v))
		}
		for i, e := range l {
			if p, err := c.single(fd, e, c.index(path, i)); err != nil {
				return p, err
			}
		}
		return "", nil
	}
	return c.single(fd, v, path)
}

// single checks one value of a field.
func (c checker) single(fd protoreflect.FieldDescriptor, v any, path string) (string, error) {
	if v == nil {
		return "", nil
	}
	var err error
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return c.message(fd.Message(), v, path)
	case protoreflect.EnumKind:
		err = checkEnum(fd.Enum(), v)
	case protoreflect.BoolKind:
		if _, ok := v.(bool); !ok {
			err = fmt.Errorf("expected a boolean, got %s", describe(v))
		}
	case protoreflect.StringKind:
		if _, ok := v.(string); !ok {
			err = fmt.Errorf("expected a string, got %s", describe(v))
		}
	case protoreflect.BytesKind:
		s, ok := v.(string)
		if !ok {
			err = fmt.Errorf("expected base64 bytes, got %s", describe(v))
		} else if _, e := base64.StdEncoding.DecodeString(s); e != nil {
			err = fmt.Errorf("invalid base64: %v", e)
		}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		err = checkNumber(v, false, 0, 0)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		err = checkNumber(v, true, math.MinInt32, math.MaxInt32)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		err = checkNumber(v, true, 0, math.MaxUint32)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		err = checkNumber(v, true, math.MinInt64, math.MaxInt64)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		err = checkNumber(v, true, 0, math.MaxUint64)
	}
	if err != nil {
		return path, err
	}
	return "", nil
}

// checkNumber accepts JSON numbers and, as protobuf JSON does, numbers written as strings.
func checkNumber(v any, integer bool, lo, hi float64) error {
	var f float64
	switch t := v.(type) {
	case int64:
		f = float64(t)
	case float64:
		f = t
	case string:
		p, err := strconv.ParseFloat(t, 64)
		if err != nil {
			return fmt.Errorf("expected a number, got string %q", t)
		}
		f = p
	default:
		return fmt.Errorf("expected a number, got %s", describe(v))
	}
	if integer {
		if f != math.Trunc(f) {
			return fmt.Errorf("expected an integer, got %v", f)
		}
		if f < lo || f > hi {
			return fmt.Errorf("%v is out of range [%v, %v]", f, lo, hi)
		}
	}
	return nil
}

func checkMapKey(fd protoreflect.FieldDescriptor, k string) error {
	switch fd.Kind() {
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		if _, err := strconv.ParseUint(k, 10, 32); err != nil {
			return fmt.Errorf("map key %q is not a port number (unsigned 32-bit integer)", k)
		}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		if _, err := strconv.ParseInt(k, 10, 32); err != nil {
			return fmt.Errorf("map key %q is not a 32-bit integer", k)
		}
	case protoreflect.Int64Kind, protoreflect.Uint64Kind:
		if _, err := strconv.ParseInt(k, 10, 64); err != nil {
			return fmt.Errorf("map key %q is not an integer", k)
		}
	case protoreflect.BoolKind:
		if k != "true" && k != "false" {
			return fmt.Errorf("map key %q is not a boolean", k)
		}
	}
	return nil
}

func checkEnum(ed protoreflect.EnumDescriptor, v any) error {
	switch t := v.(type) {
	case string:
		if ed.Values().ByName(protoreflect.Name(t)) != nil {
			return nil
		}
		return fmt.Errorf("unknown value %q for %s (known: %s)", t, ed.Name(), strings.Join(enumNames(ed), ", "))
	case int64:
		if ed.Values().ByNumber(protoreflect.EnumNumber(t)) != nil {
			return nil
		}
		return fmt.Errorf("unknown value %d for %s", t, ed.Name())
	}
	return fmt.Errorf("expected one of %s, got %s", strings.Join(enumNames(ed), ", "), describe(v))
}

func enumNames(ed protoreflect.EnumDescriptor) []string {
	var names []string
	for i := 0; i < ed.Values().Len(); i++ {
		names = append(names, string(ed.Values().Get(i).Name()))
	}
	return names
}

func unknownField(md protoreflect.MessageDescriptor, k string) error {
	var names []string
	best, bestDist := "", 3
	for i := 0; i < md.Fields().Len(); i++ {
		n := md.Fields().Get(i).JSONName()
		names = append(names, n)
		if d := editDistance(strings.ToLower(k), strings.ToLower(n)); d < bestDist {
			best, bestDist = n, d
		}
	}
	if best != "" {
		return fmt.Errorf("unknown field %q in %s: did you mean %q?", k, md.Name(), best)
	}
	return fmt.Errorf("unknown field %q in %s (known: %s)", k, md.Name(), strings.Join(names, ", "))
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// wellKnown checks the protobuf well-known types, which have their own JSON forms.
var wellKnown = map[protoreflect.FullName]func(any) error{
	"google.protobuf.Duration": func(v any) error {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("expected a duration string such as \"5s\", got %s", describe(v))
		}
		if _, err := time.ParseDuration(s); err != nil {
			return fmt.Errorf("invalid duration %q: use a number and a unit, e.g. 250ms, 1.5s, 1m", s)
		}
		return nil
	},
	"google.protobuf.Timestamp": func(v any) error {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("expected an RFC 3339 timestamp, got %s", describe(v))
		}
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			return fmt.Errorf("invalid timestamp %q", s)
		}
		return nil
	},
	"google.protobuf.BoolValue": func(v any) error {
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("expected a boolean, got %s", describe(v))
		}
		return nil
	},
	"google.protobuf.StringValue": func(v any) error {
		if _, ok := v.(string); !ok {
			return fmt.Errorf("expected a string, got %s", describe(v))
		}
		return nil
	},
	"google.protobuf.UInt32Value": func(v any) error { return checkNumber(v, true, 0, math.MaxUint32) },
	"google.protobuf.Int32Value":  func(v any) error { return checkNumber(v, true, math.MinInt32, math.MaxInt32) },
	"google.protobuf.UInt64Value": func(v any) error { return checkNumber(v, true, 0, math.MaxUint64) },
	"google.protobuf.Int64Value":  func(v any) error { return checkNumber(v, true, math.MinInt64, math.MaxInt64) },
	"google.protobuf.DoubleValue": func(v any) error { return checkNumber(v, false, 0, 0) },
	"google.protobuf.FloatValue":  func(v any) error { return checkNumber(v, false, 0, 0) },
	"google.protobuf.Struct": func(v any) error {
		if _, ok := v.(map[string]any); !ok {
			return fmt.Errorf("expected an object, got %s", describe(v))
		}
		return nil
	},
	"google.protobuf.Value":     func(any) error { return nil },
	"google.protobuf.ListValue": func(v any) error { return nil },
	"google.protobuf.Any":       func(any) error { return nil },
	"google.protobuf.Empty":     func(any) error { return nil },
}

func describe(v any) string {
	switch t := v.(type) {
	case string:
		return fmt.Sprintf("string %q", t)
	case bool:
		return fmt.Sprintf("boolean %v", t)
	case int64, float64:
		return fmt.Sprintf("number %v", t)
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
