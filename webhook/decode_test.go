package webhook

import (
	"testing"

	jsoniter "github.com/json-iterator/go"
	"github.com/stretchr/testify/require"
)

func TestTheEnvelopeDecodesTheObjectLikeDecodeJSON(t *testing.T) {
	const object = `{"apiVersion":"networking.istio.io/v1","kind":"VirtualService",` +
		`"metadata":{"name":"r","namespace":"shop","managedFields":[{"manager":"kubectl","fieldsV1":{"f:spec":{}}}]},` +
		`"spec":{"http":[{"retries":{"attempts":3,"perTryTimeout":"1s"},"timeout":"2.5s"}]}}`
	tests := []struct {
		name    string
		body    string
		want    map[string]any
		wantErr bool
	}{
		{name: "managedFields are skipped and whole numbers are int64",
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
			if review.Request.Object != nil {
				prepareObject(review.Request.Object)
			}
			if tc.want == nil {
				require.Nil(t, review.Request.Object)
				return
			}
			require.Equal(t, tc.want, map[string]any(review.Request.Object))
			require.NotContains(t, review.Request.Object["metadata"], "managedFields")
			require.IsType(t, int64(0), review.Request.Object["spec"].(map[string]any)["http"].([]any)[0].(map[string]any)["retries"].(map[string]any)["attempts"])
		})
	}
}
