package lint_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/internal/lint"
	"github.com/meshguard/meshguard/internal/manifest"
)

const (
	svcMeshStrict = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}\n"
	// The pods an app label convention would guess for host ledger accept plaintext.
	svcLedgerPlaintextPA = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: ledger, namespace: shop}\nspec: {selector: {matchLabels: {app: ledger}}, mtls: {mode: DISABLE}}\n"
	svcLedgerDR          = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: ledger, namespace: shop}\nspec: {host: ledger, trafficPolicy: {tls: {mode: DISABLE}}}\n"
	// Its Service selects other pods, and carries fields meshguard does not model.
	svcLedger = `apiVersion: v1
kind: Service
metadata:
  name: ledger
  annotations: {exceptions.meshguard.io/MG999: "not a rule"}
spec:
  selector: {app: ledger-v2}
  type: ClusterIP
  sessionAffinity: ClientIP
  ports: [{name: http, port: 80, targetPort: http, appProtocol: http}]
status: {loadBalancer: {}}
`
)

// TestLintReadsServicesAsContext runs lint over files as `meshguard lint -n shop` does: a
// Service in the files decides which workloads are behind its host, and is itself never judged.
func TestLintReadsServicesAsContext(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		want    []string // rule, object and message of every MG501 finding
		checked int
	}{
		{
			name:  "without a Service the app label convention finds the plaintext workloads, and nothing is reported",
			files: map[string]string{"mesh.yaml": svcMeshStrict, "ledger.yaml": svcLedgerPlaintextPA + "---\n" + svcLedgerDR},
			want:  nil, checked: 3,
		},
		{
			name:  "a Service in another file selects other pods, which keep the mesh's STRICT, and the finding names the Service",
			files: map[string]string{"mesh.yaml": svcMeshStrict, "ledger.yaml": svcLedgerPlaintextPA + "---\n" + svcLedgerDR, "svc.yaml": svcLedger},
			want: []string{"MG501 DestinationRule shop/ledger: tls.mode is DISABLE for ledger, but its pods selected by Service shop/ledger " +
				"require mutual TLS (mesh policy istio-system/default): client sidecars' plaintext connections will be refused"},
			checked: 3,
		},
		{
			name:  "a host without a Service says it relies on the convention",
			files: map[string]string{"mesh.yaml": svcMeshStrict, "web.yaml": "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: web, namespace: shop}\nspec: {host: web, trafficPolicy: {tls: {mode: SIMPLE}}}\n"},
			want: []string{"MG501 DestinationRule shop/web: tls.mode is SIMPLE for web, but its pods labelled app=web (Istio's convention; no Service shop/web is known) " +
				"require mutual TLS (mesh policy istio-system/default): client sidecars' one-way TLS connections will be refused"},
			checked: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tt.files {
				require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
			}
			res, err := manifest.Loader{}.Load([]string{dir})
			require.NoError(t, err)
			require.Empty(t, res.Problems)
			lint.Place(res.Objects, "shop")
			fs, err := lint.Run(context.Background(), newEngine(t), res.Objects, res.Problems, true)
			require.NoError(t, err)
			var got []string
			for _, f := range fs {
				require.NotEqual(t, manifest.KindService, f.Kind, "a Service is never judged: %s %s", f.Rule, f.Message)
				if f.Rule == "MG501" {
					got = append(got, f.Rule+" "+f.Kind+" "+f.Namespace+"/"+f.Name+": "+f.Message)
				}
			}
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.checked, lint.Checked(res.Objects), "Services are not counted as checked objects")
		})
	}
}
