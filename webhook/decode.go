package webhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"unsafe"

	jsoniter "github.com/json-iterator/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshguard/meshguard/internal/engine"
	"github.com/meshguard/meshguard/internal/manifest"
)

// DecodeJSON reads a JSON object into the generic form manifest.Object expects: whole numbers
// become int64 (as the YAML loader makes them, so a rule sees `attempts: 3` as the same value
// whether it came from a file or from the API server) and other numbers float64.
// metadata.managedFields and the last-applied-configuration annotation are skipped: no rule
// reads them (StripUnread drops them from the inventory cache too), and on objects from the API server they are
// most of the bytes.
//
// It decodes with json-iterator rather than encoding/json: on the webhook's hot path the
// standard decoder (which scans every byte twice) was a third of a review's CPU time. Numbers
// are normalized as they are read, in the same single pass.
func DecodeJSON(data []byte) (map[string]any, error) {
	cfg := jsoniter.ConfigCompatibleWithStandardLibrary
	it := cfg.BorrowIterator(data)
	defer cfg.ReturnIterator(it)
	if next := it.WhatIsNext(); next != jsoniter.ObjectValue {
		return nil, fmt.Errorf("decode object: want a JSON object, got %s", valueType(next))
	}
	m := readObject(it)
	if it.Error != nil {
		return nil, fmt.Errorf("decode object: %w", it.Error)
	}
	if next := it.WhatIsNext(); next != jsoniter.InvalidValue || (it.Error != nil && !errors.Is(it.Error, io.EOF)) {
		return nil, errors.New("decode object: trailing data after the JSON object")
	}
	return m, nil
}

// MaxObjectValues bounds the values one object may hold. What a decoded object costs in memory
// and what its review costs in time grow with its values, not its bytes: three megabytes of
// empty routes (`{},{},...`) are a million maps, several hundred bytes each, and four such
// reviews took 6 GB. Real Istio objects hold tens to a few thousand values.
const MaxObjectValues = 100_000

// objectReader reads one object, counting its values as it goes.
type objectReader struct{ values int }

// readObject reads the JSON object at the iterator, skipping metadata.managedFields. The
// iterator must be at an object. Past MaxObjectValues it stops with an error on the iterator.
func readObject(it *jsoniter.Iterator) map[string]any {
	r := &objectReader{}
	m := map[string]any{}
	it.ReadMapCB(func(it *jsoniter.Iterator, key string) bool {
		if key == "metadata" && it.WhatIsNext() == jsoniter.ObjectValue {
			meta := map[string]any{}
			it.ReadMapCB(func(it *jsoniter.Iterator, key string) bool {
				switch {
				case key == "managedFields":
					it.Skip()
				case key == "annotations" && it.WhatIsNext() == jsoniter.ObjectValue:
					meta[key] = r.annotations(it)
				default:
					meta[key] = r.value(it)
				}
				return it.Error == nil
			})
			m[key] = meta
		} else {
			m[key] = r.value(it)
		}
		return it.Error == nil
	})
	return m
}

// value reads any JSON value: maps, slices, strings, booleans, nil, and numbers as
// manifest.Normalize makes them (int64 when whole, float64 otherwise).
func (r *objectReader) value(it *jsoniter.Iterator) any {
	if r.values++; r.values > MaxObjectValues {
		it.ReportError("decode object", fmt.Sprintf("the object holds more than %d values, meshguard's limit for one object", MaxObjectValues))
		return nil
	}
	switch it.WhatIsNext() {
	case jsoniter.ObjectValue:
		m := map[string]any{}
		it.ReadMapCB(func(it *jsoniter.Iterator, key string) bool {
			m[key] = r.value(it)
			return it.Error == nil
		})
		return m
	case jsoniter.ArrayValue:
		l := []any{}
		it.ReadArrayCB(func(it *jsoniter.Iterator) bool {
			l = append(l, r.value(it))
			return it.Error == nil
		})
		return l
	case jsoniter.NumberValue:
		return manifest.Normalize(it.ReadFloat64())
	case jsoniter.StringValue:
		return it.ReadString()
	case jsoniter.BoolValue:
		return it.ReadBool()
	case jsoniter.NilValue:
		it.ReadNil()
		return nil
	}
	it.ReportError("decode object", "want a JSON value")
	return nil
}

// lastApplied is kubectl's copy of the whole object as last applied: no rule reads it, and it
// is a long string of escaped JSON, the slowest kind of value to decode.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// StripUnread is the informer transform of the inventory cache: it drops what no rule reads,
// metadata.managedFields and kubectl's last-applied-configuration (together most of a stored
// object's bytes), before the object is cached.
func StripUnread(obj any) (any, error) {
	o, ok := obj.(metav1.Object)
	if !ok {
		return obj, nil // a tombstone: nothing of ours to strip
	}
	o.SetManagedFields(nil)
	if a := o.GetAnnotations(); a != nil {
		if _, ok := a[lastApplied]; ok {
			kept := make(map[string]string, len(a)-1)
			for k, v := range a {
				if k != lastApplied {
					kept[k] = v
				}
			}
			o.SetAnnotations(kept)
		}
	}
	return obj, nil
}

func (r *objectReader) annotations(it *jsoniter.Iterator) map[string]any {
	m := map[string]any{}
	it.ReadMapCB(func(it *jsoniter.Iterator, key string) bool {
		if key == lastApplied {
			it.Skip()
		} else {
			m[key] = r.value(it)
		}
		return it.Error == nil
	})
	return m
}

// admissionObject is request.object as the HTTP layer decodes it: in the envelope's single pass,
// with metadata.managedFields skipped rather than decoded and then deleted (it is most of an
// API server object's bytes).
type admissionObject map[string]any

func init() {
	jsoniter.RegisterTypeDecoderFunc("webhook.admissionObject", func(ptr unsafe.Pointer, it *jsoniter.Iterator) {
		switch it.WhatIsNext() {
		case jsoniter.NilValue:
			it.Skip()
			*(*admissionObject)(ptr) = nil
		case jsoniter.ObjectValue:
			*(*admissionObject)(ptr) = readObject(it)
		default:
			it.ReportError("decode request.object", "want a JSON object")
		}
	})
}

func valueType(t jsoniter.ValueType) string {
	switch t {
	case jsoniter.NilValue:
		return "null"
	case jsoniter.ArrayValue:
		return "an array"
	case jsoniter.StringValue:
		return "a string"
	case jsoniter.BoolValue:
		return "a boolean"
	case jsoniter.NumberValue:
		return "a number"
	}
	return "no JSON value"
}

// objectKey carries an object the HTTP layer already decoded to the handler.
type objectKey struct{}

func withObject(ctx context.Context, m map[string]any) context.Context {
	return context.WithValue(ctx, objectKey{}, m)
}

// oldObjectKey carries request.oldObject's bytes, which the HTTP layer does not decode.
type oldObjectKey struct{}

func withOldObject(ctx context.Context, b []byte) context.Context {
	return context.WithValue(ctx, oldObjectKey{}, b)
}

// oldObjectFrom returns request.oldObject as the HTTP layer read it, or nil.
func oldObjectFrom(ctx context.Context) []byte {
	b, _ := ctx.Value(oldObjectKey{}).([]byte)
	return b
}

// objectFrom returns the object the HTTP layer decoded, if it did.
func objectFrom(ctx context.Context) (map[string]any, bool) {
	m, ok := ctx.Value(objectKey{}).(map[string]any)
	return m, ok
}

// describe writes a finding the way the admission response shows it: rule ID, field path,
// message.
func describe(f engine.Finding) string {
	if f.Path == "" {
		return f.Rule + ": " + f.Message
	}
	return f.Rule + " " + f.Path + ": " + f.Message
}
