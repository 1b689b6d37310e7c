package lint_test

import (
	"context"
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
	"github.com/meshguard/meshguard/test/bench"
)

// generate writes the benchmark corpus of n objects into dir.
func generate(tb testing.TB, dir string, n int) {
	tb.Helper()
	require.NoError(tb, bench.Generate(dir, n))
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
