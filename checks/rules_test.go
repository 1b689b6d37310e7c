package checks

import (
	"sort"
	"testing"

	"github.com/meshguard/meshguard/internal/alerting"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

const meshStrict = `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
`

const legacyException = `
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: legacy-clients
  namespace: shop
  annotations:
    exceptions.meshguard.io/MG301: "reason=legacy batch clients; expires=2026-12-31"
spec:
  selector: {matchLabels: {app: cart}}
  mtls: {mode: PERMISSIVE}
`

const permissiveNoException = `
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: open, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  mtls: {mode: PERMISSIVE}
`

const expiredException = `
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: old
  namespace: shop
  annotations:
    exceptions.meshguard.io/MG301: "reason=migration; expires=2026-01-31"
spec:
  mtls: {mode: PERMISSIVE}
`

const strictWithOpenPort = `
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: metrics-port
  namespace: shop
  annotations:
    exceptions.meshguard.io/MG302: "reason=node-local scraper"
spec:
  selector: {matchLabels: {app: cart}}
  mtls: {mode: STRICT}
  portLevelMtls: {"9090": {mode: PERMISSIVE}}
`

// plaintextInto is a plaintext_requests result row.
func plaintextInto(v float64, dstNS, dstWL, app, srcNS, srcWL string) *model.Sample {
	return sample(v, "destination_workload_namespace", dstNS, "destination_workload", dstWL, "destination_app", app,
		"destination_version", "v1", "source_workload_namespace", srcNS, "source_workload", srcWL)
}

func evalRule(t *testing.T, alertname string, s Settings, m *MeshConfig, results map[string]model.Vector) []Finding {
	t.Helper()
	for _, r := range Rules() {
		if r.Alertname == alertname {
			return r.eval(&evalContext{now: t0, settings: s, results: results, mesh: m})
		}
	}
	t.Fatalf("no rule %s", alertname)
	return nil
}

func TestPlaintextRules(t *testing.T) {
	cart := plaintextInto(2, "shop", "cart-v1", "cart", "legacy", "batch")
	tests := []struct {
		name        string
		config      string
		results     map[string]model.Vector
		wantTraffic []map[string]string
		wantAllowed []map[string]string
		wantFigure  float64
	}{
		{name: "plaintext into a workload STRICT by the mesh-wide policy fires MeshPlaintextTraffic",
			config:  meshStrict,
			results: map[string]model.Vector{SignalPlaintextRequests: {cart}},
			wantTraffic: []map[string]string{{"namespace": "shop", "destination_workload": "cart-v1",
				"source_workload": "batch", "source_workload_namespace": "legacy"}},
			wantFigure: 2},
		{name: "plaintext TCP connections count like requests",
			config:      meshStrict,
			results:     map[string]model.Vector{SignalPlaintextTCP: {plaintextInto(0.5, "shop", "db", "db", "shop", "cart-v1")}},
			wantTraffic: []map[string]string{{"namespace": "shop", "destination_workload": "db"}},
			wantFigure:  0.5},
		{name: "a PERMISSIVE workload policy with an exception fires MeshPlaintextAllowed instead",
			config:  meshStrict + legacyException,
			results: map[string]model.Vector{SignalPlaintextRequests: {cart}},
			wantAllowed: []map[string]string{{"namespace": "shop", "destination_workload": "cart-v1",
				"peer_authentication": "shop/legacy-clients"}}},
		{name: "a PERMISSIVE policy without an exception raises nothing at runtime (lint reports MG301)",
			config:  meshStrict + permissiveNoException,
			results: map[string]model.Vector{SignalPlaintextRequests: {cart}}},
		{name: "the exception only covers the workloads its policy selects",
			config:      meshStrict + legacyException,
			results:     map[string]model.Vector{SignalPlaintextRequests: {plaintextInto(1, "shop", "checkout", "checkout", "legacy", "batch")}},
			wantTraffic: []map[string]string{{"destination_workload": "checkout"}}},
		{name: "no policy at all promises nothing",
			config:  "",
			results: map[string]model.Vector{SignalPlaintextRequests: {cart}}},
		{name: "a STRICT workload with an excepted PERMISSIVE port is allowed, not an incident",
			config:      meshStrict + strictWithOpenPort,
			results:     map[string]model.Vector{SignalPlaintextRequests: {cart}},
			wantAllowed: []map[string]string{{"peer_authentication": "shop/metrics-port"}}},
		{name: "excluded namespaces are not checked",
			config:  meshStrict,
			results: map[string]model.Vector{SignalPlaintextRequests: {plaintextInto(1, "kube-system", "dns", "dns", "x", "y")}}},
		{name: "a client without a sidecar is named as such",
			config:      meshStrict,
			results:     map[string]model.Vector{SignalPlaintextRequests: {plaintextInto(1, "shop", "cart-v1", "cart", "unknown", "unknown")}},
			wantTraffic: []map[string]string{{"source_workload": "unknown"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := testSettings()
			s.Exclude = []string{"kube-*"}
			var m *MeshConfig
			if tc.config == "" {
				m = NewMeshConfig("istio-system", nil, nil)
			} else {
				m = meshFrom(t, tc.config)
			}
			traffic := evalRule(t, AlertPlaintextTraffic, s, m, tc.results)
			allowed := evalRule(t, AlertPlaintextAllowed, s, m, tc.results)
			require.Len(t, traffic, len(tc.wantTraffic))
			require.Len(t, allowed, len(tc.wantAllowed))
			for i, want := range tc.wantTraffic {
				for k, v := range want {
					require.Equal(t, v, traffic[i].Labels[k], k)
				}
				if tc.wantFigure != 0 {
					require.Equal(t, tc.wantFigure, traffic[i].Value)
				}
				require.Contains(t, traffic[i].Annotations["description"], "STRICT")
			}
			for i, want := range tc.wantAllowed {
				for k, v := range want {
					require.Equal(t, v, allowed[i].Labels[k], k)
				}
			}
		})
	}
}

func TestPlaintextAllowedNamesTheExceptionAndItsExpiry(t *testing.T) {
	tests := []struct {
		name        string
		config      string
		wantExpires string
		wantSummary string
	}{
		{name: "an exception with a future expiry gives its date", config: meshStrict + legacyException,
			wantExpires: "2026-12-31", wantSummary: "expires 2026-12-31"},
		{name: "an expired exception says it no longer holds", config: meshStrict + expiredException,
			wantExpires: "2026-01-31", wantSummary: "EXPIRED on 2026-01-31"},
		{name: "an exception without expiry says so", config: meshStrict + strictWithOpenPort,
			wantExpires: "never", wantSummary: "no expiry"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := evalRule(t, AlertPlaintextAllowed, testSettings(), meshFrom(t, tc.config),
				map[string]model.Vector{SignalPlaintextRequests: {plaintextInto(3, "shop", "cart-v1", "cart", "legacy", "batch")}})
			require.Len(t, got, 1)
			require.Equal(t, tc.wantExpires, got[0].Annotations["exception_expires"])
			require.Contains(t, got[0].Annotations["summary"], tc.wantSummary)
			require.Contains(t, got[0].Annotations["description"], "reason")
			require.Equal(t, 3.0, got[0].Value)
		})
	}
}

func TestTelemetryBlind(t *testing.T) {
	const config = meshStrict + `
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: quiet}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: open}
spec: {mtls: {mode: PERMISSIVE}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs, namespace: busy}
spec: {hosts: [x]}
---
apiVersion: v1
kind: Service
metadata: {name: dns, namespace: outside}
spec: {selector: {k8s-app: dns}, ports: [{port: 53}]}
`
	tests := []struct {
		name    string
		present []string
		include []string
		want    []string
	}{
		{name: "STRICT namespaces without series are blind; PERMISSIVE, the root namespace and a Service's namespace are not",
			present: []string{"busy"}, want: []string{"quiet"}},
		{name: "a namespace with any series is not blind", present: []string{"busy", "quiet"}},
		{name: "namespaces named in include are checked even without objects",
			present: []string{"busy", "quiet"}, include: []string{"busy", "quiet", "payments"}, want: []string{"payments"}},
		{name: "the root namespace is checked when included by name",
			present: []string{"busy", "quiet"}, include: []string{"istio-system", "busy", "quiet"}, want: []string{"istio-system"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := testSettings()
			s.Include = tc.include
			var vec model.Vector
			for _, ns := range tc.present {
				vec = append(vec, sample(3, "destination_workload_namespace", ns))
			}
			got := evalRule(t, AlertTelemetryBlind, s, meshFrom(t, config), map[string]model.Vector{SignalTelemetryPresence: vec})
			var names []string
			for _, f := range got {
				names = append(names, f.Labels[LabelNamespace])
			}
			sort.Strings(names)
			require.Equal(t, tc.want, names)
		})
	}
}

// retryRatio is an envoy_cluster_stats row: Envoy's retry ratio of one service.
func retryRatio(v float64, host string) *model.Sample {
	return sample(v, labelStat, statRetryRatio, labelServiceHost, host)
}

// outcome is a request_outcomes row: the share of a service's requests with one flag, as one
// reporter counts it, in one cluster.
func outcome(v float64, flag, reporter, host, name, ns string) *model.Sample {
	return sample(v, labelOutcome, flag, "reporter", reporter, "destination_cluster", "east",
		"destination_service", host, "destination_service_name", name, "destination_service_namespace", ns)
}

func TestTrafficRules(t *testing.T) {
	tests := []struct {
		name       string
		alertname  string
		results    map[string]model.Vector
		wantLabels []map[string]string
		wantSignal string
	}{
		{name: "an Envoy retry ratio above the threshold is a storm on the service parsed from the cluster name",
			alertname:  AlertRetryStorm,
			results:    map[string]model.Vector{SignalEnvoyStats: {retryRatio(0.3, "ratings.bookinfo.svc.cluster.local")}},
			wantLabels: []map[string]string{{"namespace": "bookinfo", "service": "ratings", "destination_service": "ratings.bookinfo.svc.cluster.local"}},
			wantSignal: "envoy_cluster_upstream_rq_retry"},
		{name: "an Envoy retry ratio under the threshold raises nothing, and its URX share is not consulted",
			alertname: AlertRetryStorm,
			results: map[string]model.Vector{SignalEnvoyStats: {retryRatio(0.01, "cart.shop.svc.cluster.local")},
				SignalRequestOutcomes: {outcome(0.1, "URX", "source", "cart.shop.svc.cluster.local", "cart", "shop")}}},
		{name: "without Envoy stats the URX share stands in and the alert says so, with the cluster",
			alertname:  AlertRetryStorm,
			results:    map[string]model.Vector{SignalRequestOutcomes: {outcome(0.1, "URX", "source", "cart.shop.svc.cluster.local", "cart", "shop")}},
			wantLabels: []map[string]string{{"namespace": "shop", "service": "cart", "cluster": "east"}},
			wantSignal: "URX"},
		{name: "retries exhausted behind a waypoint count as the waypoint reports them",
			alertname:  AlertRetryStorm,
			results:    map[string]model.Vector{SignalRequestOutcomes: {outcome(0.2, "URX", "waypoint", "cart.shop.svc.cluster.local", "cart", "shop")}},
			wantLabels: []map[string]string{{"namespace": "shop", "service": "cart", "reporter": ""}},
			wantSignal: "URX"},
		{name: "a service outside the mesh has no namespace label",
			alertname:  AlertRetryStorm,
			results:    map[string]model.Vector{SignalEnvoyStats: {retryRatio(0.3, "api.example.com")}},
			wantLabels: []map[string]string{{"service": "api.example.com", "namespace": ""}}},
		{name: "a PassthroughCluster call has no namespace label either",
			alertname:  AlertUpstreamTimeouts,
			results:    map[string]model.Vector{SignalRequestOutcomes: {outcome(0.5, "UT", "source", "dl-cdn.alpinelinux.org", "PassthroughCluster", "unknown")}},
			wantLabels: []map[string]string{{"service": "PassthroughCluster", "namespace": ""}}},
		{name: "upstream timeouts are reported per destination service and cluster",
			alertname: AlertUpstreamTimeouts,
			results: map[string]model.Vector{SignalRequestOutcomes: {outcome(0.05, "UT", "source", "cart.shop.svc.cluster.local", "cart", "shop"),
				outcome(0.5, "URX", "source", "search.shop.svc.cluster.local", "search", "shop")}},
			wantLabels: []map[string]string{{"namespace": "shop", "service": "cart", "cluster": "east"}}},
		{name: "a sidecar client and a waypoint reporting one service's timeouts are one alert at the higher share",
			alertname: AlertUpstreamTimeouts,
			results: map[string]model.Vector{SignalRequestOutcomes: {outcome(0.05, "UT", "source", "cart.shop.svc.cluster.local", "cart", "shop"),
				outcome(0.08, "UT", "waypoint", "cart.shop.svc.cluster.local", "cart", "shop")}},
			wantLabels: []map[string]string{{"namespace": "shop", "service": "cart"}}},
		{name: "ejections are reported per outbound cluster",
			alertname: AlertCircuitOpen,
			results: map[string]model.Vector{SignalEnvoyStats: {
				sample(2, labelStat, statEjections, "cluster_name", "outbound|9080|v2|reviews.bookinfo.svc.cluster.local"),
				sample(1, labelStat, statEjections, "cluster_name", "inbound|9080||")}},
			wantLabels: []map[string]string{{"namespace": "bookinfo", "service": "reviews",
				"cluster_name": "outbound|9080|v2|reviews.bookinfo.svc.cluster.local"}},
			wantSignal: "ejections_active"},
		{name: "without ejection stats, overflows (UO) open the circuit and the alert names the flag",
			alertname:  AlertCircuitOpen,
			results:    map[string]model.Vector{SignalRequestOutcomes: {outcome(0.02, "UO", "source", "payments.shop.svc.cluster.local", "payments", "shop")}},
			wantLabels: []map[string]string{{"namespace": "shop", "service": "payments", "response_flag": "UO", "cluster": "east"}},
			wantSignal: "UO"},
		{name: "no healthy upstream (UH) behind a waypoint opens the circuit too",
			alertname:  AlertCircuitOpen,
			results:    map[string]model.Vector{SignalRequestOutcomes: {outcome(1, "UH", "waypoint", "payments.shop.svc.cluster.local", "payments", "shop")}},
			wantLabels: []map[string]string{{"namespace": "shop", "service": "payments", "response_flag": "UH"}},
			wantSignal: "UH"},
		{name: "a service with an ejection alert gets no second one from its flags",
			alertname: AlertCircuitOpen,
			results: map[string]model.Vector{
				SignalEnvoyStats:      {sample(1, labelStat, statEjections, "cluster_name", "outbound|9080||payments.shop.svc.cluster.local")},
				SignalRequestOutcomes: {outcome(1, "UH", "source", "payments.shop.svc.cluster.local", "payments", "shop")}},
			wantLabels: []map[string]string{{"namespace": "shop", "service": "payments", "response_flag": ""}}},
		{name: "excluded namespaces raise nothing",
			alertname: AlertRetryStorm,
			results:   map[string]model.Vector{SignalEnvoyStats: {retryRatio(0.3, "x.kube-system.svc.cluster.local")}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := testSettings()
			s.Exclude = []string{"kube-system"}
			got := evalRule(t, tc.alertname, s, nil, tc.results)
			require.Len(t, got, len(tc.wantLabels))
			for i, want := range tc.wantLabels {
				for k, v := range want {
					require.Equal(t, v, got[i].Labels[k], k)
				}
				require.NotEmpty(t, got[i].Annotations["summary"])
				require.Contains(t, got[i].Annotations["description"], "threshold")
			}
			if tc.wantSignal != "" {
				require.Contains(t, got[0].Annotations["signal"], tc.wantSignal)
			}
		})
	}
}

func TestRuleCatalogue(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range AllAlerts() {
		require.False(t, seen[r.Alertname], "duplicate %s", r.Alertname)
		seen[r.Alertname] = true
		require.NotEmpty(t, r.ID)
		require.NotEmpty(t, r.Help)
		require.Contains(t, []string{alerting.SeverityCritical, alerting.SeverityWarning}, r.Severity)
	}
	signals := map[string]bool{}
	for _, s := range Signals(testSettings()) {
		signals[s.Name] = true
	}
	for _, r := range Rules() {
		require.NotEmpty(t, r.Signals, r.Alertname)
		for _, s := range r.Signals {
			require.True(t, signals[s], "%s reads unknown signal %s", r.Alertname, s)
		}
	}
	for _, name := range []string{AlertPlaintextTraffic, AlertPlaintextAllowed, AlertRetryStorm, AlertUpstreamTimeouts,
		AlertCircuitOpen, AlertTelemetryBlind, AlertCheckerDegraded} {
		require.True(t, seen[name], "spec alert %s missing", name)
	}
}
