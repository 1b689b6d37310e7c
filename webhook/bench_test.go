package webhook

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/internal/engine"
	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/meshguard/meshguard/test/loadgen"
)

// BenchmarkServeHTTP reviews the load test's AdmissionReviews (a realistic mix of kinds,
// operations and verdicts, 2 to 6 KiB each) against its inventory: the server's cost per review
// without TLS and the network, for profiling.
func BenchmarkServeHTTP(b *testing.B) {
	f := newFixture(b, "")
	for _, obj := range loadgen.Objects() {
		require.NoError(b, f.cache.Put(manifest.Normalize(obj).(map[string]any)))
	}
	bodies, err := loadgen.Reviews(2048, 1)
	require.NoError(b, err)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(bodies[i%len(bodies)]))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		f.http.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("HTTP %d: %s", w.Code, w.Body)
		}
		i++
	}
}

// BenchmarkOverlay compares the per-review cost of reindex (a re-index of the whole
// inventory) with the webhook's overlay, for a VirtualService review against the load test's
// inventory (321 objects) and one ten times larger.
func BenchmarkOverlay(b *testing.B) {
	for _, copies := range []int{1, 10} {
		var objects []*manifest.Object
		for c := range copies {
			for _, raw := range loadgen.Objects() {
				raw = manifest.Normalize(raw).(map[string]any)
				meta := raw["metadata"].(map[string]any)
				meta["namespace"] = fmt.Sprintf("%s-%d", meta["namespace"], c)
				o, p := manifest.NewObject(raw)
				require.Nil(b, p)
				objects = append(objects, o)
			}
		}
		base := engine.NewIndex(objects, true, "istio-system", "cluster.local")
		eng := testRuleSet(b, "").Engine
		var vs *manifest.Object
		for _, o := range objects {
			if o.Kind == manifest.KindVirtualService {
				vs = o
				break
			}
		}
		ctx := context.Background()
		b.Run(fmt.Sprintf("reindex/%d", len(objects)), func(b *testing.B) {
			for b.Loop() {
				if _, err := eng.Review(ctx, vs, reindex(base, vs, false, "istio-system", "cluster.local")); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("webhook.overlay/%d", len(objects)), func(b *testing.B) {
			for b.Loop() {
				if _, err := eng.Review(ctx, vs, newOverlay(base, vs, false)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
