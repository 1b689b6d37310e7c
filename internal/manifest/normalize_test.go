package manifest

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNormalizeGivesWholeNumbersAsInt64(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want any
	}{
		{"a whole float64 becomes int64", 3.0, int64(3)},
		{"a fraction stays float64", 2.5, 2.5},
		{"a json.Number integer becomes int64", json.Number("10"), int64(10)},
		{"an int becomes int64", 7, int64(7)},
		{"maps and lists are copied through", map[string]any{"a": []any{1.0, "x"}}, map[string]any{"a": []any{int64(1), "x"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, Normalize(tc.in))
		})
	}
	t.Run("the input is left unchanged", func(t *testing.T) {
		in := map[string]any{"n": 1.0}
		Normalize(in)
		require.Equal(t, 1.0, in["n"])
	})
}

func TestNewObjectReturnsTheProblemWithItsFieldPath(t *testing.T) {
	raw := map[string]any{"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
		"metadata": map[string]any{"name": "r", "namespace": "shop"},
		"spec":     map[string]any{"http": []any{map[string]any{"retries": map[string]any{"attemps": int64(2)}}}}}
	obj, p := NewObject(raw)
	require.NotNil(t, obj, "the identity is still read")
	require.NotNil(t, p)
	require.Equal(t, "spec.http[0].retries.attemps", p.Path)
	require.Equal(t, "VirtualService", p.Kind)
	require.Equal(t, "r", p.Name)

	obj, p = NewObject(map[string]any{"apiVersion": "v1", "kind": "ConfigMap"})
	require.Nil(t, obj, "a kind meshguard does not check")
	require.Nil(t, p)
}

func TestIntReadsEveryFormAnIntegerArrivesIn(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want int64
	}{
		{"YAML's int64", int64(3), 3},
		{"JSON's float64", float64(3), 3},
		{"a Go int", 3, 3},
		{"a protobuf wrapper's string", "64", 64},
		{"a protobuf wrapper object", map[string]any{"value": int64(5)}, 5},
		{"a string that is no number is 0", "many", 0},
		{"nothing is 0", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Int(tt.in); got != tt.want {
				t.Fatalf("Int(%#v) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}
