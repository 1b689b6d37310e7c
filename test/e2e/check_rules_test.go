package e2e

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/checks"
	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/internal/graph"
	"github.com/meshguard/meshguard/test/harness"
	"github.com/meshguard/meshguard/test/meshsim"
)

// checkFixedConfig is the configuration of the fixed data set: bookinfo STRICT by namespace,
// two PERMISSIVE exceptions (one expired at the evaluation time), a quiet STRICT namespace, and
// routing for the graph.
const checkFixedConfig = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: bookinfo}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: payments-db}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: old-api
  namespace: legacy-apps
  annotations:
    exceptions.meshguard.io/MG301: "reason=old clients; expires=2025-05-15"
spec:
  selector: {matchLabels: {app: old-api}}
  mtls: {mode: PERMISSIVE}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: partners
  annotations:
    exceptions.meshguard.io/MG301: "reason=partner VPN terminates TLS; expires=2025-12-31"
spec: {mtls: {mode: PERMISSIVE}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: bookinfo}
spec:
  hosts: [ratings]
  http:
  - name: ratings-route
    timeout: 3s
    retries: {attempts: 2, perTryTimeout: 1s, retryOn: "5xx,connect-failure"}
    route: [{destination: {host: ratings}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: bookinfo}
spec:
  host: ratings
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 3, interval: 5s, baseEjectionTime: 30s, maxEjectionPercent: 30}
`

// checkFixedFlows is the traffic of the fixed data set.
func checkFixedFlows() []meshsim.Flow {
	wl := func(ns, name, app string) meshsim.Workload {
		return meshsim.Workload{Name: name, Namespace: ns, App: app}
	}
	productpage := wl("bookinfo", "productpage-v1", "productpage")
	reviews := wl("bookinfo", "reviews-v1", "reviews")
	web := wl("shop", "web", "web")
	return []meshsim.Flow{
		{Source: productpage, Destination: reviews, Rate: 10},
		{Source: wl("legacy", "legacy-client", "legacy-client"), Destination: reviews, Rate: 2, Plaintext: true},
		{Source: reviews, Destination: wl("bookinfo", "ratings-v1", "ratings"), Rate: 5, RetryShare: 0.3, Latency: 40 * time.Millisecond},
		{Source: reviews, Destination: wl("bookinfo", "mysql-v1", "mysql"), Protocol: meshsim.TCP, Rate: 0.5, Plaintext: true},
		{Source: web, Destination: wl("shop", "search-v1", "search"), Rate: 8, URXShare: 0.1, OmitEnvoyStats: true},
		{Source: web, Destination: wl("shop", "cart-v1", "cart"), Rate: 4, TimeoutShare: 0.05},
		{Source: web, Destination: wl("shop", "catalog-v1", "catalog"), Rate: 20, RetryShare: 0.04, TimeoutShare: 0.005},
		{Source: web, Destination: wl("shop", "payments-v2", "payments"), Subset: "v2", Rate: 1, EjectionsActive: 2},
		{Source: wl("batch", "nightly", "nightly"), Destination: wl("legacy-apps", "old-api-v1", "old-api"), Rate: 1, Plaintext: true},
		{Source: wl("partners", "vpn", "vpn"), Destination: wl("partners", "gateway-v1", "gateway"), Rate: 3, Plaintext: true},
	}
}

// TestCheckRulesOnFixedData backfills a fixed hour of traffic with promtool and evaluates the
// rules at a fixed time: the alerts, their identifying labels and figures are exact.
func TestCheckRulesOnFixedData(t *testing.T) {
	start := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	at := start.Add(30 * time.Minute)
	om, err := meshsim.RenderOpenMetrics(checkFixedFlows(), meshsim.Span{Start: start, End: at, Step: 10 * time.Second}, meshsim.Options{})
	require.NoError(t, err)
	prom := harness.StartPrometheus(t, harness.PrometheusOptions{DataDir: harness.Backfill(t, om)})
	meshCfg := checkMeshConfigOf(t, checkFixedConfig)

	t.Run("every rule fires exactly where the data says, with the measured figure", func(t *testing.T) {
		s := checks.SettingsFrom(config.Default())
		s.PrometheusURL = prom.URL()
		api, err := checks.NewPrometheus(config.Endpoint{URL: prom.URL()}, nil)
		require.NoError(t, err)
		c, err := checks.New(checks.Options{Settings: s, Querier: api, Config: checks.StaticSource{Config: meshCfg},
			Clock: func() time.Time { return at }})
		require.NoError(t, err)
		res := c.Cycle(context.Background())
		require.False(t, res.Degraded(), "%v", res.Errors())

		type want struct {
			key    string
			figure float64
		}
		wants := []want{
			{"MeshCircuitOpen shop payments outbound|9080|v2|payments.shop.svc.cluster.local", 2},
			{"MeshPlaintextAllowed legacy-apps old-api-v1 batch/nightly legacy-apps/old-api", 1},
			{"MeshPlaintextAllowed partners gateway-v1 partners/vpn partners/default", 3},
			{"MeshPlaintextTraffic bookinfo mysql-v1 bookinfo/reviews-v1", 0.5},
			{"MeshPlaintextTraffic bookinfo reviews-v1 legacy/legacy-client", 2},
			{"MeshRetryStorm bookinfo ratings", 0.3},
			{"MeshRetryStorm shop search", 0.1},
			{"MeshTelemetryBlind payments-db", 0},
			{"MeshUpstreamTimeouts shop cart", 0.05},
		}
		var got []want
		for _, a := range res.Firing {
			l := a.Labels
			parts := []string{l["alertname"], l["namespace"]}
			for _, k := range []string{"service", "destination_workload"} {
				if l[k] != "" {
					parts = append(parts, l[k])
				}
			}
			if l["source_workload"] != "" {
				parts = append(parts, l["source_workload_namespace"]+"/"+l["source_workload"])
			}
			for _, k := range []string{"cluster_name", "peer_authentication"} {
				if l[k] != "" {
					parts = append(parts, l[k])
				}
			}
			got = append(got, want{strings.Join(parts, " "), a.Value})
		}
		sort.Slice(got, func(i, j int) bool { return got[i].key < got[j].key })
		require.Len(t, got, len(wants), "got %v", got)
		for i, w := range wants {
			require.Equal(t, w.key, got[i].key)
			// Counters are whole numbers (floor of rate × time), so ratios are exact to 1e-3.
			require.InDelta(t, w.figure, got[i].figure, 1e-3*max(w.figure, 1e-3), w.key)
		}

		for _, a := range res.Firing {
			switch {
			case a.Labels["peer_authentication"] == "legacy-apps/old-api":
				require.Equal(t, "2025-05-15", a.Annotations["exception_expires"])
				require.Contains(t, a.Annotations["summary"], "EXPIRED on 2025-05-15", "expiry is judged at the evaluation time")
			case a.Labels["peer_authentication"] == "partners/default":
				require.Contains(t, a.Annotations["summary"], "expires 2025-12-31")
			case a.Labels["service"] == "ratings":
				require.Contains(t, a.Annotations["signal"], "envoy_cluster_upstream_rq_retry")
			case a.Labels["service"] == "search":
				require.Contains(t, a.Annotations["signal"], "URX")
			}
		}
	})

	t.Run("the graph joins observed figures with the configured retries, timeout and outlier detection", func(t *testing.T) {
		api, err := checks.NewPrometheus(config.Endpoint{URL: prom.URL()}, nil)
		require.NoError(t, err)
		g, err := checks.BuildGraph(context.Background(), checks.GraphOptions{Querier: api, Config: meshCfg, Window: 5 * time.Minute,
			At: at, MeshDomain: "cluster.local", RootNamespace: "istio-system"})
		require.NoError(t, err)
		edges := map[string]graph.Edge{}
		calls := 0
		for _, e := range g.Edges {
			edges[e.ID] = e
			if e.Kind == graph.EdgeCall {
				calls++
			}
		}
		require.Equal(t, len(checkFixedFlows()), calls, "one call edge per flow")
		const k = "Kubernetes"
		ratings := edges["workload:"+k+"/bookinfo/reviews-v1 -> service:"+k+"/ratings.bookinfo.svc.cluster.local"]
		require.InDelta(t, 5, ratings.RequestRate, 1e-6)
		require.InDelta(t, 49.75, *ratings.P99Ms, 1e-6, "40ms requests land in the (25, 50] bucket")
		require.InDelta(t, 37.5, *ratings.P50Ms, 1e-6, "the middle of the (25, 50] bucket")
		require.Equal(t, 1.0, *ratings.MTLSShare)
		require.Equal(t, "bookinfo/ratings", ratings.Policy.VirtualService)
		require.Equal(t, "3s", ratings.Policy.Routes[0].Timeout)
		require.Equal(t, int64(2), ratings.Policy.Routes[0].Retries.Attempts)
		require.Equal(t, int64(3), ratings.Policy.DestinationRule.OutlierDetection.Consecutive5xxErrors)
		serve := edges["service:"+k+"/ratings.bookinfo.svc.cluster.local -> workload:"+k+"/bookinfo/ratings-v1"]
		require.Equal(t, graph.EdgeServe, serve.Kind, "the service links to the workload behind it")
		legacy := edges["workload:"+k+"/legacy/legacy-client -> service:"+k+"/reviews.bookinfo.svc.cluster.local"]
		require.Equal(t, 0.0, *legacy.MTLSShare, "plaintext")
		require.True(t, legacy.Policy.Routes[0].Retries.Default)
		mysql := edges["workload:"+k+"/bookinfo/reviews-v1 -> service:"+k+"/mysql.bookinfo.svc.cluster.local"]
		require.Equal(t, "tcp", mysql.Protocol)
		require.Equal(t, 0.0, *mysql.MTLSShare)
		payments := g.Node("service:" + k + "/payments.shop.svc.cluster.local")
		require.Equal(t, 2.0, *payments.EjectedEndpoints, "outlier detection holds two endpoints of payments ejected")
		require.Nil(t, payments.OverflowRate, "meshsim exports no overflow counter")
		cart := edges["workload:"+k+"/shop/web -> service:"+k+"/cart.shop.svc.cluster.local"]
		require.InDelta(t, 0.05, cart.ErrorRate, 1e-6, "the client sees timeouts as 504s")
		require.Len(t, g.Queries, len(checks.GraphSignals(5*time.Minute, graph.ClusterLabels{})))
		t.Logf("graph: %d nodes, %d edges", len(g.Nodes), len(g.Edges))
	})
}
