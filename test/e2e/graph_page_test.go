package e2e

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/checks"
	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/internal/graph"
	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/meshguard/meshguard/test/harness"
	"github.com/meshguard/meshguard/test/meshsim"
)

// graphArtifacts is where the browser test keeps its page and screenshots: $MESHGUARD_ARTIFACTS,
// or a new temporary directory that outlives the test.
func graphArtifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("MESHGUARD_ARTIFACTS")
	if dir == "" {
		var err error
		dir, err = os.MkdirTemp("", "meshguard-artifacts-")
		require.NoError(t, err)
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

// chromium is Debian's Chromium, as test/tools/install.sh installs it.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("MESHGUARD_CHROMIUM"); p != "" {
		return p
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("no chromium on PATH: run test/tools/install.sh chromium (or set MESHGUARD_CHROMIUM): %v", err)
	}
	return p
}

// TestGraphPageInABrowser builds the service map of the demo mesh (meshsim.Demo, backfilled into
// a real Prometheus, with the examples' VirtualServices and DestinationRules), opens the HTML
// page in headless Chromium and clicks it like a user: the nodes and edges are drawn, a click on
// reviews shows its edges' details and highlights exactly the impact set Go computes, a click on
// an edge shows its policy.
func TestGraphPageInABrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus and Chromium")
	}
	exe := chromium(t)
	start := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	at := start.Add(20 * time.Minute)
	om, err := meshsim.RenderOpenMetrics(meshsim.Demo(), meshsim.Span{Start: start, End: at, Step: 10 * time.Second}, meshsim.Options{})
	require.NoError(t, err)
	prom := harness.StartPrometheus(t, harness.PrometheusOptions{DataDir: harness.Backfill(t, om)})
	loaded, err := manifest.Loader{}.Load([]string{filepath.Join("..", "..", "examples", "good")})
	require.NoError(t, err)
	api, err := checks.NewPrometheus(config.Endpoint{URL: prom.URL()}, nil)
	require.NoError(t, err)
	meshCfg := checks.NewMeshConfig("istio-system", loaded.Objects, nil)
	g, err := checks.BuildGraph(context.Background(), checks.GraphOptions{Querier: api,
		Config: meshCfg, Window: 5 * time.Minute, At: at,
		MeshDomain: "cluster.local", RootNamespace: "istio-system", Thresholds: graph.DefaultThresholds()})
	require.NoError(t, err)
	// One workload's Deployment, as checks.DescribeWorkloads reads it from a cluster.
	g.Describe([]graph.Workload{{Namespace: "bookinfo", Name: "reviews-v2", Metadata: []map[string]string{{"team": "reviews-team", "tier": "backend"}},
		LastDeploy: start.Add(-time.Hour)}}, graph.MetadataKeys{Team: []string{"team"}, Tier: []string{"tier"}})

	dir := graphArtifacts(t)
	page := filepath.Join(dir, "demo-mesh.html")
	f, err := os.Create(page)
	require.NoError(t, err)
	require.NoError(t, graph.WriteHTML(f, g, 10))
	require.NoError(t, f.Close())
	t.Logf("artefacts (page and screenshots) in %s", dir)

	alloc, cancel := chromedp.NewExecAllocator(context.Background(), chromedp.ExecPath(exe), chromedp.Headless,
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true), chromedp.WindowSize(1500, 900))
	defer cancel()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	// Bounds the whole browser session; every step waits on a condition, not a time.
	ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	shot := func(name string) {
		t.Helper()
		png := browse(t, ctx, chromedp.FullScreenshot(100))
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, png, 0o644))
		t.Logf("screenshot %s", path)
	}
	browse(t, ctx, chromedp.Navigate("file://"+page))
	browse(t, ctx, chromedp.Poll[bool](`document.body.dataset.ready === "true"`))

	t.Run("every node and edge of the graph is drawn", func(t *testing.T) {
		nodes := browse(t, ctx, chromedp.Evaluate[[]string](`meshguard.cy.nodes("[kind != 'group']").map(n => n.id())`))
		edges := browse(t, ctx, chromedp.Evaluate[int](`meshguard.cy.edges().length`))
		var want []string
		for _, n := range g.Nodes {
			want = append(want, n.ID)
		}
		sort.Strings(nodes)
		require.Equal(t, want, nodes)
		require.Equal(t, len(g.Edges), edges)
		require.GreaterOrEqual(t, len(g.Nodes), 12, "the demo mesh: ingress, productpage, details, reviews v1-v3, ratings, legacy-client and their services")
	})
	shot("demo-mesh.png")

	const reviews = "service:Kubernetes/reviews.bookinfo.svc.cluster.local"
	click := func(js string) {
		t.Helper()
		xy := browse(t, ctx, chromedp.Evaluate[[]float64](js))
		browse(t, ctx, chromedp.MouseClickXY(xy[0], xy[1]))
	}
	t.Run("a click on reviews shows its edges and highlights exactly its impact set", func(t *testing.T) {
		click(fmt.Sprintf(`(() => { const p = meshguard.cy.getElementById(%q).renderedPosition();
			const r = meshguard.cy.container().getBoundingClientRect(); return [r.left + p.x, r.top + p.y]; })()`, reviews))
		browse(t, ctx, chromedp.Poll[bool](fmt.Sprintf(`document.getElementById("details").dataset.selected === %q`, reviews)))
		details := browse(t, ctx, chromedp.Evaluate[string](`document.getElementById("details").innerText`))
		up := browse(t, ctx, chromedp.Evaluate[[]string](`meshguard.cy.nodes(".upstream").map(n => n.id()).sort()`))
		down := browse(t, ctx, chromedp.Evaluate[[]string](`meshguard.cy.nodes(".downstream").map(n => n.id()).sort()`))
		require.Contains(t, details, "productpage-v1 → reviews (call, http)")
		require.Contains(t, details, "VirtualService: bookinfo/reviews")
		require.Contains(t, details, "route http[0]: 3 retries × 1s on gateway-error,connect-failure,refused-stream, timeout 4s")
		require.Contains(t, details, "DestinationRule: bookinfo/reviews")
		require.Contains(t, details, "reviews → reviews-v2")
		require.Contains(t, details, "last deploy behind it\t2025-05-31T23:00:00Z", "reviews-v2's, the only deploy known behind reviews")
		imp, err := g.Impact("reviews.bookinfo")
		require.NoError(t, err)
		ids := func(rs []graph.Reach) []string {
			var out []string
			for _, r := range rs {
				out = append(out, r.Node)
			}
			sort.Strings(out)
			return out
		}
		require.Equal(t, ids(imp.Dependents), up)
		require.Equal(t, ids(imp.Dependencies), down)
		require.Contains(t, up, "workload:Kubernetes/istio-system/istio-ingressgateway")
		require.Contains(t, down, "service:Kubernetes/ratings.bookinfo.svc.cluster.local")
	})
	shot("demo-mesh-reviews-selected.png")

	t.Run("a click on an edge shows its figures and the policy that applies", func(t *testing.T) {
		const edge = "workload:Kubernetes/bookinfo/reviews-v2 -> service:Kubernetes/ratings.bookinfo.svc.cluster.local"
		click(fmt.Sprintf(`(() => { const p = meshguard.cy.getElementById(%q).renderedMidpoint();
			const r = meshguard.cy.container().getBoundingClientRect(); return [r.left + p.x, r.top + p.y]; })()`, edge))
		browse(t, ctx, chromedp.Poll[bool](fmt.Sprintf(`document.getElementById("details").dataset.selected === %q`, edge)))
		details := browse(t, ctx, chromedp.Evaluate[string](`document.getElementById("details").innerText`))
		require.Contains(t, details, "reviews-v2 → ratings")
		require.Contains(t, details, "p50 / p99")
		require.Contains(t, details, "VirtualService: none (Istio's default route)")
		require.Contains(t, details, "(Istio's default)")
	})
	shot("demo-mesh-edge-selected.png")

	t.Run("a click on a workload shows its team, tier and last deploy", func(t *testing.T) {
		const reviewsV2 = "workload:Kubernetes/bookinfo/reviews-v2"
		click(fmt.Sprintf(`(() => { const p = meshguard.cy.getElementById(%q).renderedPosition();
			const r = meshguard.cy.container().getBoundingClientRect(); return [r.left + p.x, r.top + p.y]; })()`, reviewsV2))
		browse(t, ctx, chromedp.Poll[bool](fmt.Sprintf(`document.getElementById("details").dataset.selected === %q`, reviewsV2)))
		cell := func(class string) string {
			return browse(t, ctx, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector("#details .%s").innerText`, class)))
		}
		require.Equal(t, "reviews-team", cell("team"))
		require.Equal(t, "backend", cell("tier"))
		require.Equal(t, "2025-05-31T23:00:00Z", cell("last-deploy"))
		label := browse(t, ctx, chromedp.Evaluate[string](fmt.Sprintf(`meshguard.cy.getElementById(%q).data("label")`, reviewsV2)))
		require.Equal(t, "reviews-v2\nreviews-team", label, "the map names the owner under the workload")
	})
	shot("demo-mesh-workload-selected.png")

	t.Run("the checker serves the same map at /graph, under its content security policy", func(t *testing.T) {
		s := checks.SettingsFrom(config.Default())
		s.Window, s.PrometheusURL, s.Graph = 5*time.Minute, prom.URL(), true
		c, err := checks.New(checks.Options{Settings: s, Querier: api, Config: checks.StaticSource{Config: meshCfg},
			Clock: func() time.Time { return at }})
		require.NoError(t, err)
		c.Cycle(context.Background())
		srv := httptest.NewServer(checks.Handler(c, prometheus.NewRegistry()))
		defer srv.Close()
		browse(t, ctx, chromedp.Navigate(srv.URL+"/graph"))
		browse(t, ctx, chromedp.Poll[bool](`document.body.dataset.ready === "true"`))
		nodes := browse(t, ctx, chromedp.Evaluate[int](`meshguard.cy.nodes("[kind != 'group']").length`))
		require.Equal(t, len(g.Nodes), nodes)
		chains := browse(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll("#chains .chain").length`))
		require.Positive(t, chains, "the demo mesh has chains over the budget")
	})
}

// browse runs one browser action and returns its value.
func browse[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	require.NoError(t, err)
	return v
}
