package checks

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/internal/graph"
)

// flowSample is a row of a per-flow graph query: caller ns/workload to the service of workload
// ns/name-v1, in cluster east.
func flowSample(v float64, reporter, src, dst string, extra ...string) *model.Sample {
	srcNS, srcWL, _ := strings.Cut(src, "/")
	dstNS, dstWL, _ := strings.Cut(dst, "/")
	svc := strings.TrimSuffix(dstWL, "-v1")
	labels := append([]string{"source_cluster", "east", "source_workload_namespace", srcNS, "source_workload", srcWL,
		"destination_cluster", "east", "destination_service", svc + "." + dstNS + ".svc.cluster.local",
		"destination_service_name", svc, "destination_service_namespace", dstNS,
		"destination_workload_namespace", dstNS, "destination_workload", dstWL}, extra...)
	if reporter != "" {
		labels = append(labels, "reporter", reporter)
	}
	return sample(v, labels...)
}

// The edge's configuration comes from internal/mesh, as the lint rules get it: wildcard and
// root-namespace DestinationRules count, the caller's namespace comes first.
const graphConfig = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: mesh-default, namespace: istio-system}
spec:
  host: "*.local"
  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 7}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: shop-wide, namespace: shop}
spec:
  host: "*.shop.svc.cluster.local"
  trafficPolicy: {connectionPool: {http: {maxRetries: 5}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cart-for-web, namespace: web}
spec:
  host: cart.shop.svc.cluster.local
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: all-shop, namespace: shop}
spec:
  hosts: ["*.shop.svc.cluster.local"]
  http: [{route: [{destination: {host: cart}}], retries: {attempts: 1}}]
`

func TestBuildGraphAsksEachQueryOnceAndJoinsWhatIstioApplies(t *testing.T) {
	s := testSettings()
	q := newFakeQuerier(s, map[string]model.Vector{
		graph.QueryRequests: {
			flowSample(4, "source", "shop/front", "shop/cart-v1", "request_protocol", "http"),
			flowSample(2, "source", "web/site", "shop/cart-v1", "request_protocol", "http"),
			flowSample(1, "source", "shop/cart-v1", "bookinfo/ratings-v1", "request_protocol", "http"),
		},
	})
	g, err := BuildGraph(context.Background(), GraphOptions{Querier: q, Config: meshFrom(t, graphConfig), Window: time.Minute,
		At: t0, MeshDomain: "cluster.local", RootNamespace: "istio-system", Thresholds: graph.DefaultThresholds()})
	require.NoError(t, err)
	require.EqualValues(t, len(GraphSignals(time.Minute, graph.ClusterLabels{})), q.calls.Load(), "one query per figure")
	require.Len(t, g.Queries, len(GraphSignals(time.Minute, graph.ClusterLabels{})))
	policy := map[string]*graph.Policy{}
	for _, e := range g.Edges {
		policy[e.ID] = e.Policy
	}
	cart := "service:east/cart.shop.svc.cluster.local"
	tests := []struct {
		name, edge, wantDR, wantVS string
		wantMaxRetries             int64
	}{
		{"a namespace wildcard rule covers its services", "workload:east/shop/front -> " + cart, "shop/shop-wide", "shop/all-shop", 5},
		{"the caller's own rule wins", "workload:east/web/site -> " + cart, "web/cart-for-web", "shop/all-shop", 0},
		{"the root namespace's *.local covers other services", "workload:east/shop/cart-v1 -> service:east/ratings.bookinfo.svc.cluster.local",
			"istio-system/mesh-default", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := policy[tt.edge]
			require.NotNil(t, p, "no edge %s", tt.edge)
			require.Equal(t, tt.wantDR, p.DestinationRule.Name)
			require.Equal(t, tt.wantVS, p.VirtualService)
			var maxRetries int64
			if p.DestinationRule.ConnectionPool != nil {
				maxRetries = p.DestinationRule.ConnectionPool.MaxRetries
			}
			require.Equal(t, tt.wantMaxRetries, maxRetries)
			if tt.wantVS == "" {
				require.True(t, p.Routes[0].Retries.Default, "no VirtualService: Istio's default retries")
			}
		})
	}
}

func TestBuildGraphFailsOnAFailedQuery(t *testing.T) {
	q := newFakeQuerier(testSettings(), nil)
	q.fail(errors.New("connection refused"))
	_, err := BuildGraph(context.Background(), GraphOptions{Querier: q, Window: time.Minute, At: t0})
	require.ErrorContains(t, err, "connection refused")
}

// ingress -> productpage -> reviews -> ratings with Istio's default retries at every hop, and
// productpage -> details: only the ratings chain (3 × 3 × 3 = 27) exceeds a budget of 10.
func chainResults() map[string]model.Vector {
	return map[string]model.Vector{SignalCallChains: {
		flowSample(10, "", "istio-system/ingress", "shop/productpage-v1"),
		flowSample(10, "", "shop/productpage-v1", "shop/reviews-v1"),
		flowSample(10, "", "shop/productpage-v1", "shop/details-v1"),
		flowSample(5, "", "shop/reviews-v1", "shop/ratings-v1"),
	}}
}

func TestRetryAmplificationRaisesTheChainsOverTheBudget(t *testing.T) {
	const ratingsWithoutRetries = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: shop}
spec:
  hosts: [ratings]
  http: [{route: [{destination: {host: ratings}}], retries: {attempts: 0}}]
`
	tests := []struct {
		name   string
		config string
		budget float64
		want   []string // chain labels
	}{
		{name: "Istio's default retries at three hops exceed a budget of 10 at the third",
			config: meshStrict, budget: 10,
			want: []string{"istio-system/ingress -> shop/productpage ×3 -> shop/reviews ×9 -> shop/ratings ×27"}},
		{name: "no retries into ratings keeps the chain at 9", config: ratingsWithoutRetries, budget: 10},
		{name: "a budget of 2 reports each chain once, at its first service over it", config: meshStrict, budget: 2,
			want: []string{"istio-system/ingress -> shop/productpage ×3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testSettings()
			s.RetryAmplification = tt.budget
			fs := evalRule(t, AlertRetryAmplification, s, meshFrom(t, tt.config), chainResults())
			var chains []string
			for _, f := range fs {
				chains = append(chains, f.Labels["chain"])
			}
			require.Equal(t, tt.want, chains)
		})
	}
	t.Run("a TCP hop does not retry and does not break the chain", func(t *testing.T) {
		s := testSettings()
		s.RetryAmplification = 8
		results := map[string]model.Vector{SignalCallChains: {
			flowSample(10, "", "istio-system/ingress", "shop/productpage-v1", "request_protocol", "http"),
			flowSample(10, "", "shop/productpage-v1", "shop/reviews-v1", "request_protocol", "tcp"),
			flowSample(5, "", "shop/reviews-v1", "shop/ratings-v1", "request_protocol", "grpc"),
		}}
		fs := evalRule(t, AlertRetryAmplification, s, meshFrom(t, meshStrict), results)
		require.Len(t, fs, 1)
		require.Equal(t, "istio-system/ingress -> shop/productpage ×3 -> shop/reviews ×3 -> shop/ratings ×9", fs[0].Labels["chain"])
	})
	s := testSettings()
	f := evalRule(t, AlertRetryAmplification, s, meshFrom(t, meshStrict), chainResults())[0]
	require.Equal(t, 27.0, f.Value)
	require.Equal(t, map[string]string{"namespace": "shop", "service": "ratings", "destination_service": "ratings.shop.svc.cluster.local", "cluster": "east",
		"source_workload": "ingress", "source_workload_namespace": "istio-system", "chain": f.Annotations["chain"]}, f.Labels)
	require.Contains(t, f.Annotations["description"], "ratings (2 retries, ×27)")
	require.Contains(t, f.Annotations["description"], "50.00% of istio-system/ingress's traffic follows this chain")
}

func TestTheDaemonServesTheServiceMapOnlyWhenAskedTo(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		s := testSettings()
		s.Graph = enabled
		results := chainResults()
		results[graph.QueryRequests] = model.Vector{flowSample(10, "source", "istio-system/ingress", "shop/productpage-v1")}
		q := newFakeQuerier(s, results)
		reg := prometheus.NewRegistry()
		c, err := New(Options{Settings: s, Querier: q, Config: StaticSource{meshFrom(t, meshStrict)}, Metrics: NewMetrics(reg), Clock: func() time.Time { return t0 }})
		require.NoError(t, err)
		h := Handler(c, reg)
		get := func() (int, string) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/graph", nil))
			return rec.Code, rec.Body.String()
		}
		if !enabled {
			c.Cycle(context.Background())
			code, _ := get()
			require.Equal(t, http.StatusNotFound, code, "off by default")
			continue
		}
		code, _ := get()
		require.Equal(t, http.StatusServiceUnavailable, code, "no map before the first cycle")
		c.Cycle(context.Background())
		code, body := get()
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, body, `"service:east/productpage.shop.svc.cluster.local"`)
		require.Equal(t, http.MethodGet+" only", func() string {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/graph", nil))
			if rec.Code == http.StatusMethodNotAllowed {
				return http.MethodGet + " only"
			}
			return rec.Result().Status
		}(), "read-only")
	}
}

func TestTheAmplificationBudgetAndTheMapsThresholdsAreCheckedAtStart(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Settings)
		want   string
	}{
		{"a budget under one call is refused", func(s *Settings) { s.RetryAmplification = 0.5 }, "retry amplification budget 0.5"},
		{"a yellow above red is refused", func(s *Settings) { s.GraphThresholds.ErrorRateWarning = 0.2 }, "graph health: error rate thresholds 0.2"},
		{"no p99 goal is refused", func(s *Settings) { s.GraphThresholds.P99WarningMs = 0 }, "graph health: p99 thresholds 0ms"},
	}
	require.NoError(t, testSettings().Validate(), "the defaults are valid")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testSettings()
			tt.change(&s)
			require.ErrorContains(t, s.Validate(), tt.want)
		})
	}
}

// workloadSource is a configuration source that also lists workloads, as ClusterSource does.
type workloadSource struct {
	StaticSource
	workloads []graph.Workload
	err       error
	asked     []string
}

func (s *workloadSource) Workloads(_ context.Context, namespaces []string) ([]graph.Workload, error) {
	s.asked = namespaces
	return s.workloads, s.err
}

func TestDescribeWorkloadsAddsWhatTheSourceKnowsAndNeverBreaksTheMap(t *testing.T) {
	keys := graph.MetadataKeys{Team: []string{"team"}}
	front := "workload:east/shop/front"
	tests := []struct {
		name     string
		src      ConfigSource
		wantErr  string
		wantTeam string
	}{
		{"manifest files know no workloads: nothing is added, nothing fails", StaticSource{}, "", ""},
		{"a source that lists workloads gives them their team", &workloadSource{workloads: []graph.Workload{
			{Namespace: "shop", Name: "front", Metadata: []map[string]string{{"team": "storefront"}}}}}, "", "storefront"},
		{"a list the cluster refuses is an error naming what was read, and the map stays as it was",
			&workloadSource{err: errors.New(`deployments.apps is forbidden`)}, "read workloads for the service map: deployments.apps is forbidden", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newFakeQuerier(testSettings(), map[string]model.Vector{graph.QueryRequests: {
				flowSample(4, "source", "shop/front", "pay/cart-v1", "request_protocol", "http")}})
			g, err := BuildGraph(context.Background(), GraphOptions{Querier: q, Window: time.Minute, At: t0})
			require.NoError(t, err)
			err = DescribeWorkloads(context.Background(), g, tt.src, keys)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tt.wantTeam, g.Node(front).Team)
			if ws, ok := tt.src.(*workloadSource); ok {
				require.Equal(t, []string{"pay", "shop"}, ws.asked, "only the namespaces the map has workloads in are read")
			}
		})
	}
}
