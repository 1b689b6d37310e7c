package manifest

import (
	"encoding/json"
	"math"
	"strconv"
)

// NormalizeInPlace is Normalize for a value its caller owns (freshly decoded JSON): it turns the
// whole float64s into int64 without copying.
func NormalizeInPlace(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			switch x := x.(type) {
			case float64:
				t[k] = wholeAsInt(x)
			case map[string]any, []any:
				NormalizeInPlace(x)
			}
		}
	case []any:
		for i, x := range t {
			switch x := x.(type) {
			case float64:
				t[i] = wholeAsInt(x)
			case map[string]any, []any:
				NormalizeInPlace(x)
			}
		}
	}
}

// Normalize returns a copy of a JSON-like value with every number in the form the rules read:
// int64 for whole numbers that fit exactly in a float64, float64 otherwise. It accepts what
// encoding/json (with or without UseNumber) and apimachinery's unstructured decoder produce,
// and never changes its input, so it is safe on objects an informer's cache still holds.
func Normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = Normalize(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = Normalize(x)
		}
		return out
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, err := t.Float64()
		if err != nil {
			// Out of float64 range: keep the text, the strict decoder reports it.
			return t.String()
		}
		return wholeAsInt(f)
	case float64:
		return wholeAsInt(t)
	case int:
		return int64(t)
	case int32:
		return int64(t)
	}
	return v
}

// Int reads an integer from a generic document: YAML gives int64, JSON float64, and protobuf
// wrappers may arrive as strings or {value: N}. Anything else is 0.
func Int(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case int:
		return int64(n)
	case float64:
		return int64(n)
	case string:
		i, _ := strconv.ParseInt(n, 10, 64)
		return i
	case map[string]any:
		return Int(n["value"])
	}
	return 0
}

func wholeAsInt(f float64) any {
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return int64(f)
	}
	return f
}
