package checks

import (
	"fmt"
	"net/url"
	"strconv"
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
	SignalEnvoyRetries      = "envoy_retries"
	SignalURXRetries        = "urx_retries"
	SignalUpstreamTimeouts  = "upstream_timeouts"
	SignalOutlierEjections  = "outlier_ejections"
	SignalTelemetryPresence = "telemetry_presence"
)

// Signal is one PromQL query of a cycle.
type Signal struct {
	Name string
	// Query is the PromQL expression, window and thresholds filled in.
	Query string
	// Describes says what the query measures, for documentation and output.
	Describes string
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

// flagRegexp matches response_flags holding flag among its comma-separated flags ("URX" alone
// or "UF,URX").
func flagRegexp(flag string) string { return `(.+,)?` + flag + `(,.+)?` }

// promDuration writes d the way PromQL reads it ("5m", "30s", "1m30s").
func promDuration(d time.Duration) string { return model.Duration(d).String() }

// promFloat writes a threshold without exponent noise.
func promFloat(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// Signals returns the queries of one cycle for the settings, in a stable order.
func Signals(s Settings) []Signal {
	w := promDuration(s.Window)
	// Identity of a destination service in Istio's request metrics, as the client reports it.
	const dstService = `destination_service, destination_service_name, destination_service_namespace`
	// Plaintext into a workload, as the server reports it: connection_security_policy is only
	// meaningful on reporter="destination" (the client side says "unknown").
	const plaintextBy = `destination_workload_namespace, destination_workload, destination_app, destination_version, source_workload_namespace, source_workload`
	plaintext := func(metric string) string {
		return fmt.Sprintf(`sum by (%s) (rate(%s{reporter="destination",connection_security_policy!="mutual_tls"}[%s])) > 0`,
			plaintextBy, metric, w)
	}
	// The Envoy retry ratio per destination service: the host is parsed out of cluster_name (the
	// stats are labelled with the client's namespace and pod, never the destination's), and all
	// ports and subsets of a service add up before dividing.
	envoyByHost := func(metric string) string {
		return fmt.Sprintf(`sum by (service_host) (label_replace(rate(%s{cluster_name=~"%s"}[%s]), "service_host", "$1", "cluster_name", "%s"))`,
			metric, outboundCluster, w, outboundHost)
	}
	// Share of the client-side requests (reporter="source": UT and URX are only seen there) to a
	// service that carry a response flag.
	flagShare := func(flag string) string {
		return fmt.Sprintf(`sum by (%s) (rate(istio_requests_total{reporter="source",response_flags=~"%s"}[%s]))`+
			"\n/\n"+`sum by (%s) (rate(istio_requests_total{reporter="source"}[%s]))`,
			dstService, flagRegexp(flag), w, dstService, w)
	}
	// A service whose clients export Envoy's cluster stats at all (even with no retries) is
	// judged by them; only the others fall back to URX.
	exported := fmt.Sprintf(`label_replace(sum by (cluster_name) (rate(envoy_cluster_upstream_rq_total{cluster_name=~"%s"}[%s])), "destination_service", "$1", "cluster_name", "%s")`,
		outboundCluster, w, outboundHost)
	presence := func(metric string) string {
		return fmt.Sprintf(`count by (destination_workload_namespace) (count_over_time(%s{reporter="destination"}[%s]))`, metric, w)
	}
	return []Signal{
		{Name: SignalPlaintextRequests, Query: plaintext("istio_requests_total"),
			Describes: "plaintext requests per second into each workload, by source workload"},
		{Name: SignalPlaintextTCP, Query: plaintext("istio_tcp_connections_opened_total"),
			Describes: "plaintext TCP connections per second into each workload, by source workload"},
		{Name: SignalEnvoyRetries, Query: fmt.Sprintf("(\n%s\n/\n%s\n) > %s",
			envoyByHost("envoy_cluster_upstream_rq_retry"), envoyByHost("envoy_cluster_upstream_rq_total"), promFloat(s.RetryRatio)),
			Describes: "Envoy retries / upstream requests per destination service, above the retry threshold"},
		{Name: SignalURXRetries, Query: fmt.Sprintf("(\n%s\nunless on (destination_service)\n%s\n) > %s",
			flagShare("URX"), exported, promFloat(s.RetryRatio)),
			Describes: "share of requests failing with exhausted retries (URX) per destination service without Envoy stats, above the retry threshold"},
		{Name: SignalUpstreamTimeouts, Query: fmt.Sprintf("(\n%s\n) > %s", flagShare("UT"), promFloat(s.UpstreamTimeoutRatio)),
			Describes: "share of requests timed out upstream (UT) per destination service, above the timeout threshold"},
		{Name: SignalOutlierEjections, Query: fmt.Sprintf(`max by (cluster_name) (envoy_cluster_outlier_detection_ejections_active{cluster_name=~"%s"}) > 0`, outboundCluster),
			Describes: "hosts ejected by outlier detection per outbound cluster (the most any client sees)"},
		{Name: SignalTelemetryPresence, Query: presence("istio_requests_total") + "\nor\n" + presence("istio_tcp_connections_opened_total"),
			Describes: "namespaces with any request or TCP series reported by a destination proxy in the window"},
		{Name: SignalCallChains, Query: graph.TopologyQuery(s.Window).Query,
			Describes: "requests per second per caller workload, service and serving workload: the call chains retry amplification follows"},
	}
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
