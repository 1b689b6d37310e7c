package checks

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/meshguard/meshguard/internal/graph"
)

// Signal names. Each is one PromQL query per cycle, aggregated by labels, so the number of
// queries a cycle runs is the number of signals, whatever the number of services.
const (
	SignalPlaintextRequests = "plaintext_requests"
	SignalPlaintextTCP      = "plaintext_tcp_connections"
	SignalRequestOutcomes   = "request_outcomes"
	SignalEnvoyStats        = "envoy_cluster_stats"
	SignalTelemetryPresence = "telemetry_presence"
)

// Signal is one PromQL query of a cycle.
type Signal struct {
	Name string
	// Query is the PromQL expression, window and thresholds filled in.
	Query string
	// Describes says what the query measures, for documentation and output.
	Describes string
	// Refresh, when set, is how long a successful answer is reused before the query runs
	// again; zero runs it every cycle.
	Refresh time.Duration
}

// Regular expressions of the queries. label_replace and =~ anchor them at both ends.
const (
	// outboundCluster keeps the clusters that are service-to-service calls: Envoy names them
	// outbound|PORT|SUBSET|HOST. inbound|..., xds-grpc, PassthroughCluster, BlackHoleCluster and
	// the like are not destination services.
	outboundCluster = `outbound\\|.+`
	// outboundHost captures HOST from outbound|PORT|SUBSET|HOST.
	outboundHost = `outbound\\|[^|]*\\|[^|]*\\|(.+)`
)

// Outcomes of a request, from its response_flags, that the request_outcomes signal measures.
const (
	OutcomeRetriesExhausted = "URX" // the retry limit was reached
	OutcomeUpstreamTimeout  = "UT"  // the upstream request timed out
	OutcomeOverflow         = "UO"  // the circuit breaker (connection pool) refused the request
	OutcomeNoHealthy        = "UH"  // no healthy upstream host: every endpoint failed or was ejected
)

// Labels the queries add to their answers.
const (
	// labelOutcome is the response flag a request_outcomes row counts.
	labelOutcome = "outcome"
	// labelStat names what an envoy_cluster_stats row holds.
	labelStat = "stat"
	// labelServiceHost is the host parsed out of an Envoy cluster name.
	labelServiceHost = "service_host"
)

// Values of labelStat.
const (
	statRetryRatio = "retry_ratio"
	statEjections  = "ejections"
	statClusters   = "outbound_clusters"
)

// outcomeFlags lists the flags request_outcomes counts, as a regular expression alternative.
var outcomeFlags = strings.Join([]string{OutcomeRetriesExhausted, OutcomeUpstreamTimeout, OutcomeOverflow, OutcomeNoHealthy}, "|")

// clientReporters are the proxies that see a request's outcome on the calling side: the
// client's sidecar, and in ambient mode the waypoint in front of the service. UT and URX are
// only seen there (the server side of a timeout is a downstream disconnect, DC).
const clientReporters = `source|waypoint`

// promDuration writes d the way PromQL reads it ("5m", "30s", "1m30s").
func promDuration(d time.Duration) string { return model.Duration(d).String() }

// Signals returns the queries of one cycle for the settings, in a stable order.
func Signals(s Settings) []Signal {
	w := promDuration(s.Window)
	cluster := s.ClusterLabels.Destination
	// A destination service as the calling side reports it, per reporter so that a sidecar
	// client and a waypoint that both report one request are not added up.
	service := fmt.Sprintf(`reporter, %s, destination_service, destination_service_name, destination_service_namespace`, cluster)
	// Plaintext into a workload, as the server reports it: connection_security_policy is only
	// meaningful on reporter="destination" (the client side says "unknown"; ztunnel says
	// "unknown" for plaintext too, which != "mutual_tls" keeps).
	plaintextBy := fmt.Sprintf(`%s, destination_workload_namespace, destination_workload, destination_app, destination_version, source_workload_namespace, source_workload`, cluster)
	const plain = `reporter="destination",connection_security_policy!="mutual_tls"`
	// Envoy's cluster stats name the destination only in cluster_name (the stats are labelled
	// with the client's namespace and pod): the host is parsed out of it, and all ports and
	// subsets of a service add up.
	byHost := func(expr string) string {
		return fmt.Sprintf(`label_replace(%s, "%s", "$1", "cluster_name", "%s")`, expr, labelServiceHost, outboundHost)
	}
	outbound := func(metric string) string { return fmt.Sprintf(`%s{cluster_name=~"%s"}`, metric, outboundCluster) }
	tag := func(expr, label, value string) string {
		return fmt.Sprintf(`label_replace(%s, "%s", "%s", "", "")`, expr, label, value)
	}
	presence := func(metric string) string {
		return fmt.Sprintf(`count by (%s, destination_workload_namespace) (count_over_time(%s{reporter="destination"}[%s]))`, cluster, metric, w)
	}
	return []Signal{
		{Name: SignalPlaintextRequests,
			Query:     fmt.Sprintf(`sum by (%s) (rate(istio_requests_total{%s}[%s])) > 0`, plaintextBy, plain, w),
			Describes: "plaintext requests per second into each workload, by source workload"},
		// ztunnel counts a connection as opened before its authorization check; one a policy
		// refused is closed with response_flags="DENY". The denied closes are subtracted: they
		// never carried traffic. (The opened series have other response_flags, so "or" keeps both.)
		{Name: SignalPlaintextTCP,
			Query: fmt.Sprintf(`sum by (%s) (rate(istio_tcp_connections_opened_total{%s}[%s]) or -rate(istio_tcp_connections_closed_total{%s,response_flags="DENY"}[%s])) > 0`,
				plaintextBy, plain, w, plain, w),
			Describes: "plaintext TCP connections per second into each workload that no policy denied, by source workload"},
		// Only services with a flagged request come back, each flag as the share of the
		// service's requests; thresholds are applied in Go, so one query serves every rule.
		{Name: SignalRequestOutcomes,
			Query: fmt.Sprintf("sum by (%s, %s) (label_replace(rate(istio_requests_total{reporter=~\"%s\",response_flags=~\"(.+,)?(%s)(,.+)?\"}[%s]), \"%s\", \"$1\", \"response_flags\", \"(?:.+,)?(%s)(?:,.+)?\"))\n/ on (%s) group_left\nsum by (%s) (rate(istio_requests_total{reporter=~\"%s\"}[%s]))",
				service, labelOutcome, clientReporters, outcomeFlags, w, labelOutcome, outcomeFlags, service, service, clientReporters, w),
			Describes: "share of each destination service's requests (client sidecars and waypoints) that exhausted retries (URX), timed out (UT), overflowed (UO) or found no healthy upstream (UH)"},
		// Retries over upstream requests per service where any are retried, active ejections per
		// cluster, and how many outbound clusters export stats at all: none means Istio's default
		// stats, without proxyStatsMatcher.
		{Name: SignalEnvoyStats,
			Query: strings.Join([]string{
				tag(fmt.Sprintf(`(sum by (%s) (%s) / sum by (%s) (%s)) > 0`,
					labelServiceHost, byHost(fmt.Sprintf("rate(%s[%s])", outbound("envoy_cluster_upstream_rq_retry"), w)),
					labelServiceHost, byHost(fmt.Sprintf("rate(%s[%s])", outbound("envoy_cluster_upstream_rq_total"), w))), labelStat, statRetryRatio),
				tag(fmt.Sprintf(`max by (%s, cluster_name) (%s) > 0`, labelServiceHost, byHost(outbound("envoy_cluster_outlier_detection_ejections_active"))), labelStat, statEjections),
				tag(fmt.Sprintf(`count(%s)`, outbound("envoy_cluster_upstream_rq_total")), labelStat, statClusters),
			}, "\nor\n"),
			Describes: "Envoy retries / upstream requests per destination service, hosts ejected by outlier detection per outbound cluster, and the number of outbound clusters exporting stats"},
		{Name: SignalTelemetryPresence, Query: presence("istio_requests_total") + "\nor\n" + presence("istio_tcp_connections_opened_total"),
			Describes: "namespaces with any request or TCP series reported by a destination proxy in the window"},
		// The costliest query of a cycle (one row per caller, service and server) answers a
		// question that changes slowly: which call chains exist. Its rates are over the whole
		// window anyway, so it is asked once per window, not every cycle.
		{Name: SignalCallChains, Query: graph.TopologyQuery(s.Window, graph.ClusterLabels(s.ClusterLabels)).Query,
			Describes: "requests per second per caller workload, service and serving workload: the call chains retry amplification follows (asked once per window)",
			Refresh:   s.Window},
	}
}

// EnvoyStats says whether the clients export Envoy's cluster stats.
type EnvoyStats struct {
	// OutboundClusters is the number of outbound clusters with stats; 0: none are exported.
	OutboundClusters int `json:"outboundClusters"`
	// Note says what the checker does without them and how to turn them on; empty when exported.
	Note string `json:"note,omitempty"`
}

// envoyStatsOf reads the envoy_cluster_stats answer's count of outbound clusters.
func envoyStatsOf(v model.Vector) *EnvoyStats {
	for _, s := range v {
		if labelValue(s.Metric, labelStat) == statClusters && s.Value > 0 {
			return &EnvoyStats{OutboundClusters: int(s.Value)}
		}
	}
	return &EnvoyStats{Note: graph.EnvoyStatsHint}
}

// GeneratorURL links to a query in the Prometheus UI, as Prometheus's own alerts do
// (util/strutil.TableLinkForExpression).
func GeneratorURL(base, query string) string {
	if base == "" {
		return ""
	}
	return strings.TrimRight(base, "/") + "/graph?g0.expr=" + url.QueryEscape(query) + "&g0.tab=1"
}

// envoyCluster is an Envoy outbound cluster name taken apart.
type envoyCluster struct {
	Port, Subset, Host string
}

// parseCluster reads outbound|PORT|SUBSET|HOST; ok is false for any other cluster.
func parseCluster(name string) (envoyCluster, bool) {
	parts := strings.SplitN(name, "|", 4)
	if len(parts) != 4 || parts[0] != "outbound" || parts[3] == "" {
		return envoyCluster{}, false
	}
	return envoyCluster{Port: parts[1], Subset: parts[2], Host: parts[3]}, true
}
