package manifest

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
)

// fill sets m from a generic JSON value as Istio's JSON decoder (golang/protobuf jsonpb, which
// istio.io/api's UnmarshalJSON uses) reads it, without a round trip through JSON text: field
// names in JSON or proto form, null as unset (in maps too), enums by name or number, numbers
// also written as strings, durations as Go durations ("1m30s"). fromRaw has already checked the
// shape (checkSpec), so an error here is a value the check let through.
func fill(m protoreflect.Message, v any) error {
	md := m.Descriptor()
	if f, ok := fillWellKnown[md.FullName()]; ok {
		return f(m, v)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("%s: expected an object, got %s", md.FullName(), describe(v))
	}
	fields := md.Fields()
	for k, x := range obj {
		fd := fields.ByJSONName(k)
		if fd == nil {
			fd = fields.ByName(protoreflect.Name(k))
		}
		if fd == nil {
			return fmt.Errorf("%s: unknown field %q", md.FullName(), k)
		}
		if x == nil && (fd.Message() == nil || fd.Message().FullName() != "google.protobuf.Value") {
			continue // null leaves a field unset
		}
		var err error
		switch {
		case fd.IsMap():
			err = fillMap(m.Mutable(fd).Map(), fd, x)
		case fd.IsList():
			err = fillList(m.Mutable(fd).List(), fd, x)
		case fd.Message() != nil:
			err = fill(m.Mutable(fd).Message(), x)
		default:
			var val protoreflect.Value
			if val, err = protoScalar(fd, x); err == nil {
				m.Set(fd, val)
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	return nil
}

func fillMap(mm protoreflect.Map, fd protoreflect.FieldDescriptor, v any) error {
	obj, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("expected a map, got %s", describe(v))
	}
	for k, x := range obj {
		if x == nil {
			// The API server drops a null map value before storing the object or showing it to
			// a webhook, istiod's included.
			continue
		}
		key, err := protoScalar(fd.MapKey(), k)
		if err != nil {
			return err
		}
		vd := fd.MapValue()
		if vd.Message() != nil {
			val := mm.NewValue()
			if err := fill(val.Message(), x); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			mm.Set(key.MapKey(), val)
			continue
		}
		val, err := protoScalar(vd, x)
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		mm.Set(key.MapKey(), val)
	}
	return nil
}

func fillList(l protoreflect.List, fd protoreflect.FieldDescriptor, v any) error {
	items, ok := v.([]any)
	if !ok {
		return fmt.Errorf("expected a list, got %s", describe(v))
	}
	for i, x := range items {
		if fd.Message() != nil {
			el := l.NewElement()
			if err := fill(el.Message(), x); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
			l.Append(el)
			continue
		}
		val, err := protoScalar(fd, x)
		if err != nil {
			return fmt.Errorf("[%d]: %w", i, err)
		}
		l.Append(val)
	}
	return nil
}

// protoScalar converts a generic value (or a map key, always a string) to fd's kind.
func protoScalar(fd protoreflect.FieldDescriptor, v any) (protoreflect.Value, error) {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		switch t := v.(type) {
		case bool:
			return protoreflect.ValueOfBool(t), nil
		case string: // a map key
			b, err := strconv.ParseBool(t)
			return protoreflect.ValueOfBool(b), err
		}
	case protoreflect.StringKind:
		if s, ok := v.(string); ok {
			return protoreflect.ValueOfString(s), nil
		}
	case protoreflect.BytesKind:
		if s, ok := v.(string); ok {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				b, err = base64.URLEncoding.DecodeString(s)
			}
			return protoreflect.ValueOfBytes(b), err
		}
	case protoreflect.EnumKind:
		switch t := v.(type) {
		case string:
			if ev := fd.Enum().Values().ByName(protoreflect.Name(t)); ev != nil {
				return protoreflect.ValueOfEnum(ev.Number()), nil
			}
			return protoreflect.Value{}, fmt.Errorf("unknown value %q for %s", t, fd.Enum().Name())
		case int64:
			return protoreflect.ValueOfEnum(protoreflect.EnumNumber(t)), nil
		}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		f, err := number(v)
		if fd.Kind() == protoreflect.FloatKind {
			return protoreflect.ValueOfFloat32(float32(f)), err
		}
		return protoreflect.ValueOfFloat64(f), err
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		i, err := integer(v, math.MinInt32, math.MaxInt32)
		return protoreflect.ValueOfInt32(int32(i)), err
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		i, err := integer(v, math.MinInt64, math.MaxInt64)
		return protoreflect.ValueOfInt64(int64(i)), err
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		i, err := integer(v, 0, math.MaxUint32)
		return protoreflect.ValueOfUint32(uint32(i)), err
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		if s, ok := v.(string); ok {
			u, err := strconv.ParseUint(s, 10, 64)
			return protoreflect.ValueOfUint64(u), err
		}
		i, err := integer(v, 0, math.MaxUint64)
		return protoreflect.ValueOfUint64(uint64(i)), err
	}
	return protoreflect.Value{}, fmt.Errorf("expected a %s, got %s", fd.Kind(), describe(v))
}

func number(v any) (float64, error) {
	switch t := v.(type) {
	case int64:
		return float64(t), nil
	case float64:
		return t, nil
	case string:
		return strconv.ParseFloat(t, 64)
	}
	return 0, fmt.Errorf("expected a number, got %s", describe(v))
}

func integer(v any, lo, hi float64) (float64, error) {
	if i, ok := v.(int64); ok {
		if float64(i) < lo || float64(i) > hi {
			return 0, fmt.Errorf("%d is out of range", i)
		}
		return float64(i), nil
	}
	f, err := number(v)
	if err != nil {
		return 0, err
	}
	if f != math.Trunc(f) || f < lo || f > hi {
		return 0, fmt.Errorf("%v is not an integer in range", f)
	}
	return f, nil
}

// fillWellKnown reads the protobuf well-known types in their JSON forms, durations as jsonpb
// reads them (time.ParseDuration).
var fillWellKnown = map[protoreflect.FullName]func(protoreflect.Message, any) error{
	"google.protobuf.Duration": func(m protoreflect.Message, v any) error {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("expected a duration, got %s", describe(v))
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		fields := m.Descriptor().Fields()
		m.Set(fields.ByName("seconds"), protoreflect.ValueOfInt64(int64(d/time.Second)))
		m.Set(fields.ByName("nanos"), protoreflect.ValueOfInt32(int32(d%time.Second)))
		return nil
	},
	"google.protobuf.Timestamp": func(m protoreflect.Message, v any) error {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("expected a timestamp, got %s", describe(v))
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return err
		}
		fields := m.Descriptor().Fields()
		m.Set(fields.ByName("seconds"), protoreflect.ValueOfInt64(t.Unix()))
		m.Set(fields.ByName("nanos"), protoreflect.ValueOfInt32(int32(t.Nanosecond())))
		return nil
	},
	"google.protobuf.BoolValue":   fillWrapper,
	"google.protobuf.StringValue": fillWrapper,
	"google.protobuf.BytesValue":  fillWrapper,
	"google.protobuf.Int32Value":  fillWrapper,
	"google.protobuf.UInt32Value": fillWrapper,
	"google.protobuf.Int64Value":  fillWrapper,
	"google.protobuf.UInt64Value": fillWrapper,
	"google.protobuf.FloatValue":  fillWrapper,
	"google.protobuf.DoubleValue": fillWrapper,
	"google.protobuf.Struct": func(m protoreflect.Message, v any) error {
		obj, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("expected an object, got %s", describe(v))
		}
		s, err := structpb.NewStruct(obj)
		if err != nil {
			return err
		}
		proto.Merge(m.Interface(), s)
		return nil
	},
	"google.protobuf.Value": func(m protoreflect.Message, v any) error {
		val, err := structpb.NewValue(v)
		if err != nil {
			return err
		}
		proto.Merge(m.Interface(), val)
		return nil
	},
	"google.protobuf.ListValue": func(m protoreflect.Message, v any) error {
		items, ok := v.([]any)
		if !ok {
			return fmt.Errorf("expected a list, got %s", describe(v))
		}
		l, err := structpb.NewList(items)
		if err != nil {
			return err
		}
		proto.Merge(m.Interface(), l)
		return nil
	},
	"google.protobuf.Empty": func(protoreflect.Message, any) error { return nil },
}

func fillWrapper(m protoreflect.Message, v any) error {
	fd := m.Descriptor().Fields().ByName("value")
	val, err := protoScalar(fd, v)
	if err != nil {
		return err
	}
	m.Set(fd, val)
	return nil
}
