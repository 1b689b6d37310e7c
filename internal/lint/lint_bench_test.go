package lint_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/internal/engine"
	"github.com/meshguard/meshguard/internal/lint"
	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/meshguard/meshguard/policies"
)

// A realistic set: a VirtualService with two retrying routes, its DestinationRule with subsets
// and port-level settings, a namespace PeerAuthentication and a Telemetry.
const vsTemplate = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: svc-%[1]d
  namespace: ns-%[2]d
spec:
  hosts: [svc-%[1]d]
  http:
  - match:
    - headers:
        end-user: {exact: jason}
    route:
    - destination: {host: svc-%[1]d, subset: v2}
    timeout: 4s
    retries: {attempts: 3, perTryTimeout: 1s, retryOn: "gateway-error,connect-failure"}
  - route:
    - destination: {host: svc-%[1]d, subset: v1}
      weight: 90
    - destination: {host: svc-%[1]d, subset: v3}
      weight: 10
    timeout: 3s
    retries: {attempts: 2, perTryTimeout: 1s}
`

const drTemplate = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: svc-%[1]d
  namespace: ns-%[2]d
spec:
  host: svc-%[1]d
  trafficPolicy:
    connectionPool:
      http: {maxRetries: 64}
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}
    portLevelSettings:
    - port: {number: 9080}
      outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 30}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - name: v3
    labels: {version: v3}
    trafficPolicy:
      tls: {mode: ISTIO_MUTUAL}
`

const paTemplate = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: ns-%[2]d
spec:
  mtls: {mode: STRICT}
`

const telTemplate = `apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: default
  namespace: ns-%[2]d
spec:
  tracing: [{randomSamplingPercentage: 1}]
  metrics:
  - providers: [{name: prometheus}]
    overrides:
    - tagOverrides:
        request_host: {value: "has(request.host) ? request.host : 'unknown'"}
`

// generate writes n objects into dir: per namespace one PeerAuthentication and one Telemetry,
// the rest VirtualService/DestinationRule pairs, 100 objects per file.
func generate(tb testing.TB, dir string, n int) {
	tb.Helper()
	var buf []byte
	file := 0
	flush := func() {
		if len(buf) == 0 {
			return
		}
		p := filepath.Join(dir, fmt.Sprintf("team-%03d", file/20), fmt.Sprintf("objects-%04d.yaml", file))
		require.NoError(tb, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(tb, os.WriteFile(p, buf, 0o644))
		buf, file = buf[:0], file+1
	}
	count := 0
	for i := 0; count < n; i++ {
		ns := i / 50
		var tmpl string
		switch {
		case i%50 == 0:
			tmpl = paTemplate
		case i%50 == 1:
			tmpl = telTemplate
		case i%2 == 0:
			tmpl = vsTemplate
		default:
			tmpl = drTemplate
		}
		buf = append(buf, "---\n"...)
		buf = fmt.Appendf(buf, tmpl, i/2, ns)
		count++
		if count%100 == 0 {
			flush()
		}
	}
	flush()
}

func newEngine(tb testing.TB) *engine.Engine {
	tb.Helper()
	e, err := policies.Engine(context.Background(), config.Default(), nil, nil)
	require.NoError(tb, err)
	return e
}

// BenchmarkLint10000Objects measures `meshguard lint` end to end on a generated directory:
// walking, reading, parsing and strict decoding, then the full bundle with cross-object rules.
func BenchmarkLint10000Objects(b *testing.B) {
	dir := b.TempDir()
	generate(b, dir, 10000)
	eng := newEngine(b)
	// As `meshguard lint` runs it (cmd/meshguard/gc.go).
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	b.ResetTimer()
	for b.Loop() {
		res, err := manifest.Loader{}.Load([]string{dir})
		require.NoError(b, err)
		require.Len(b, res.Objects, 10000)
		if _, err := lint.Run(context.Background(), eng, res.Objects, res.Problems, true); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoad10000Objects is the loading half of the above, to see where the time goes.
func BenchmarkLoad10000Objects(b *testing.B) {
	dir := b.TempDir()
	generate(b, dir, 10000)
	b.ResetTimer()
	for b.Loop() {
		if _, err := (manifest.Loader{}).Load([]string{dir}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestGeneratedMeshLintsClean(t *testing.T) {
	dir := t.TempDir()
	generate(t, dir, 400)
	res, err := manifest.Loader{}.Load([]string{dir})
	require.NoError(t, err)
	require.Len(t, res.Objects, 400)
	fs, err := lint.Run(context.Background(), newEngine(t), res.Objects, res.Problems, false)
	require.NoError(t, err)
	require.Empty(t, fs, "the benchmark corpus is realistic good config")
}

// BenchmarkReviewPerObject evaluates the full built-in bundle on every object of a corpus, one
// at a time against the complete inventory of the corpus, and reports the median and 90th
// percentile time per object: Istio's own sample and test configurations (beside the checkout,
// skipped when absent) and the generated mesh of BenchmarkLint10000Objects.
func BenchmarkReviewPerObject(b *testing.B) {
	generated := b.TempDir()
	generate(b, generated, 2000)
	for _, c := range []struct{ name, dir string }{
		{"istio-corpus", filepath.Join("..", "..", "..", "shared", "corpus", "istio")},
		{"generated-mesh", generated},
	} {
		b.Run(c.name, func(b *testing.B) {
			if _, err := os.Stat(c.dir); err != nil {
				b.Skipf("%s: %v", c.dir, err)
			}
			res, err := manifest.Loader{}.Load([]string{c.dir})
			require.NoError(b, err)
			eng := newEngine(b)
			cfg := eng.Config()
			inv := engine.NewIndex(res.Objects, true, cfg.RootNamespace, cfg.MeshDomain)
			ctx := context.Background()
			best := make([]time.Duration, len(res.Objects))
			// The cluster's validation (CRD schema, istiod) runs before the rules in lint and
			// the webhook; it is timed apart so that the rules' own cost stays visible.
			bestValid := make([]time.Duration, len(res.Objects))
			for b.Loop() {
				for i, o := range res.Objects {
					start := time.Now()
					if _, err := eng.Review(ctx, o, inv); err != nil {
						b.Fatal(err)
					}
					if d := time.Since(start); best[i] == 0 || d < best[i] {
						best[i] = d
					}
					start = time.Now()
					eng.Validate(ctx, o, false)
					if d := time.Since(start); bestValid[i] == 0 || d < bestValid[i] {
						bestValid[i] = d
					}
				}
			}
			slices.Sort(best)
			slices.Sort(bestValid)
			b.ReportMetric(float64(best[len(best)/2].Nanoseconds()), "median-ns/object")
			b.ReportMetric(float64(best[len(best)*9/10].Nanoseconds()), "p90-ns/object")
			b.ReportMetric(float64(bestValid[len(bestValid)/2].Nanoseconds()), "validate-median-ns/object")
			b.ReportMetric(float64(len(best)), "objects")
		})
	}
}
