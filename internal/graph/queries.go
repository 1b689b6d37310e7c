package graph

import (
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// Query names.
const (
	QueryRequests  = "graph_requests"
	QueryErrors    = "graph_errors"
	QuerySecurity  = "graph_security"
	QueryTCP       = "graph_tcp"
	QueryCallP50   = "graph_call_p50"
	QueryCallP99   = "graph_call_p99"
	QueryServeP50  = "graph_serve_p50"
	QueryServeP99  = "graph_serve_p99"
	QueryTopology  = "call_chains"
	QueryEjections = "graph_ejections"
	QueryOverflow  = "graph_overflow"
	flowLabels     = `reporter, source_cluster, source_workload_namespace, source_workload, destination_cluster, destination_service, destination_service_name, destination_service_namespace, destination_workload_namespace, destination_workload`
	callLabels     = `reporter, source_cluster, source_workload_namespace, source_workload, destination_cluster, destination_service, destination_service_name, destination_service_namespace`
	serveLabels    = `reporter, destination_cluster, destination_service, destination_service_name, destination_service_namespace, destination_workload_namespace, destination_workload`
	durationMetric = "istio_request_duration_milliseconds_bucket"
)

// ClusterLabels name the labels of a series' source and destination cluster in a multi-cluster
// mesh; empty names are Istio's, source_cluster and destination_cluster.
type ClusterLabels struct {
	Source, Destination string
}

// withDefaults fills in Istio's names.
func (c ClusterLabels) withDefaults() ClusterLabels {
	if c.Source == "" {
		c.Source = "source_cluster"
	}
	if c.Destination == "" {
		c.Destination = "destination_cluster"
	}
	return c
}

// in writes a by-clause of Istio's label names with the cluster labels c names.
func (c ClusterLabels) in(by string) string {
	c = c.withDefaults()
	return strings.NewReplacer("source_cluster", c.Source, "destination_cluster", c.Destination).Replace(by)
}

// Query is one PromQL query of the graph.
type Query struct {
	Name, Query, Describes string
}

// Queries are the graph's queries over window: one per figure, whatever the size of the mesh.
func Queries(window time.Duration, clusters ClusterLabels) []Query {
	w := model.Duration(window).String()
	flowLabels, callLabels, serveLabels := clusters.in(flowLabels), clusters.in(callLabels), clusters.in(serveLabels)
	quantile := func(q float64, by string) string {
		return fmt.Sprintf(`histogram_quantile(%g, sum by (%s, le) (rate(%s[%s])))`, q, by, durationMetric, w)
	}
	return []Query{
		{QueryRequests, fmt.Sprintf(`sum by (%s, request_protocol) (rate(istio_requests_total[%s]))`, flowLabels, w),
			"requests per second per caller, service, serving workload, reporter and protocol"},
		// gRPC reports most failures as HTTP 200 with a non-OK grpc-status: both count, whatever
		// request_protocol says (gRPC-Web is reported as http).
		{QueryErrors, fmt.Sprintf(`sum by (%s) (rate(istio_requests_total{response_code=~"5.."}[%s]) or rate(istio_requests_total{response_code!~"5..",grpc_response_status!~"0|"}[%s]))`, flowLabels, w, w),
			"failed requests per second (HTTP 5xx, gRPC status other than OK)"},
		{QuerySecurity, fmt.Sprintf(`sum by (%s, connection_security_policy) (rate(istio_requests_total{reporter="destination"}[%s]))`, flowLabels, w),
			"requests per second by connection security, as the destination proxy reports it"},
		{QueryTCP, fmt.Sprintf(`sum by (%s, connection_security_policy) (rate(istio_tcp_connections_opened_total[%s]))`, flowLabels, w),
			"TCP connections per second by reporter and connection security"},
		{QueryCallP50, quantile(0.5, callLabels), "median request duration per caller and service"},
		{QueryCallP99, quantile(0.99, callLabels), "99th percentile request duration per caller and service"},
		{QueryServeP50, quantile(0.5, serveLabels), "median request duration per service and serving workload"},
		{QueryServeP99, quantile(0.99, serveLabels), "99th percentile request duration per service and serving workload"},
		// Envoy's cluster stats name the service only in cluster_name (outbound|PORT|SUBSET|HOST).
		{QueryEjections, fmt.Sprintf(`max by (service_host) (%s)`, byHost(outbound("envoy_cluster_outlier_detection_ejections_active"))),
			"endpoints outlier detection holds ejected per service, the most any client sees"},
		{QueryOverflow, fmt.Sprintf(`sum by (service_host) (%s)`, byHost(fmt.Sprintf("rate(%s[%s])", outbound("envoy_cluster_upstream_rq_pending_overflow"), w))),
			"requests per second the connection pool refused (overflow) per service"},
	}
}

// EnvoyStatsHint says what is missing when no client exports Envoy's cluster stats, and the
// setting that turns them on.
const EnvoyStatsHint = "Envoy's per-cluster stats (retries, outlier ejections, overflows) of outbound|PORT|SUBSET|HOST clusters are not " +
	"exported: Istio's proxies only export them when proxyStatsMatcher asks for them (and meshConfig.outboundClusterStatName, if set, " +
	"renames them past recognition). Until then retries are judged by the URX response flag and open circuits by UO and UH in " +
	"istio_requests_total. To export them, set meshConfig.defaultConfig.proxyStatsMatcher (or the proxy.istio.io/config annotation of the clients) " +
	`to inclusionRegexps: [".*upstream_rq_retry$", ".*upstream_rq_total$", ".*upstream_rq_pending_overflow$", ".*outlier_detection.*"].`

// outbound selects an Envoy cluster stat's service-to-service clusters.
func outbound(metric string) string { return metric + `{cluster_name=~"outbound\\|.+"}` }

// byHost labels an Envoy cluster stat with the service host of its cluster_name.
func byHost(expr string) string {
	return fmt.Sprintf(`label_replace(%s, "service_host", "$1", "cluster_name", "outbound\\|[^|]*\\|[^|]*\\|(.+)")`, expr)
}

// TopologyQuery is the one query retry amplification needs: requests (or TCP connections) per
// second per flow, the larger of the two proxies' counts, so that a caller or a server without a
// sidecar still shows. Build reads its answer as the callers' view.
func TopologyQuery(window time.Duration, clusters ClusterLabels) Query {
	w := model.Duration(window).String()
	flowLabels := clusters.in(flowLabels)
	by := strings.ReplaceAll(flowLabels, "reporter, ", "") + ", request_protocol"
	perReporter := func(metric string) string {
		return fmt.Sprintf(`sum by (%s, request_protocol) (rate(%s[%s]))`, flowLabels, metric, w)
	}
	return Query{QueryTopology, fmt.Sprintf(`max by (%s) (%s or %s)`, by, perReporter("istio_requests_total"), perReporter("istio_tcp_connections_opened_total")),
		"requests (TCP connections) per second per caller, service, serving workload and protocol"}
}
