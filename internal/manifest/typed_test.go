package manifest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	//lint:ignore SA1019 the reference: the decoder istio.io/api's own UnmarshalJSON uses
	"github.com/golang/protobuf/jsonpb"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
)

// jsonpbDecode is what istio.io/api's UnmarshalJSON does, unknown fields refused.
func jsonpbDecode(spec any, msg proto.Message) error {
	b, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	u := jsonpb.Unmarshaler{AllowUnknownFields: false}
	return u.Unmarshal(strings.NewReader(string(b)), protoadapt.MessageV1Of(msg))
}

// TestTypedSpecsEqualIstiosJSONDecoder decodes every Istio object meshguard reads in the shared
// corpus (skipped when absent), the rules' testdata and Istio's validation cases both ways:
// the typed spec built from the generic form must equal the one Istio's JSON decoder builds.
func TestTypedSpecsEqualIstiosJSONDecoder(t *testing.T) {
	roots := []string{filepath.Join("..", "..", "policies"), filepath.Join("..", "validate", "testdata")}
	if _, err := os.Stat(filepath.Join("..", "..", "..", "shared", "corpus")); err == nil {
		roots = append(roots, filepath.Join("..", "..", "..", "shared", "corpus"))
	}
	res, err := Loader{}.Load(roots)
	require.NoError(t, err)
	require.NotEmpty(t, res.Objects)
	for _, o := range res.Objects {
		if InventoryOnly(o.Kind) {
			continue // a Service has no Istio spec
		}
		spec, ok := o.Raw["spec"]
		if !ok || spec == nil {
			spec = map[string]any{}
		}
		want, got := kinds[o.Kind].newSpec(), kinds[o.Kind].newSpec()
		wantErr := jsonpbDecode(spec, want)
		gotErr := fill(got.ProtoReflect(), spec)
		require.Equal(t, wantErr == nil, gotErr == nil, "%s %s: jsonpb: %v, fill: %v", o.File, o.Ref(), wantErr, gotErr)
		require.True(t, proto.Equal(want, got), "%s %s:\n jsonpb: %v\n fill:   %v", o.File, o.Ref(), want, got)
	}
	t.Logf("%d objects decoded alike", len(res.Objects))
}
