package e2e

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/checks"
	"github.com/meshguard/meshguard/internal/alerting"
	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/internal/graph"
	"github.com/meshguard/meshguard/test/harness"
	"github.com/meshguard/meshguard/test/meshsim"
)

// checkShapesConfig: bookinfo, the ambient namespace and payments-db (which has no traffic) are
// STRICT; partners is PERMISSIVE under an exception; "open" has no policy at all.
const checkShapesConfig = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: bookinfo}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: ambient}
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
  name: default
  namespace: partners
  annotations:
    exceptions.meshguard.io/MG301: "reason=partner VPN terminates TLS; expires=2099-12-31"
spec: {mtls: {mode: PERMISSIVE}}
`

// checkShapesFlows is a mesh written with Istio's real metric shapes (meshsim's shapes/): sidecars
// and ambient workloads, a waypoint, a STRICT denial by ztunnel, gRPC, a second cluster, renamed
// Envoy cluster stats and a PassthroughCluster call. Each alert has a case that fires and a case
// built to look like it that must not.
func checkShapesFlows() []meshsim.Flow {
	wl := func(ns, name, app string) meshsim.Workload {
		return meshsim.Workload{Name: name, Namespace: ns, App: app}
	}
	ambient := func(name, app string) meshsim.Workload {
		return meshsim.Workload{Name: name, Namespace: "ambient", App: app, Ambient: true, Cluster: "east"}
	}
	productpage := wl("bookinfo", "productpage-v1", "productpage")
	reviews := wl("bookinfo", "reviews-v1", "reviews")
	web := wl("shop", "web", "web")
	frontend := ambient("frontend", "frontend")
	return []meshsim.Flow{
		{Source: productpage, Destination: reviews, Rate: 10},
		// MeshPlaintextTraffic fires: a sidecar client without mTLS into STRICT bookinfo.
		{Source: wl("legacy", "legacy-client", "legacy-client"), Destination: reviews, Rate: 2, Plaintext: true},
		// ... and stays silent on connections ztunnel opened and then refused (DENY).
		{Source: meshsim.Workload{Name: "scanner", Namespace: "legacy", NoSidecar: true}, Destination: ambient("orders-v1", "orders"),
			Protocol: meshsim.TCP, Plaintext: true, Denied: true, Rate: 3},
		// MeshPlaintextAllowed fires under the exception, and nothing fires where nothing was promised.
		{Source: wl("partners", "vpn", "vpn"), Destination: wl("partners", "gateway-v1", "gateway"), Rate: 3, Plaintext: true},
		{Source: wl("open", "client", "client"), Destination: wl("open", "server-v1", "server"), Rate: 1, Plaintext: true},
		// MeshRetryStorm fires from Envoy's retry counters, from the URX share behind a waypoint
		// (second cluster), and from the URX share where outboundClusterStatName renamed the stats;
		// it stays silent at 4% retries.
		{Source: wl("bookinfo", "reviews-v2", "reviews"), Destination: wl("bookinfo", "ratings-v1", "ratings"), Rate: 5, RetryShare: 0.3},
		{Source: frontend, Destination: ambient("cart-v1", "cart"), Waypoint: true, Rate: 8, URXShare: 0.1},
		{Source: productpage, Destination: wl("bookinfo", "stars-v1", "stars"), Rate: 5, RetryShare: 0.2, URXShare: 0.08, ClusterStatName: "stars.bookinfo_9080"},
		{Source: productpage, Destination: wl("bookinfo", "details-v1", "details"), Rate: 10, RetryShare: 0.04},
		// MeshUpstreamTimeouts fires behind the waypoint; silent at 0.5%, and a PassthroughCluster
		// call, which names no namespace, is counted instead of raised.
		{Source: frontend, Destination: ambient("search-v1", "search"), Waypoint: true, Rate: 4, TimeoutShare: 0.05},
		{Source: web, Destination: wl("shop", "catalog-v1", "catalog"), Rate: 20, TimeoutShare: 0.005},
		{Source: web, Destination: meshsim.Workload{Name: "partner-api", Namespace: "external", NoSidecar: true},
			ExternalHost: "api.partner.example", Rate: 2, TimeoutShare: 0.5},
		// MeshCircuitOpen fires on overflows (UO) a client without ejection stats sees; silent
		// where stats are exported and nothing is ejected or refused.
		{Source: wl("shop", "checkout", "checkout"), Destination: wl("shop", "payments-v1", "payments"), Rate: 4, OverflowShare: 0.05, OmitEnvoyStats: true},
		{Source: web, Destination: wl("shop", "inventory-v1", "inventory"), Rate: 4},
		// gRPC failures (HTTP 200, grpc-status 14) between two workloads of the second cluster.
		{Source: meshsim.Workload{Name: "ledger-client", Namespace: "grpc", Cluster: "east"},
			Destination: meshsim.Workload{Name: "ledger-v1", Namespace: "grpc", App: "ledger", Cluster: "east"}, Protocol: meshsim.GRPC, Rate: 5, ErrorShare: 0.2},
	}
}

// TestCheckAlertsOnRealShapes backfills half an hour of the real-shape mesh that ends at the
// evaluation time, runs one cycle with a real Prometheus and a real Alertmanager, and compares
// the alerts Alertmanager holds with the firing cases: every spec alert fires where it should and
// nowhere else.
func TestCheckAlertsOnRealShapes(t *testing.T) {
	// The evaluation time is now, so that Alertmanager takes the alerts as active; Prometheus
	// starts after it, so the backfilled window is not mistaken for a warm-up.
	at := time.Now().Truncate(10 * time.Second)
	start := at.Add(-30 * time.Minute)
	om, err := meshsim.RenderOpenMetrics(checkShapesFlows(), meshsim.Span{Start: start, End: at, Step: 10 * time.Second}, meshsim.Options{})
	require.NoError(t, err)
	prom := harness.StartPrometheus(t, harness.PrometheusOptions{DataDir: harness.Backfill(t, om)})
	am := harness.StartAlertmanager(t, harness.AlertmanagerOptions{})
	meshCfg := checkMeshConfigOf(t, checkShapesConfig)

	s := checks.SettingsFrom(config.Default())
	s.PrometheusURL, s.CheckerNamespace = prom.URL(), "meshguard-system"
	api, err := checks.NewPrometheus(config.Endpoint{URL: prom.URL()}, nil)
	require.NoError(t, err)
	metrics := checks.NewMetrics(prometheus.NewRegistry())
	n, err := alerting.NewNotifier(alerting.NotifierOptions{Alertmanagers: []config.Endpoint{{URL: am.URL()}}, Metrics: metrics.Alerting})
	require.NoError(t, err)
	now := at
	c, err := checks.New(checks.Options{Settings: s, Querier: api, Config: checks.StaticSource{Config: meshCfg}, Notifier: n,
		Metrics: metrics, Clock: func() time.Time { return now }})
	require.NoError(t, err)
	res := c.Cycle(context.Background())
	require.False(t, res.Degraded(), "%v", res.Errors())

	spec := map[string]bool{checks.AlertPlaintextTraffic: true, checks.AlertPlaintextAllowed: true, checks.AlertRetryStorm: true,
		checks.AlertUpstreamTimeouts: true, checks.AlertCircuitOpen: true, checks.AlertTelemetryBlind: true, checks.AlertCheckerDegraded: true}
	// active reads Alertmanager's active alerts of the spec as "alertname namespace target".
	active := func() []string {
		var out []string
		for _, a := range checkActiveAlerts(t, am, nil) {
			l := a.Labels
			if !spec[l["alertname"]] {
				continue
			}
			require.NotEmpty(t, l["namespace"], "every alert carries a namespace: %v", l)
			key := []string{l["alertname"], l["namespace"]}
			for _, k := range []string{"service", "destination_workload", "cluster", "response_flag"} {
				if l[k] != "" {
					key = append(key, k+"="+l[k])
				}
			}
			out = append(out, strings.Join(key, " "))
		}
		sort.Strings(out)
		return out
	}

	t.Run("each alert fires on its real-shape case and on nothing built to look like one", func(t *testing.T) {
		require.Eventually(t, func() bool { return len(active()) > 0 }, 30*time.Second, checkPoll)
		require.Equal(t, []string{
			"MeshCircuitOpen shop service=payments cluster=Kubernetes response_flag=UO",
			"MeshPlaintextAllowed partners destination_workload=gateway-v1 cluster=Kubernetes",
			"MeshPlaintextTraffic bookinfo destination_workload=reviews-v1 cluster=Kubernetes",
			"MeshRetryStorm ambient service=cart cluster=east",
			"MeshRetryStorm bookinfo service=ratings",
			"MeshRetryStorm bookinfo service=stars cluster=Kubernetes",
			"MeshTelemetryBlind payments-db",
			"MeshUpstreamTimeouts ambient service=search cluster=east",
		}, active())
	})

	t.Run("each alert names the signal it used", func(t *testing.T) {
		signals := map[string]string{}
		for _, a := range res.Firing {
			signals[a.Name()+" "+a.Labels["service"]] = a.Annotations["signal"]
		}
		require.Contains(t, signals["MeshRetryStorm ratings"], "envoy_cluster_upstream_rq_retry")
		require.Contains(t, signals["MeshRetryStorm cart"], "URX", "behind a waypoint")
		require.Contains(t, signals["MeshRetryStorm stars"], "URX", "renamed cluster stats are not read as Envoy's")
		require.Contains(t, signals["MeshCircuitOpen payments"], "UO")
	})

	t.Run("a PassthroughCluster call is counted, not alerted", func(t *testing.T) {
		require.Equal(t, map[string]int{checks.AlertUpstreamTimeouts: 1}, res.Unattributed)
		require.Equal(t, 1.0, checkMetric(t, metrics.Unattributed.WithLabelValues(checks.AlertUpstreamTimeouts)))
		require.NotNil(t, res.EnvoyStats)
		require.Positive(t, res.EnvoyStats.OutboundClusters, "the sidecars export Envoy's cluster stats")
	})

	t.Run("the graph takes waypoint views, counts gRPC failures and keeps the clusters apart", func(t *testing.T) {
		g, err := checks.BuildGraph(context.Background(), checks.GraphOptions{Querier: api, Window: s.Window, At: at,
			MeshDomain: "cluster.local", RootNamespace: "istio-system"})
		require.NoError(t, err)
		edges := map[string]graph.Edge{}
		for _, e := range g.Edges {
			edges[e.ID] = e
		}
		cart := edges["workload:east/ambient/frontend -> service:east/cart.ambient.svc.cluster.local"]
		require.Equal(t, "waypoint", cart.Reporter)
		require.InDelta(t, 8, cart.RequestRate, 1e-6)
		ledger := edges["workload:east/grpc/ledger-client -> service:east/ledger.grpc.svc.cluster.local"]
		require.Equal(t, graph.ProtocolGRPC, ledger.Protocol)
		require.InDelta(t, 0.2, ledger.ErrorRate, 1e-6, "HTTP 200 with grpc-status 14 is a failure")
		require.Equal(t, "east", g.Node("service:east/ledger.grpc.svc.cluster.local").Cluster)
		require.Empty(t, g.Notes, "Envoy's cluster stats are exported")
	})

	t.Run("MeshCheckerDegraded fires when Prometheus stops answering, and not before", func(t *testing.T) {
		require.NotContains(t, strings.Join(active(), "\n"), checks.AlertCheckerDegraded)
		require.NoError(t, prom.Stop())
		now = at.Add(s.Interval)
		res := c.Cycle(context.Background())
		require.True(t, res.Degraded())
		require.Eventually(t, func() bool {
			return len(checkActiveAlerts(t, am, checkLabels("alertname", checks.AlertCheckerDegraded, "namespace", "meshguard-system"))) == 1
		}, 30*time.Second, checkPoll)
	})
	require.NoError(t, n.Stop(context.Background()))
}

// TestCheckEnvoyStatsAbsent runs a default install, where no proxy exports Envoy's cluster stats:
// the circuit opens on UH, and the report, the checker's metrics and the graph say what is
// missing and which setting turns it on.
func TestCheckEnvoyStatsAbsent(t *testing.T) {
	at := time.Now().Truncate(10 * time.Second)
	flows := []meshsim.Flow{{Source: meshsim.Workload{Name: "web", Namespace: "shop"}, Destination: meshsim.Workload{Name: "payments-v1", Namespace: "shop", App: "payments"},
		Rate: 5, NoHealthyShare: 0.2, OmitEnvoyStats: true}}
	om, err := meshsim.RenderOpenMetrics(flows, meshsim.Span{Start: at.Add(-10 * time.Minute), End: at, Step: 10 * time.Second}, meshsim.Options{})
	require.NoError(t, err)
	prom := harness.StartPrometheus(t, harness.PrometheusOptions{DataDir: harness.Backfill(t, om)})
	s := checks.SettingsFrom(config.Default())
	api, err := checks.NewPrometheus(config.Endpoint{URL: prom.URL()}, nil)
	require.NoError(t, err)
	metrics := checks.NewMetrics(prometheus.NewRegistry())
	c, err := checks.New(checks.Options{Settings: s, Querier: api, Config: checks.StaticSource{Config: checkMeshConfigOf(t, checkMeshStrictPA)},
		Metrics: metrics, Clock: func() time.Time { return at }})
	require.NoError(t, err)
	res := c.Cycle(context.Background())
	require.False(t, res.Degraded(), "%v", res.Errors())

	var open []string
	for _, a := range res.Firing {
		if a.Name() == checks.AlertCircuitOpen {
			open = append(open, a.Labels["service"]+" "+a.Labels["response_flag"]+" "+a.Annotations["signal"])
		}
	}
	require.Equal(t, []string{"payments UH istio_requests_total response_flags UH share"}, open)
	require.Equal(t, 0, res.EnvoyStats.OutboundClusters)
	require.Equal(t, 0.0, checkMetric(t, metrics.EnvoyOutboundClusters))
	var b strings.Builder
	require.NoError(t, checks.WriteReport(&b, checks.NewReport(res, s), "text"))
	require.Contains(t, b.String(), "proxyStatsMatcher")

	g, err := checks.BuildGraph(context.Background(), checks.GraphOptions{Querier: api, Window: s.Window, At: at,
		MeshDomain: "cluster.local", RootNamespace: "istio-system"})
	require.NoError(t, err)
	require.Len(t, g.Notes, 1)
	require.Contains(t, g.Notes[0], "proxyStatsMatcher")
}
