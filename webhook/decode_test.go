package webhook

import (
	"strings"
	"testing"

	jsoniter "github.com/json-iterator/go"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestTheEnvelopeDecodesTheObjectLikeDecodeJSON(t *testing.T) {
	const object = `{"apiVersion":"networking.istio.io/v1","kind":"VirtualService",` +
		`"metadata":{"name":"r","namespace":"shop","annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"kind\":\"VirtualService\"}","team":"shop"},"managedFields":[{"manager":"kubectl","fieldsV1":{"f:spec":{}}}]},` +
		`"spec":{"http":[{"retries":{"attempts":3,"perTryTimeout":"1s"},"timeout":"2.5s"}]}}`
	tests := []struct {
		name    string
		body    string
		want    map[string]any
		wantErr bool
	}{
		{name: "managedFields and last-applied-configuration are skipped and whole numbers are int64",
			body: `{"request":{"uid":"u","object":` + object + `}}`,
			want: func() map[string]any { m, err := DecodeJSON([]byte(object)); require.NoError(t, err); return m }()},
		{name: "a null object is no object", body: `{"request":{"uid":"u","object":null}}`},
		{name: "an object that is not a JSON object is an error", body: `{"request":{"uid":"u","object":[1,2]}}`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var review reviewEnvelope
			err := jsoniter.ConfigCompatibleWithStandardLibrary.Unmarshal([]byte(tc.body), &review)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			if tc.want == nil {
				require.Nil(t, review.Request.Object)
				return
			}
			require.Equal(t, tc.want, map[string]any(review.Request.Object))
			require.NotContains(t, review.Request.Object["metadata"], "managedFields")
			require.Equal(t, map[string]any{"team": "shop"}, review.Request.Object["metadata"].(map[string]any)["annotations"])
			require.IsType(t, int64(0), review.Request.Object["spec"].(map[string]any)["http"].([]any)[0].(map[string]any)["retries"].(map[string]any)["attempts"])
		})
	}
}

func TestStripUnreadDropsWhatNoRuleReads(t *testing.T) {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
		"metadata": map[string]any{
			"name": "default", "namespace": "shop",
			"annotations": map[string]any{
				lastApplied:                     `{"apiVersion":"security.istio.io/v1"}`,
				"exceptions.meshguard.io/MG301": "reason=migration; expires=2099-01-01",
			},
			"managedFields": []any{map[string]any{"manager": "kubectl"}},
		},
	}}
	out, err := StripUnread(u)
	require.NoError(t, err)
	require.Same(t, u, out)
	require.Empty(t, u.GetManagedFields())
	require.Equal(t, map[string]string{"exceptions.meshguard.io/MG301": "reason=migration; expires=2099-01-01"}, u.GetAnnotations(),
		"exception annotations are what rules read and must stay")

	tombstone := "not an object"
	out, err = StripUnread(tombstone)
	require.NoError(t, err)
	require.Equal(t, tombstone, out)
}

func TestAnObjectIsReadUpToMaxObjectValues(t *testing.T) {
	// hosts of n names: apiVersion, kind, metadata.name, spec, hosts and the n names are n + 5
	// values.
	object := func(n int) []byte {
		var b strings.Builder
		b.WriteString(`{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"big"},"spec":{"hosts":["h"`)
		for range n - 1 {
			b.WriteString(`,"h"`)
		}
		b.WriteString(`]}}`)
		return []byte(b.String())
	}
	_, err := DecodeJSON(object(MaxObjectValues - 5))
	require.NoError(t, err, "an object of exactly MaxObjectValues values is read")
	_, err = DecodeJSON(object(MaxObjectValues - 4))
	require.ErrorContains(t, err, "more than 100000 values")

	var review reviewEnvelope
	err = jsoniter.ConfigCompatibleWithStandardLibrary.Unmarshal([]byte(`{"request":{"uid":"u","object":`+string(object(MaxObjectValues-4))+`}}`), &review)
	require.ErrorContains(t, err, "more than 100000 values", "the envelope's decoder has the same limit")
}
