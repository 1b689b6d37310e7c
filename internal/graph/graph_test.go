package graph

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/meshguard/meshguard/internal/mesh"
)

// call is one observed flow: caller workload (ns/name) to a service's workload (ns/name).
type call struct {
	src, dst string
	rate     float64
	extra    []string // more labels, name and value in turn
}

func host(svc string) string {
	ns, name, _ := strings.Cut(svc, "/")
	return name + "." + ns + ".svc.cluster.local"
}

// metric writes a flow's labels; the service of workload "ns/name-v1" is "ns/name".
func (c call) metric(reporter string, extra ...string) model.Metric {
	srcNS, srcWL, _ := strings.Cut(c.src, "/")
	dstNS, dstWL, _ := strings.Cut(c.dst, "/")
	svc := strings.TrimSuffix(dstWL, "-v1")
	m := model.Metric{"reporter": model.LabelValue(reporter),
		"source_cluster": "east", "source_workload_namespace": model.LabelValue(srcNS), "source_workload": model.LabelValue(srcWL),
		"destination_cluster": "east", "destination_service": model.LabelValue(host(dstNS + "/" + svc)),
		"destination_service_name": model.LabelValue(svc), "destination_service_namespace": model.LabelValue(dstNS),
		"destination_workload_namespace": model.LabelValue(dstNS), "destination_workload": model.LabelValue(dstWL),
		"request_protocol": "http"}
	for _, kv := range [][]string{c.extra, extra} {
		for i := 0; i+1 < len(kv); i += 2 {
			m[model.LabelName(kv[i])] = model.LabelValue(kv[i+1])
		}
	}
	return m
}

func vec(samples ...*model.Sample) model.Vector { return samples }

func sample(v float64, m model.Metric) *model.Sample {
	return &model.Sample{Metric: m, Value: model.SampleValue(v)}
}

// observed is the query answers for calls seen by both proxies over mTLS, without errors.
func observed(calls ...call) map[string]model.Vector {
	out := map[string]model.Vector{}
	for _, c := range calls {
		for _, r := range []string{"source", "destination"} {
			out[QueryRequests] = append(out[QueryRequests], sample(c.rate, c.metric(r)))
		}
		out[QuerySecurity] = append(out[QuerySecurity], sample(c.rate, c.metric("destination", "connection_security_policy", "mutual_tls")))
	}
	return out
}

func objects(t *testing.T, yaml string) *mesh.Index {
	t.Helper()
	objs, problems := manifest.Parse("test.yaml", []byte(yaml))
	require.Empty(t, problems)
	return mesh.NewIndex("istio-system", "", objs, nil)
}

func build(t *testing.T, results map[string]model.Vector, ix *mesh.Index) *Graph {
	t.Helper()
	return Build(results, Options{Index: ix, Window: 5 * time.Minute, At: time.Unix(1700000000, 0)})
}

func edge(t *testing.T, g *Graph, id string) Edge {
	t.Helper()
	for _, e := range g.Edges {
		if e.ID == id {
			return e
		}
	}
	var ids []string
	for _, e := range g.Edges {
		ids = append(ids, e.ID)
	}
	t.Fatalf("no edge %s among\n%s", id, strings.Join(ids, "\n"))
	return Edge{}
}

const (
	webWL   = "workload:east/shop/web"
	aSvc    = "service:east/a.shop.svc.cluster.local"
	aWL     = "workload:east/shop/a-v1"
	ratings = "service:east/ratings.shop.svc.cluster.local"
)

func TestBuildConnectsWorkloadsThroughServicesWithTheFiguresAndPolicyOfEachEdge(t *testing.T) {
	ix := objects(t, `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: shop}
spec:
  hosts: [ratings]
  http:
  - name: primary
    timeout: 3s
    retries: {attempts: 4, perTryTimeout: 500ms}
    route: [{destination: {host: ratings}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: shop}
spec:
  host: ratings
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 100}, http: {http2MaxRequests: 1000, maxRetries: 3}}
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, maxEjectionPercent: 50}
`)
	grpcCall := call{src: "shop/web", dst: "shop/ratings-v1", rate: 10, extra: []string{"request_protocol", "grpc"}}
	results := observed(grpcCall, call{src: "shop/web", dst: "shop/a-v1", rate: 4})
	// 1/s of gRPC failures arrive as HTTP 200 with status UNAVAILABLE, 0.5/s as 503.
	results[QueryErrors] = vec(sample(1.5, grpcCall.metric("source")))
	results[QueryCallP50] = vec(sample(12, grpcCall.metric("source")))
	results[QueryCallP99] = vec(sample(700, grpcCall.metric("source")))
	results[QueryServeP99] = vec(sample(90, grpcCall.metric("destination")))
	results[QueryEjections] = vec(sample(2, model.Metric{"service_host": "ratings.shop.svc.cluster.local"}))
	results[QueryOverflow] = vec(sample(0.5, model.Metric{"service_host": "ratings.shop.svc.cluster.local"}))
	results[QuerySecurity] = append(results[QuerySecurity], sample(2, grpcCall.metric("destination", "connection_security_policy", "none")))
	// A client without a sidecar: only the destination reports it.
	results[QueryRequests] = append(results[QueryRequests], sample(2, call{src: "unknown/unknown", dst: "shop/a-v1"}.metric("destination")))
	results[QueryTCP] = vec(sample(0.5, call{src: "shop/a-v1", dst: "data/db-v1"}.metric("source")))
	// An external database without a sidecar: the client reports it, its workload "unknown".
	results[QueryRequests] = append(results[QueryRequests], sample(1, call{src: "shop/a-v1", dst: "data/unknown"}.metric("source",
		"destination_workload", "unknown", "destination_workload_namespace", "unknown")))
	g := build(t, results, ix)

	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"a call edge carries the caller's rates, gRPC failures as errors, latencies and the destination's mTLS share", func(t *testing.T) {
			e := edge(t, g, webWL+" -> "+ratings)
			require.Equal(t, EdgeCall, e.Kind)
			require.Equal(t, ProtocolGRPC, e.Protocol)
			require.Equal(t, 10.0, e.RequestRate)
			require.InDelta(t, 0.15, e.ErrorRate, 1e-9)
			require.Equal(t, 12.0, *e.P50Ms)
			require.Equal(t, 700.0, *e.P99Ms)
			require.InDelta(t, 10.0/12, *e.MTLSShare, 1e-9)
			require.Equal(t, Red, e.Health)
		}},
		{"a call edge has the retries and timeout of the VirtualService route and the DestinationRule's circuit breaker", func(t *testing.T) {
			p := edge(t, g, webWL+" -> "+ratings).Policy
			require.Equal(t, "shop/ratings", p.VirtualService)
			require.Equal(t, []Route{{Name: "primary", Timeout: "3s", Retries: Retry{Attempts: 4, PerTryTimeout: "500ms", RetryOn: mesh.DefaultRetryOn}}}, p.Routes)
			require.EqualValues(t, 4, p.Attempts)
			require.Equal(t, &DestinationRule{Name: "shop/ratings",
				OutlierDetection: &OutlierDetection{Consecutive5xxErrors: 5, Interval: "10s", MaxEjectionPercent: 50},
				ConnectionPool:   &ConnectionPool{MaxConnections: 100, HTTP2MaxRequests: 1000, MaxRetries: 3}}, p.DestinationRule)
		}},
		{"a call without a VirtualService has Istio's default retries", func(t *testing.T) {
			p := edge(t, g, webWL+" -> "+aSvc).Policy
			require.Empty(t, p.VirtualService)
			require.Equal(t, Retry{Attempts: 2, RetryOn: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes", Default: true}, p.Routes[0].Retries)
			require.Nil(t, p.DestinationRule)
		}},
		{"a service links to the workload behind it with the server's view", func(t *testing.T) {
			e := edge(t, g, ratings+" -> workload:east/shop/ratings-v1")
			require.Equal(t, EdgeServe, e.Kind)
			require.Equal(t, "destination", e.Reporter)
			require.Equal(t, 90.0, *e.P99Ms)
			require.Nil(t, e.Policy)
		}},
		{"a client without a sidecar is one unknown node, seen by the destination, and nothing retries for it", func(t *testing.T) {
			e := edge(t, g, "workload:east/unknown -> "+aSvc)
			require.Equal(t, "destination", e.Reporter)
			require.Equal(t, 2.0, e.RequestRate)
			require.Nil(t, e.Policy)
		}},
		{"a server without a sidecar is no node: which workload it is cannot be told", func(t *testing.T) {
			require.Nil(t, g.Node("workload:east/data/unknown"))
			require.Nil(t, g.Node("workload:east/unknown/unknown"))
			for _, e := range g.Edges {
				require.NotEqual(t, "workload:east/unknown", e.Destination, e.ID)
			}
		}},
		{"a TCP edge counts connections and has no health signal", func(t *testing.T) {
			e := edge(t, g, aWL+" -> service:east/db.data.svc.cluster.local")
			require.Equal(t, ProtocolTCP, e.Protocol)
			require.Equal(t, 0.5, e.RequestRate)
			require.Equal(t, Unknown, e.Health)
		}},
		{"a node serves what flows into it and takes the worst health of its figures", func(t *testing.T) {
			n := g.Node(ratings)
			require.Equal(t, "ratings", n.Name)
			require.Equal(t, "shop", n.Namespace)
			require.Equal(t, "east", n.Cluster)
			require.Equal(t, 10.0, n.RequestRate)
			require.Equal(t, Red, n.Health)
			require.Equal(t, Green, g.Node(aSvc).Health)
			require.Equal(t, Unknown, g.Node(webWL).Health, "nothing calls the entry")
		}},
		{"a service shows the endpoints its clients eject and the requests their pools refuse", func(t *testing.T) {
			require.Equal(t, 2.0, *g.Node(ratings).EjectedEndpoints)
			require.Equal(t, 0.5, *g.Node(ratings).OverflowRate)
			require.Nil(t, g.Node(aSvc).EjectedEndpoints, "no client exports Envoy's stats for a")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

func TestHealthTurnsYellowThenRedAtTheThresholds(t *testing.T) {
	th := DefaultThresholds()
	ms := func(v float64) *float64 { return &v }
	tests := []struct {
		name      string
		errorRate float64
		p99       *float64
		want      Health
	}{
		{"under half a percent of errors and a fast p99 is green", 0.004, ms(100), Green},
		{"half a percent of errors is yellow", 0.005, ms(100), Yellow},
		{"one percent of errors is red", 0.01, nil, Red},
		{"a p99 of 500ms is yellow", 0, ms(500), Yellow},
		{"a p99 of one second is red", 0, ms(1000), Red},
		{"an unknown p99 does not count", 0, nil, Green},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, th.Judge(1, tt.errorRate, tt.p99, false))
		})
	}
	require.NoError(t, th.Validate())
	require.Error(t, Thresholds{ErrorRateWarning: 0.1, ErrorRateCritical: 0.05, P99WarningMs: 1, P99CriticalMs: 2}.Validate())
}

// chain is web -> a -> b -> c -> d: retries 3 into a, 2 into b, none into c, and Istio's
// default (2) into d, which has no VirtualService.
const chainConfig = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a, namespace: shop}
spec:
  hosts: [a]
  http: [{retries: {attempts: 3}, route: [{destination: {host: a}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b, namespace: shop}
spec:
  hosts: [b]
  http: [{retries: {attempts: 2}, route: [{destination: {host: b}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: c, namespace: shop}
spec:
  hosts: [c]
  http: [{retries: {attempts: 0}, route: [{destination: {host: c}}]}]
`

func svc(name string) string { return "service:east/" + name + ".shop.svc.cluster.local" }
func wl(name string) string  { return "workload:east/shop/" + name + "-v1" }

func TestAmplificationMultipliesTheRetriesOfEveryHop(t *testing.T) {
	tests := []struct {
		name   string
		config string
		calls  []call
		want   []Chain // entry, services, worst cases, share, cycle
	}{
		{
			name:   "a four-hop chain with retries at three hops reaches 4, 12, 12 and 36",
			config: chainConfig,
			calls: []call{{src: "shop/web", dst: "shop/a-v1", rate: 10}, {src: "shop/a-v1", dst: "shop/b-v1", rate: 10},
				{src: "shop/b-v1", dst: "shop/c-v1", rate: 10}, {src: "shop/c-v1", dst: "shop/d-v1", rate: 10}},
			want: []Chain{{Entry: "workload:east/shop/web", Share: 1, WorstCase: 36, Hops: []Hop{
				{Service: svc("a"), Attempts: 3, WorstCase: 4}, {Service: svc("b"), Attempts: 2, WorstCase: 12},
				{Service: svc("c"), Attempts: 0, WorstCase: 12}, {Service: svc("d"), Attempts: 2, WorstCase: 36}}}},
		},
		{
			name: "a diamond splits the entry's traffic by observed rates, each side at Istio's default retries",
			calls: []call{{src: "shop/web", dst: "shop/a-v1", rate: 10}, {src: "shop/a-v1", dst: "shop/b-v1", rate: 6},
				{src: "shop/a-v1", dst: "shop/c-v1", rate: 2}, {src: "shop/a-v1", dst: "shop/e-v1", rate: 2},
				{src: "shop/b-v1", dst: "shop/d-v1", rate: 6}, {src: "shop/c-v1", dst: "shop/d-v1", rate: 2}},
			want: []Chain{
				{Entry: "workload:east/shop/web", Share: 0.6, WorstCase: 27, Hops: []Hop{
					{Service: svc("a"), Attempts: 2, WorstCase: 3}, {Service: svc("b"), Attempts: 2, WorstCase: 9}, {Service: svc("d"), Attempts: 2, WorstCase: 27}}},
				{Entry: "workload:east/shop/web", Share: 0.2, WorstCase: 27, Hops: []Hop{
					{Service: svc("a"), Attempts: 2, WorstCase: 3}, {Service: svc("c"), Attempts: 2, WorstCase: 9}, {Service: svc("d"), Attempts: 2, WorstCase: 27}}},
				{Entry: "workload:east/shop/web", Share: 0.2, WorstCase: 9, Hops: []Hop{
					{Service: svc("a"), Attempts: 2, WorstCase: 3}, {Service: svc("e"), Attempts: 2, WorstCase: 9}}},
			},
		},
		{
			name:   "a cycle stops where it calls a service already on the chain",
			config: chainConfig,
			calls: []call{{src: "shop/web", dst: "shop/a-v1", rate: 1}, {src: "shop/a-v1", dst: "shop/b-v1", rate: 1},
				{src: "shop/b-v1", dst: "shop/a-v1", rate: 1}},
			want: []Chain{{Entry: "workload:east/shop/web", Share: 1, WorstCase: 48, Cycle: true, Hops: []Hop{
				{Service: svc("a"), Attempts: 3, WorstCase: 4}, {Service: svc("b"), Attempts: 2, WorstCase: 12}, {Service: svc("a"), Attempts: 3, WorstCase: 48}}}},
		},
		{
			name:  "a cycle nobody enters is followed from its first workload",
			calls: []call{{src: "shop/a-v1", dst: "shop/b-v1", rate: 1}, {src: "shop/b-v1", dst: "shop/a-v1", rate: 1}},
			want: []Chain{{Entry: wl("a"), Share: 1, WorstCase: 27, Cycle: true, Hops: []Hop{
				{Service: svc("b"), Attempts: 2, WorstCase: 3}, {Service: svc("a"), Attempts: 2, WorstCase: 9}, {Service: svc("b"), Attempts: 2, WorstCase: 27}}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ix *mesh.Index
			if tt.config != "" {
				ix = objects(t, tt.config)
			}
			amp := build(t, observed(tt.calls...), ix).Amplification()
			require.False(t, amp.Truncated)
			require.Len(t, amp.Chains, len(tt.want))
			for i, want := range tt.want {
				got := amp.Chains[i]
				require.Equal(t, want.Entry, got.Entry)
				require.Equal(t, want.Hops, got.Hops)
				require.Equal(t, want.WorstCase, got.WorstCase)
				require.InDelta(t, want.Share, got.Share, 1e-9)
				require.Equal(t, want.Cycle, got.Cycle)
			}
		})
	}
}

func TestImpactFindsDependentsWithTheirShareAndTheDependencies(t *testing.T) {
	diamond := []call{{src: "shop/web", dst: "shop/a-v1", rate: 10}, {src: "shop/a-v1", dst: "shop/b-v1", rate: 6},
		{src: "shop/a-v1", dst: "shop/c-v1", rate: 2}, {src: "shop/a-v1", dst: "shop/e-v1", rate: 2},
		{src: "shop/b-v1", dst: "shop/d-v1", rate: 6}, {src: "shop/c-v1", dst: "shop/d-v1", rate: 2}}
	cycle := []call{{src: "shop/web", dst: "shop/a-v1", rate: 1}, {src: "shop/a-v1", dst: "shop/b-v1", rate: 1},
		{src: "shop/b-v1", dst: "shop/a-v1", rate: 1}}
	tests := []struct {
		name         string
		calls        []call
		service      string
		dependents   map[string]float64 // node: share
		dependencies []string
	}{
		{name: "in a diamond, b carries 60% of what a and the entry send", calls: diamond, service: "b",
			dependents:   map[string]float64{wl("a"): 0.6, svc("a"): 0.6, webWL: 0.6},
			dependencies: []string{wl("b"), svc("d"), wl("d")}},
		{name: "in a diamond, everything above d reaches it through b or c", calls: diamond, service: "d.shop",
			dependents:   map[string]float64{wl("b"): 1, wl("c"): 1, svc("b"): 1, svc("c"): 1, wl("a"): 0.8, svc("a"): 0.8, webWL: 0.8},
			dependencies: []string{wl("d")}},
		{name: "in a cycle, the service's own workload depends on it through the loop", calls: cycle, service: host("shop/a"),
			dependents:   map[string]float64{webWL: 1, wl("b"): 1, svc("b"): 1, wl("a"): 1},
			dependencies: []string{wl("a"), svc("b"), wl("b")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			imp, err := build(t, observed(tt.calls...), nil).Impact(tt.service)
			require.NoError(t, err)
			got := map[string]float64{}
			for _, d := range imp.Dependents {
				got[d.Node] = d.Share
			}
			require.Len(t, got, len(tt.dependents))
			for id, share := range tt.dependents {
				require.InDelta(t, share, got[id], 1e-9, id)
			}
			var deps []string
			for _, d := range imp.Dependencies {
				deps = append(deps, d.Node)
			}
			require.Equal(t, tt.dependencies, deps)
		})
	}
	_, err := build(t, observed(diamond...), nil).Impact("nope")
	require.ErrorIs(t, err, ErrNoService)
}

func TestBuildReadsTheConfiguredClusterLabels(t *testing.T) {
	c := call{src: "shop/web", dst: "shop/a-v1", rate: 2}
	m := c.metric("source", "src_cluster_id", "west", "dst_cluster_id", "north")
	delete(m, "source_cluster")
	delete(m, "destination_cluster")
	g := Build(map[string]model.Vector{QueryRequests: vec(sample(2, m))},
		Options{Window: 5 * time.Minute, ClusterLabels: ClusterLabels{Source: "src_cluster_id", Destination: "dst_cluster_id"}})
	e := edge(t, g, "workload:west/shop/web -> service:north/a.shop.svc.cluster.local")
	require.InDelta(t, 2, e.RequestRate, 1e-9)
	for _, q := range Queries(5*time.Minute, ClusterLabels{Source: "src_cluster_id", Destination: "dst_cluster_id"}) {
		require.NotContains(t, q.Query, "destination_cluster", q.Name)
	}
}

func TestBuildTakesAWaypointsViewOverZtunnelConnections(t *testing.T) {
	c := call{src: "shop/web", dst: "shop/a-v1", rate: 3}
	g := build(t, map[string]model.Vector{
		QueryRequests: vec(sample(3, c.metric("waypoint"))),
		// ztunnel's view of the same calls: TCP connections, from both ends.
		QueryTCP: vec(sample(3, c.metric("source", "request_protocol", "tcp")), sample(3, c.metric("destination", "request_protocol", "tcp"))),
	}, nil)
	call := edge(t, g, webWL+" -> "+aSvc)
	require.Equal(t, "waypoint", call.Reporter)
	require.Equal(t, ProtocolHTTP, call.Protocol)
	serve := edge(t, g, aSvc+" -> "+aWL)
	require.Equal(t, "waypoint", serve.Reporter)
	require.Len(t, g.Notes, 1, "no Envoy cluster stats in these answers: the map says so")
}
