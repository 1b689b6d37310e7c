package lint_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/internal/engine"
	"github.com/meshguard/meshguard/internal/lint"
	"github.com/meshguard/meshguard/internal/manifest"
)

func TestAPolicyDefinedInTwoFilesIsOneCompetitor(t *testing.T) {
	dir := t.TempDir()
	const meshDefault = "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: mesh-default, namespace: istio-system}\nspec:\n  tracing: [{randomSamplingPercentage: 1}]\n"
	for name, content := range map[string]string{
		"a.yaml":    meshDefault,
		"b.yaml":    meshDefault,
		"logs.yaml": "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: mesh-logging, namespace: istio-system}\nspec:\n  accessLogging: [{providers: [{name: envoy}]}]\n",
	} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	res, err := manifest.Loader{}.Load([]string{dir})
	require.NoError(t, err)
	fs, err := lint.Run(context.Background(), newEngine(t), res.Objects, res.Problems, false)
	require.NoError(t, err)
	perObject := map[string]string{}
	for _, f := range fs {
		if f.Rule == "MG505" {
			perObject[f.File+" "+f.Name] = f.Message
		}
	}
	// The group is reported once, on the member Istio ignores, naming every member once.
	require.Equal(t, map[string]string{
		filepath.Join(dir, "logs.yaml") + " mesh-logging": "Telemetry mesh-default, mesh-logging are all mesh-wide in namespace istio-system: Istio applies only the oldest (mesh-default) and ignores the others",
	}, perObject)
}

// TestTheIstioCorpusFindings pins what lint reports on Istio's own sample and test configs (the
// corpus beside the checkout; skipped when absent). Each is a finding an Istio operator would
// agree with: competing mesh-wide Telemetries, values Istio's own types, CRD schema or istiod
// refuse, istiod's warnings, a PERMISSIVE policy, and tag overrides that are not CEL expressions
// over Envoy's attributes.
func TestTheIstioCorpusFindings(t *testing.T) {
	root := filepath.Join("..", "..", "..", "shared", "corpus", "istio")
	if _, err := os.Stat(root); err != nil {
		t.Skip("corpus not beside this checkout")
	}
	res, err := manifest.Loader{}.Load([]string{root})
	require.NoError(t, err)
	fs, err := lint.Run(context.Background(), newEngine(t), res.Objects, res.Problems, false)
	require.NoError(t, err)
	type finding struct{ rule, file, name string }
	var got []finding
	infos := map[string]int{}
	for _, f := range fs {
		rel, err := filepath.Rel(root, f.File)
		require.NoError(t, err)
		if f.Severity == engine.SeverityInfo {
			infos[f.Rule]++
			continue
		}
		got = append(got, finding{f.Rule, rel, f.Name})
	}
	// Infos are counted: every HTTP route that has no retries and that Istio retries by default.
	require.Equal(t, map[string]int{"MG107": 131}, infos)
	require.ElementsMatch(t, []finding{
		// Each competing group once, on the member Istio ignores.
		{"MG505", "analyzer-testdata/telemetry-default-selector.yaml", "has-conflict-2"},
		{"MG505", "samples/open-telemetry__loki__telemetry.yaml", "mesh-logging"},
		// What the cluster refuses (MG001: the CRD schema, istiod) or warns about (MG003).
		// The _err fields are Istio's test annotations, which the API server refuses too.
		{"MG001", "analyzer-testdata/deprecation.yaml", "productpage"},
		{"MG001", "analyzer-testdata/k8sgateway-selector.yaml", "telemetry-effective"},
		{"MG001", "analyzer-testdata/virtualservice_destinationhosts.yaml", "reviews-bogushost"},
		{"MG003", "analyzer-testdata/virtualservice_dupmatches.yaml", "sample-foo-cluster01"},
		{"MG003", "analyzer-testdata/virtualservice_dupmatches.yaml", "duplicate-match"},
		{"MG003", "analyzer-testdata/virtualservice_dupmatches.yaml", "duplicate-match"},
		{"MG003", "analyzer-testdata/virtualservice_dupmatches.yaml", "almost-duplicate-match"},
		{"MG003", "analyzer-testdata/virtualservice_dupmatches.yaml", "duplicate-tcp-match"},
		{"MG003", "analyzer-testdata/virtualservice_dupmatches.yaml", "duplicate-tcp-match"},
		{"MG003", "analyzer-testdata/virtualservice_dupmatches.yaml", "duplicate-empty-tcp"},
		{"MG003", "analyzer-testdata/virtualservice_dupmatches.yaml", "almost-duplicate-tcp-match"},
		{"MG003", "analyzer-testdata/virtualservice_dupmatches.yaml", "tls-routing"},
		{"MG003", "analyzer-testdata/virtualservice_dupmatches.yaml", "tls-routing"},
		{"MG003", "analyzer-testdata/virtualservice_dupmatches.yaml", "tls-routing-almostmatch"},
		{"MG001", "analyzer-testdata/virtualservice_gateways.yaml", "httpbin"},
		{"MG001", "analyzer-testdata/virtualservice_gateways.yaml", "httpbin-bogus"},
		{"MG001", "analyzer-testdata/virtualservice_gateways.yaml", "httpbin-mesh"},
		{"MG001", "analyzer-testdata/virtualservice_gateways.yaml", "httpbin-mesh"},
		{"MG001", "analyzer-testdata/virtualservice_gateways.yaml", "cross-test"},
		{"MG001", "analyzer-testdata/virtualservice_internal_gateway_ref.yaml", "httpbin"},
		{"MG003", "analyzer-testdata/virtualservice_overlappingmatches.yaml", "non-method-get"},
		{"MG003", "analyzer-testdata/virtualservice_overlappingmatches.yaml", "overlapping-in-single-match"},
		{"MG003", "analyzer-testdata/virtualservice_overlappingmatches.yaml", "overlapping-in-two-matches"},
		{"MG003", "analyzer-testdata/virtualservice_overlappingmatches.yaml", "overlapping-mathes-with-different-methods"},
		{"MG003", "samples/bookinfo__networking__fault-injection-details-v1.yaml", "details"},
		{"MG001", "validation-testdata/destinationrule-invalid.yaml", "bookinfo-ratings"},
		{"MG001", "validation-testdata/destinationrule-invalid.yaml", "bookinfo-ratings"},
		{"MG001", "validation-testdata/destinationrule-invalid.yaml", "bookinfo-ratings"},
		{"MG001", "validation-testdata/destinationrule-invalid.yaml", "bookinfo-ratings"},
		{"MG001", "validation-testdata/destinationrule-invalid.yaml", "bookinfo-ratings"},
		{"MG001", "validation-testdata/destinationrule-invalid.yaml", "bookinfo-ratings"},
		{"MG001", "validation-testdata/peerauth-invalid.yaml", "port-level-global"},
		{"MG001", "validation-testdata/peerauth-invalid.yaml", "port-level-global"},
		{"MG001", "validation-testdata/peerauth-invalid.yaml", "empty-port-level"},
		{"MG001", "validation-testdata/peerauth-invalid.yaml", "empty-port-level"},
		{"MG001", "validation-testdata/peerauth-invalid.yaml", "zero-port"},
		{"MG001", "validation-testdata/peerauth-invalid.yaml", "zero-port"},
		{"MG001", "validation-testdata/peerauth-invalid.yaml", "high-port"},
		{"MG001", "validation-testdata/peerauth-invalid.yaml", "high-port"},
		{"MG003", "validation-testdata/peerauth-valid.yaml", "partial-selector"},
		{"MG001", "validation-testdata/telemetry-invalid.yaml", "bad-provider"},
		{"MG001", "validation-testdata/telemetry-invalid.yaml", "bad-provider"},
		{"MG001", "validation-testdata/telemetry-invalid.yaml", "bad-custom-metric"},
		{"MG001", "validation-testdata/telemetry-invalid.yaml", "bad-custom-metric"},
		{"MG001", "validation-testdata/telemetry-invalid.yaml", "bad-tag-upsert"},
		{"MG001", "validation-testdata/telemetry-invalid.yaml", "bad-tag-upsert"},
		{"MG001", "validation-testdata/telemetry-invalid.yaml", "bad-tag-remove"},
		{"MG001", "validation-testdata/telemetry-invalid.yaml", "bad-tag-remove"},
		{"MG001", "validation-testdata/peerauth-invalid.yaml", "bad-mode"},
		{"MG001", "validation-testdata/peerauth-invalid.yaml", "bad-port"},
		{"MG301", "validation-testdata/peerauth-valid.yaml", "full"},
		{"MG404", "validation-testdata/telemetry-invalid.yaml", "bad-tag-remove"},
		{"MG404", "validation-testdata/telemetry-valid.yaml", "tag-upsert"},
		// Originated TLS to a cluster service without caCertificates: Istio's analyzer inputs,
		// which its own CaCertificateAnalyzer reports too (IST0128, IST0129).
		{"MG207", "analyzer-testdata/destinationrule-compound-mutual-simple.yaml", "db-mtls"},
		{"MG207", "analyzer-testdata/destinationrule-compound-mutual-simple.yaml", "db-mtls"},
		{"MG207", "analyzer-testdata/destinationrule-compound-simple-mutual.yaml", "db-mtls"},
		{"MG207", "analyzer-testdata/destinationrule-compound-simple-mutual.yaml", "db-mtls"},
		{"MG207", "analyzer-testdata/destinationrule-mutual-destination.yaml", "db-mtls"},
		{"MG207", "analyzer-testdata/destinationrule-mutual-port.yaml", "db-mtls"},
		{"MG207", "analyzer-testdata/destinationrule-simple-destination-credentialname.yaml", "db-tls"},
		{"MG207", "analyzer-testdata/destinationrule-simple-destination.yaml", "db-tls"},
		{"MG207", "analyzer-testdata/destinationrule-simple-port-credentialname.yaml", "db-tls"},
		{"MG207", "analyzer-testdata/destinationrule-simple-port.yaml", "db-tls"},
		// istiod's own gateway is served with the mesh CA's certificate, not a public one.
		{"MG207", "samples/multicluster__expose-istiod-https.yaml", "istiod-dr"},
		{"MG207", "samples/multicluster__expose-istiod-https.yaml", "istiod-dr"},
	}, got)
}
