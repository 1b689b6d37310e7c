package validate_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/meshguard/meshguard/internal/validate"
)

// BenchmarkNew is the start-up cost: decoding the embedded CRDs and compiling their schemas and
// CEL rules, once per process.
func BenchmarkNew(b *testing.B) {
	for b.Loop() {
		if _, err := validate.New(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidatePerObject validates every object of Istio's own configs (the corpus beside
// the checkout; skipped when absent) and reports the median and 90th percentile per object, for
// the CRD schema alone and for the whole judgement (schema, then istiod).
func BenchmarkValidatePerObject(b *testing.B) {
	dir := filepath.Join("..", "..", "..", "shared", "corpus", "istio")
	if _, err := os.Stat(dir); err != nil {
		b.Skipf("%s: %v", dir, err)
	}
	res, err := manifest.Loader{}.Load([]string{dir})
	require.NoError(b, err)
	v := validator(b)
	ctx := context.Background()
	for _, c := range []struct {
		name string
		run  func(o *manifest.Object)
	}{
		{"crd-schema", func(o *manifest.Object) { v.Schema(ctx, o.Raw) }},
		{"schema-and-istiod", func(o *manifest.Object) { v.Validate(ctx, o, false) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			best := make([]time.Duration, len(res.Objects))
			for b.Loop() {
				for i, o := range res.Objects {
					start := time.Now()
					c.run(o)
					if d := time.Since(start); best[i] == 0 || d < best[i] {
						best[i] = d
					}
				}
			}
			slices.Sort(best)
			b.ReportMetric(float64(best[len(best)/2].Nanoseconds()), "median-ns/object")
			b.ReportMetric(float64(best[len(best)*9/10].Nanoseconds()), "p90-ns/object")
			b.ReportMetric(float64(len(best)), "objects")
		})
	}
}
