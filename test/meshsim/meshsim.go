// Package meshsim is a synthetic Istio mesh for testing meshguard's runtime checker. It produces
// the metrics Prometheus would scrape from a real mesh — Istio's standard request and TCP metrics
// with their real label sets, and the Envoy cluster stats istio-proxy exports — from a small
// scenario model: a set of Flows (who calls whom, how often, over mTLS or not, how many errors,
// timeouts and retries).
//
// Two outputs share that model:
//   - Exporter, an http.Handler serving /metrics in the Prometheus text format. Counters advance
//     with real (or injected) time from each flow's rate, computed at scrape time, so a live
//     Prometheus sees rising counters. Flows can be added, changed and removed while it runs.
//   - WriteOpenMetrics, a static OpenMetrics rendering of a flow set over a time range for
//     `promtool tsdb create-blocks-from openmetrics`, for deterministic query results.
//
// The label sets are real Istio's: they come from the expositions in shapes/ (sidecars, ambient
// ztunnel, waypoints, gRPC, two clusters, renamed cluster stats, PassthroughCluster calls), each
// naming its source, and the package's tests check that meshsim writes every series of each
// fixture for the same scenario.
//
// Istio facts the model respects (the checker's queries depend on them):
//   - connection_security_policy is "mutual_tls" or "none" on reporter="destination" series and
//     "unknown" on reporter="source" series.
//   - Upstream timeouts (UT) and exhausted retries (URX) are response_flags on the client's
//     (reporter="source") series; the server side of a timed-out request records a downstream
//     disconnect: response_code "0", response_flags "DC".
//   - A client without a sidecar produces no source-side series and no Envoy stats, and the
//     destination sees it as source_workload "unknown" over plaintext.
//   - Ambient workloads are reported by ztunnel (TCP only; connection_security_policy
//     "mutual_tls" or "unknown"); a connection a STRICT policy refuses is opened, then closed
//     with response_flags "DENY". Their HTTP metrics come from a waypoint, reporter="waypoint".
//   - gRPC failures are response_code "200" with grpc_response_status other than "0".
//   - Overflows (UO) and no healthy upstream (UH) are seen by the calling side only.
//   - A PassthroughCluster call names the host and nothing else: service name
//     "PassthroughCluster", namespace and workload "unknown".
//   - Envoy's cluster stats carry the namespace and pod of the proxy that exports them (the
//     client); the destination is only in cluster_name (outbound|PORT|SUBSET|HOST). Every proxy
//     also exports noise clusters that are not destination services, with deliberately non-zero
//     retries, so a checker that forgets to keep only outbound| clusters raises false alerts:
//     xds-grpc (0.2 rq/s, 0.1 retries/s), PassthroughCluster (0.5 rq/s, 0.05 retries/s),
//     BlackHoleCluster (0.05 rq/s), and on a destination pod inbound|PORT|| (every attempt).
//
// Counter values are whole numbers: each underlying series cell counts floor(rate × elapsed), so
// istio_requests_total equals its histogram's _count and tests can predict exact values.
package meshsim

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Protocol is a flow's request_protocol.
type Protocol string

// Protocols Istio reports. TCP flows produce istio_tcp_connections_opened_total instead of
// istio_requests_total.
const (
	HTTP Protocol = "http"
	GRPC Protocol = "grpc"
	TCP  Protocol = "tcp"
)

// Metric names, as Istio and istio-proxy export them.
const (
	MetricRequests        = "istio_requests_total"
	MetricRequestDuration = "istio_request_duration_milliseconds"
	MetricTCPOpened       = "istio_tcp_connections_opened_total"
	MetricTCPClosed       = "istio_tcp_connections_closed_total"
	MetricUpstreamRq      = "envoy_cluster_upstream_rq_total"
	MetricUpstreamRetry   = "envoy_cluster_upstream_rq_retry"
	MetricEjectionsActive = "envoy_cluster_outlier_detection_ejections_active"
)

const (
	unknown        = "unknown"    // Istio's value for a label it cannot know
	defaultCluster = "Kubernetes" // Istio's default cluster ID
	defaultPort    = 9080
	defaultLatency = 10 * time.Millisecond
	defaultTimeout = time.Second
	defaultVersion = "v1"
	// countEpsilon absorbs float error in rate × elapsed, so 0.29/s over 100 s counts 29, not 28.
	countEpsilon = 1e-9
	// Noise cluster rates per proxy (see the package comment).
	noiseXDSRate            = 0.2
	noiseXDSRetryRate       = 0.1
	noisePassthroughRate    = 0.5
	noisePassthroughRetries = 0.05
	noiseBlackHoleRate      = 0.05
)

// RequestLabelNames returns the labels of istio_requests_total and
// istio_request_duration_milliseconds (plus le on buckets), as the sidecar fixture has them.
func RequestLabelNames() []string { return append([]string(nil), sidecarLabels()[MetricRequests]...) }

// TCPLabelNames returns the labels of istio_tcp_connections_opened_total and _closed_total (the
// request labels without response_code and grpc_response_status), as the sidecar fixture has them.
func TCPLabelNames() []string { return append([]string(nil), sidecarLabels()[MetricTCPOpened]...) }

// EnvoyClusterLabelNames returns the labels of the envoy_cluster_* stats as scraped from istio-proxy.
func EnvoyClusterLabelNames() []string { return []string{"namespace", "pod", "cluster_name"} }

// DurationBuckets returns Istio's default istio_request_duration_milliseconds bucket bounds.
func DurationBuckets() []float64 {
	return []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
		300000, 600000, 1800000, 3600000}
}

// Workload is one side of a flow: a Kubernetes workload with (usually) an istio-proxy sidecar.
type Workload struct {
	Name      string // workload name, e.g. "reviews-v1" (required)
	Namespace string // required
	App       string // app label; default Name
	Version   string // version label; default "v1"
	// ServiceAccount makes the SPIFFE principal spiffe://cluster.local/ns/NS/sa/SA; default App.
	ServiceAccount string
	// Pod is the pod name Envoy stats are labelled with; default a stable name derived from
	// Namespace and Name in Kubernetes' <workload>-<hash>-<suffix> shape.
	Pod string
	// Cluster is the Istio cluster ID; default "Kubernetes".
	Cluster string
	// NoSidecar models a workload outside the mesh: it reports nothing, and its peer sees it
	// as "unknown" over plaintext.
	NoSidecar bool
	// Ambient models a workload in ambient mode: its node's ztunnel reports its TCP connections
	// (istio_tcp_*, reporter source or destination) and it exports no Envoy stats; HTTP metrics
	// come from a waypoint (Flow.Waypoint).
	Ambient bool
}

// sidecar tells whether the workload runs an istio-proxy sidecar.
func (w Workload) sidecar() bool { return !w.NoSidecar && !w.Ambient }

// inMesh tells whether a proxy (sidecar or ztunnel) carries the workload's traffic.
func (w Workload) inMesh() bool { return !w.NoSidecar }

// Flow is traffic from one workload to one destination service.
type Flow struct {
	// Name identifies the flow for Set, Update and Remove; default Key()'s derived form.
	Name        string
	Source      Workload
	Destination Workload
	// Service is the destination service's short name; default Destination.App (or Name).
	Service string
	// ServiceNamespace is the destination service's namespace; default Destination.Namespace.
	ServiceNamespace string
	// Port is the service port in the outbound cluster name; default 9080.
	Port int
	// Subset is the DestinationRule subset in the outbound cluster name ("" for none).
	Subset string
	// Protocol is http (default), grpc or tcp.
	Protocol Protocol
	// Rate is requests per second sent by the client (connections per second for TCP).
	Rate float64
	// Plaintext sends the traffic without mTLS: the destination reports
	// connection_security_policy="none" and no principals. Implied when either side has no sidecar.
	Plaintext bool
	// ErrorShare is the share of requests answered 503 by the server.
	ErrorShare float64
	// TimeoutShare is the share of requests that time out upstream: UT/504 on the source side,
	// DC/0 on the destination side.
	TimeoutShare float64
	// URXShare is the share of requests failing with exhausted retries (URX/503 on the source
	// side), the signal the checker falls back to without Envoy stats.
	URXShare float64
	// RetryShare is retries / upstream requests as Envoy counts them for the outbound cluster
	// (envoy_cluster_upstream_rq_retry / envoy_cluster_upstream_rq_total). The retried attempts
	// also reach the server, which reports them as 503s. Must be < 1.
	RetryShare float64
	// EjectionsActive is envoy_cluster_outlier_detection_ejections_active for the client's
	// outbound cluster.
	EjectionsActive int
	// Latency is the duration recorded for answered requests; default 10ms.
	Latency time.Duration
	// Timeout is the duration recorded for timed-out requests; default 1s.
	Timeout time.Duration
	// OmitEnvoyStats models proxies that do not export envoy_cluster_* stats (Istio's default
	// without proxyStatsMatcher). A pod exports them unless every flow it takes part in omits them.
	OmitEnvoyStats bool
	// OverflowShare is the share of requests the client's circuit breaker refuses (UO/503);
	// NoHealthyShare the share that finds no healthy upstream host (UH/503). Only the client
	// side (sidecar or waypoint) sees them: they never reach the server.
	OverflowShare, NoHealthyShare float64
	// Waypoint routes the flow's requests through the destination's waypoint proxy (ambient):
	// the waypoint reports them with reporter="waypoint".
	Waypoint bool
	// Denied models a plaintext client refused by a STRICT policy at an ambient destination:
	// its ztunnel counts every connection opened, then closed with response_flags="DENY".
	Denied bool
	// ExternalHost makes the destination a host outside the mesh reached through
	// PassthroughCluster (Destination must have NoSidecar): Istio knows no service name,
	// namespace or workload for it.
	ExternalHost string
	// ClusterStatName is the cluster_name of the client's Envoy stats when
	// meshConfig.outboundClusterStatName renames them; default outbound|PORT|SUBSET|HOST.
	ClusterStatName string
}

func (w Workload) withDefaults() Workload {
	if w.App == "" {
		w.App = w.Name
	}
	if w.Version == "" {
		w.Version = defaultVersion
	}
	if w.ServiceAccount == "" {
		w.ServiceAccount = w.App
	}
	if w.Pod == "" {
		w.Pod = podName(w.Namespace, w.Name)
	}
	if w.Cluster == "" {
		w.Cluster = defaultCluster
	}
	return w
}

// Principal is the workload's SPIFFE identity as Istio reports it.
func (w Workload) Principal() string {
	w = w.withDefaults()
	return "spiffe://cluster.local/ns/" + w.Namespace + "/sa/" + w.ServiceAccount
}

// PodName is the pod name Envoy stats are labelled with (Pod or the derived default).
func (w Workload) PodName() string { return w.withDefaults().Pod }

// podName derives a stable pod name shaped like a Deployment's: <name>-<10 hex>-<5 hex>.
func podName(namespace, name string) string {
	// sha256 rather than FNV: similar names (reviews-v2, reviews-v3) get visibly different hashes.
	sum := fmt.Sprintf("%x", sha256.Sum256([]byte(namespace+"/"+name)))
	return name + "-" + sum[:10] + "-" + sum[10:15]
}

func (f Flow) withDefaults() Flow {
	f.Source = f.Source.withDefaults()
	f.Destination = f.Destination.withDefaults()
	if f.Service == "" {
		f.Service = f.Destination.App
	}
	if f.ServiceNamespace == "" {
		f.ServiceNamespace = f.Destination.Namespace
	}
	if f.Port == 0 {
		f.Port = defaultPort
	}
	if f.Protocol == "" {
		f.Protocol = HTTP
	}
	if f.Latency == 0 {
		f.Latency = defaultLatency
	}
	if f.Timeout == 0 {
		f.Timeout = defaultTimeout
	}
	if f.Name == "" {
		f.Name = f.derivedKey()
	}
	return f
}

// Key is the flow's identity: Name, or "SRC_NS/SRC -> DST_NS/DST (SERVICE.SVC_NS:PORT/PROTOCOL)".
func (f Flow) Key() string { return f.withDefaults().Name }

func (f Flow) derivedKey() string {
	return fmt.Sprintf("%s/%s -> %s/%s (%s.%s:%d/%s)", f.Source.Namespace, f.Source.Name,
		f.Destination.Namespace, f.Destination.Name, f.Service, f.ServiceNamespace, f.Port, f.Protocol)
}

// ServiceHost is the destination service's FQDN, the destination_service label (the external
// host for a PassthroughCluster flow).
func (f Flow) ServiceHost() string {
	f = f.withDefaults()
	if f.ExternalHost != "" {
		return f.ExternalHost
	}
	return f.Service + "." + f.ServiceNamespace + ".svc.cluster.local"
}

// ClusterName is the cluster_name of the client's Envoy stats for this flow:
// outbound|PORT|SUBSET|HOST, or ClusterStatName.
func (f Flow) ClusterName() string {
	f = f.withDefaults()
	if f.ClusterStatName != "" {
		return f.ClusterStatName
	}
	return fmt.Sprintf("outbound|%d|%s|%s", f.Port, f.Subset, f.ServiceHost())
}

// MTLS reports whether the flow is mutual TLS: both sides are in the mesh (sidecar or ambient)
// and it is not Plaintext.
func (f Flow) MTLS() bool {
	return !f.Plaintext && f.Source.inMesh() && f.Destination.inMesh() && f.ExternalHost == ""
}

// Validate reports what is wrong with the flow, if anything.
func (f Flow) Validate() error {
	var errs []error
	if f.Source.Name == "" || f.Source.Namespace == "" {
		errs = append(errs, errors.New("source name and namespace are required"))
	}
	if f.Destination.Name == "" || f.Destination.Namespace == "" {
		errs = append(errs, errors.New("destination name and namespace are required"))
	}
	if f.Source.NoSidecar && f.Destination.NoSidecar {
		errs = append(errs, errors.New("neither side has a sidecar, so Istio would see nothing"))
	}
	switch f.Protocol {
	case "", HTTP, GRPC, TCP:
	default:
		errs = append(errs, fmt.Errorf("protocol %q is not http, grpc or tcp", f.Protocol))
	}
	if f.Rate < 0 || math.IsNaN(f.Rate) || math.IsInf(f.Rate, 0) {
		errs = append(errs, fmt.Errorf("rate %v must be a finite number >= 0", f.Rate))
	}
	for _, s := range []struct {
		name string
		v    float64
	}{{"error share", f.ErrorShare}, {"timeout share", f.TimeoutShare}, {"URX share", f.URXShare}, {"retry share", f.RetryShare},
		{"overflow share", f.OverflowShare}, {"no-healthy share", f.NoHealthyShare}} {
		if s.v < 0 || s.v > 1 || math.IsNaN(s.v) {
			errs = append(errs, fmt.Errorf("%s %v is outside [0, 1]", s.name, s.v))
		}
	}
	if sum := f.ErrorShare + f.TimeoutShare + f.URXShare + f.OverflowShare + f.NoHealthyShare; sum > 1+countEpsilon {
		errs = append(errs, fmt.Errorf("error, timeout, URX, overflow and no-healthy shares add up to %v > 1", sum))
	}
	if f.Waypoint && !f.Destination.Ambient {
		errs = append(errs, errors.New("a waypoint serves ambient destinations only"))
	}
	if f.Denied && (!f.Destination.Ambient || f.MTLS()) {
		errs = append(errs, errors.New("a denied flow is plaintext into an ambient destination (ztunnel reports the denial)"))
	}
	if f.ExternalHost != "" && !f.Destination.NoSidecar {
		errs = append(errs, errors.New("an external host has no sidecar: set Destination.NoSidecar"))
	}
	if f.RetryShare >= 1 {
		errs = append(errs, fmt.Errorf("retry share %v must be < 1 (retries are a share of all upstream attempts)", f.RetryShare))
	}
	if f.Protocol == TCP && (f.ErrorShare > 0 || f.TimeoutShare > 0 || f.URXShare > 0 || f.RetryShare > 0 || f.OverflowShare > 0 || f.NoHealthyShare > 0) {
		errs = append(errs, errors.New("TCP flows have no requests to fail or retry: error, timeout, URX and retry shares must be 0"))
	}
	if f.EjectionsActive < 0 {
		errs = append(errs, fmt.Errorf("ejections %d must be >= 0", f.EjectionsActive))
	}
	if f.Latency < 0 || f.Timeout < 0 || f.Port < 0 || f.Port > 65535 {
		errs = append(errs, errors.New("latency, timeout and port must not be negative (and port <= 65535)"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("flow %q: %w", f.Key(), err)
	}
	return nil
}

// family is one of the exported metric families.
type family int

const (
	famRequests family = iota // istio_requests_total and the duration histogram
	famTCPOpened
	famTCPClosed
	famUpstreamRq
	famUpstreamRetry
	famEjections
)

// contribution is one flow's (or the noise's) share of one series: a rate for counters (with the
// latency its requests are recorded at, for the histogram) or a value for the gauge.
type contribution struct {
	fam       family
	values    []string
	latencyMs float64
	rate      float64
}

// cellKey identifies a cell: the series plus, for requests, the latency it records.
func cellKey(fam family, values []string, latencyMs float64) string {
	return strconv.Itoa(int(fam)) + "\xfe" + strings.Join(values, "\xff") + "\xfe" + strconv.FormatFloat(latencyMs, 'g', -1, 64)
}

func seriesKey(fam family, values []string) string {
	return strconv.Itoa(int(fam)) + "\xfe" + strings.Join(values, "\xff")
}

// model turns a flow set into contributions. Flows must be valid and defaulted.
func model(flows []Flow) []contribution {
	var out []contribution
	add := func(fam family, latencyMs, rate float64, values ...string) {
		// Istio creates a series on the first request with its labels, so a zero rate adds nothing
		// new; a series that existed keeps its value in the exporter's cells.
		if rate > 0 || fam == famEjections {
			out = append(out, contribution{fam: fam, values: values, latencyMs: latencyMs, rate: rate})
		}
	}
	type pod struct{ ns, name string }
	exportsStats := map[pod]bool{}
	var inbound []contribution // per destination pod, added only if the pod exports stats
	var destPods []pod
	for _, f := range flows {
		src, dst := f.Source, f.Destination
		srcPod, dstPod := pod{src.Namespace, src.Pod}, pod{dst.Namespace, dst.Pod}
		// Only sidecars export Envoy's cluster stats; ztunnel has none.
		if !f.OmitEnvoyStats {
			if src.sidecar() {
				exportsStats[srcPod] = true
			}
			if dst.sidecar() {
				exportsStats[dstPod] = true
			}
		} else {
			if _, ok := exportsStats[srcPod]; !ok && src.sidecar() {
				exportsStats[srcPod] = false
			}
			if _, ok := exportsStats[dstPod]; !ok && dst.sidecar() {
				exportsStats[dstPod] = false
			}
		}

		r := f.Rate
		lat := float64(f.Latency) / float64(time.Millisecond)
		timeout := float64(f.Timeout) / float64(time.Millisecond)
		mtls := f.MTLS()
		if f.Denied {
			// ztunnel opens, then refuses: nothing else of the flow exists.
			add(famTCPOpened, 0, r, f.tcpLabels("destination", mtls, "-")...)
			add(famTCPClosed, 0, r, f.tcpLabels("destination", mtls, "DENY")...)
			continue
		}
		// ztunnel reports the connections of ambient workloads, HTTP ones included (one
		// connection per request here), as opened and, once done, closed.
		if src.Ambient {
			add(famTCPOpened, 0, r, f.tcpLabels("source", mtls, "-")...)
			add(famTCPClosed, 0, r, f.tcpLabels("source", mtls, "-")...)
		}
		if dst.Ambient {
			add(famTCPOpened, 0, r, f.tcpLabels("destination", mtls, "-")...)
			add(famTCPClosed, 0, r, f.tcpLabels("destination", mtls, "-")...)
		}
		if f.Protocol == TCP {
			if src.sidecar() {
				add(famTCPOpened, 0, r, f.tcpLabels("source", mtls, "-")...)
			}
			if dst.sidecar() {
				add(famTCPOpened, 0, r, f.tcpLabels("destination", mtls, "-")...)
			}
		} else {
			ok := r * (1 - f.ErrorShare - f.TimeoutShare - f.URXShare - f.OverflowShare - f.NoHealthyShare)
			if ok < 0 {
				ok = 0
			}
			// Each retry is one more upstream attempt: attempts = r/(1-q), retries = attempts·q.
			attempts := r / (1 - f.RetryShare)
			retries := attempts - r
			codes := codesFor(f.Protocol)
			// The calling side sees every outcome: the client's sidecar, and the waypoint.
			var callers []string
			if src.sidecar() {
				callers = append(callers, "source")
			}
			if f.Waypoint {
				callers = append(callers, "waypoint")
			}
			for _, rep := range callers {
				add(famRequests, lat, ok, f.requestLabels(rep, mtls, codes.ok, "-")...)
				add(famRequests, lat, r*f.ErrorShare, f.requestLabels(rep, mtls, codes.err, "-")...)
				add(famRequests, timeout, r*f.TimeoutShare, f.requestLabels(rep, mtls, codes.timeout, "UT")...)
				add(famRequests, lat, r*f.URXShare, f.requestLabels(rep, mtls, codes.err, "URX")...)
				add(famRequests, 0, r*f.OverflowShare, f.requestLabels(rep, mtls, codes.err, "UO")...)
				add(famRequests, 0, r*f.NoHealthyShare, f.requestLabels(rep, mtls, codes.err, "UH")...)
			}
			if dst.sidecar() {
				add(famRequests, lat, ok, f.requestLabels("destination", mtls, codes.ok, "-")...)
				add(famRequests, lat, r*(f.ErrorShare+f.URXShare)+retries, f.requestLabels("destination", mtls, codes.err, "-")...)
				add(famRequests, timeout, r*f.TimeoutShare, f.requestLabels("destination", mtls, codes.disconnect, "DC")...)
			}
			if src.sidecar() && !f.OmitEnvoyStats && f.ExternalHost == "" {
				cluster := f.ClusterName()
				add(famUpstreamRq, 0, attempts, src.Namespace, src.Pod, cluster)
				add(famUpstreamRetry, 0, retries, src.Namespace, src.Pod, cluster)
			}
			if dst.sidecar() {
				inbound = append(inbound, contribution{fam: famUpstreamRq, values: []string{dst.Namespace, dst.Pod,
					fmt.Sprintf("inbound|%d||", f.Port)}, rate: attempts})
				destPods = append(destPods, dstPod)
			}
		}
		if src.sidecar() && !f.OmitEnvoyStats && f.ExternalHost == "" {
			add(famEjections, 0, float64(f.EjectionsActive), src.Namespace, src.Pod, f.ClusterName())
		}
	}
	for i, c := range inbound {
		if exportsStats[destPods[i]] && c.rate > 0 {
			out = append(out, c)
		}
	}
	pods := make([]pod, 0, len(exportsStats))
	for p, ok := range exportsStats {
		if ok {
			pods = append(pods, p)
		}
	}
	sort.Slice(pods, func(i, j int) bool {
		if pods[i].ns != pods[j].ns {
			return pods[i].ns < pods[j].ns
		}
		return pods[i].name < pods[j].name
	})
	for _, p := range pods {
		add(famUpstreamRq, 0, noiseXDSRate, p.ns, p.name, "xds-grpc")
		add(famUpstreamRetry, 0, noiseXDSRetryRate, p.ns, p.name, "xds-grpc")
		add(famUpstreamRq, 0, noisePassthroughRate, p.ns, p.name, "PassthroughCluster")
		add(famUpstreamRetry, 0, noisePassthroughRetries, p.ns, p.name, "PassthroughCluster")
		add(famUpstreamRq, 0, noiseBlackHoleRate, p.ns, p.name, "BlackHoleCluster")
		add(famEjections, 0, 0, p.ns, p.name, "xds-grpc")
		add(famEjections, 0, 0, p.ns, p.name, "PassthroughCluster")
		add(famEjections, 0, 0, p.ns, p.name, "BlackHoleCluster")
	}
	return out
}

// responseCodes are the (response_code, grpc_response_status) pairs a protocol reports.
type responseCodes struct {
	ok, err, timeout, disconnect [2]string
}

// codesFor gives a protocol's codes. gRPC failures are HTTP 200 with a grpc-status other than
// 0; Envoy's own replies to gRPC (503, 504) become grpc-status 14, UNAVAILABLE.
func codesFor(p Protocol) responseCodes {
	if p == GRPC {
		return responseCodes{ok: [2]string{"200", "0"}, err: [2]string{"200", "14"}, timeout: [2]string{"200", "14"}, disconnect: [2]string{"0", ""}}
	}
	return responseCodes{ok: [2]string{"200", ""}, err: [2]string{"503", ""}, timeout: [2]string{"504", ""}, disconnect: [2]string{"0", ""}}
}

// peerLabels returns the source_*, destination_* and service label values of the flow as its
// proxies report them: "unknown" for what they cannot know.
func (f Flow) peerLabels(mtls bool) map[string]string {
	src, dst := f.Source, f.Destination
	m := map[string]string{}
	side := func(prefix string, w Workload, principal string) {
		m[prefix+"_workload"], m[prefix+"_workload_namespace"], m[prefix+"_principal"] = w.Name, w.Namespace, principal
		m[prefix+"_app"], m[prefix+"_version"], m[prefix+"_cluster"] = w.App, w.Version, w.Cluster
		m[prefix+"_canonical_service"], m[prefix+"_canonical_revision"] = w.App, w.Version
		// Istio's canonical revision of a workload without a version is "latest".
		if m[prefix+"_canonical_revision"] == "" {
			m[prefix+"_canonical_revision"] = "latest"
		}
		// Outside the mesh a workload is unknown, except to an ambient destination's ztunnel,
		// which knows every pod by its address.
		if !w.inMesh() && !(prefix == "source" && f.Destination.Ambient) {
			for k := range m {
				if strings.HasPrefix(k, prefix+"_") {
					m[k] = unknown
				}
			}
			m[prefix+"_canonical_revision"] = "latest"
		}
	}
	srcPrincipal, dstPrincipal := unknown, unknown
	if mtls {
		srcPrincipal, dstPrincipal = src.Principal(), dst.Principal()
	}
	if dst.Ambient {
		// ztunnel writes the identity of the workload it serves, mTLS or not.
		dstPrincipal = dst.Principal()
	}
	side("source", src, srcPrincipal)
	side("destination", dst, dstPrincipal)
	m["destination_service"], m["destination_service_name"], m["destination_service_namespace"] = f.ServiceHost(), f.Service, f.ServiceNamespace
	if f.ExternalHost != "" {
		m["destination_service_name"], m["destination_service_namespace"] = "PassthroughCluster", unknown
	}
	return m
}

// securityPolicy is connection_security_policy as the reporter writes it: only the server side
// knows (sidecars write "none" for plaintext, ztunnel "unknown"); callers write "unknown",
// except a waypoint, which terminates the client's mTLS.
func (f Flow) securityPolicy(reporter string, mtls bool) string {
	switch {
	case reporter == "source" && !f.Source.Ambient:
		return unknown
	case mtls:
		return "mutual_tls"
	case reporter == "destination" && f.Destination.sidecar():
		return "none"
	default:
		return unknown
	}
}

// ordered writes label values in the order of names.
func ordered(names []string, m map[string]string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		v, ok := m[n]
		if !ok {
			panic("meshsim: no value for label " + n)
		}
		out[i] = v
	}
	return out
}

func (f Flow) requestLabels(reporter string, mtls bool, code [2]string, flags string) []string {
	m := f.peerLabels(mtls)
	m["reporter"], m["request_protocol"], m["response_code"], m["grpc_response_status"] = reporter, string(f.Protocol), code[0], code[1]
	m["response_flags"], m["connection_security_policy"] = flags, f.securityPolicy(reporter, mtls)
	return ordered(RequestLabelNames(), m)
}

func (f Flow) tcpLabels(reporter string, mtls bool, flags string) []string {
	m := f.peerLabels(mtls)
	m["reporter"], m["request_protocol"], m["response_flags"] = reporter, string(TCP), flags
	m["connection_security_policy"] = f.securityPolicy(reporter, mtls)
	return ordered(TCPLabelNames(), m)
}

// prepare validates flows and applies defaults, rejecting duplicate keys.
func prepare(flows []Flow) ([]Flow, error) {
	out := make([]Flow, 0, len(flows))
	seen := make(map[string]bool, len(flows))
	for _, f := range flows {
		if err := f.Validate(); err != nil {
			return nil, err
		}
		f = f.withDefaults()
		if seen[f.Name] {
			return nil, fmt.Errorf("flow %q: defined twice", f.Name)
		}
		seen[f.Name] = true
		out = append(out, f)
	}
	return out, nil
}

// cell is the running count of one contribution key: acc as of the exporter's last advance,
// rising at rate since then. A gauge cell's value is rate.
type cell struct {
	fam       family
	values    []string
	latencyMs float64
	acc       float64
	rate      float64
}

func (c *cell) count(elapsedSeconds float64) float64 {
	return math.Floor(c.acc + c.rate*elapsedSeconds + countEpsilon)
}

// seriesGroup is one exported series and the cells that feed it.
type seriesGroup struct {
	fam    family
	values []string
	cells  []*cell
}

// groupCells groups cells by series, sorted by family and label values for stable output.
func groupCells(cells []*cell) []*seriesGroup {
	byKey := map[string]*seriesGroup{}
	var out []*seriesGroup
	for _, c := range cells {
		k := seriesKey(c.fam, c.values)
		g, ok := byKey[k]
		if !ok {
			g = &seriesGroup{fam: c.fam, values: c.values}
			byKey[k] = g
			out = append(out, g)
		}
		g.cells = append(g.cells, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].fam != out[j].fam {
			return out[i].fam < out[j].fam
		}
		return lessValues(out[i].values, out[j].values)
	})
	return out
}

func lessValues(a, b []string) bool {
	for i := range a {
		if i >= len(b) {
			return false
		}
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}

// sample is one series' values at one instant.
type sample struct {
	value   float64   // counter or gauge value; histogram count
	sum     float64   // histogram sum
	buckets []float64 // cumulative histogram bucket counts per bounds; nil without histograms
}

// at computes the group's sample elapsedSeconds past its cells' acc. bounds are the histogram
// bucket bounds, or nil to skip the histogram.
func (g *seriesGroup) at(elapsedSeconds float64, bounds []float64) sample {
	var s sample
	if g.fam == famRequests && bounds != nil {
		s.buckets = make([]float64, len(bounds))
	}
	for _, c := range g.cells {
		if c.fam == famEjections {
			s.value += c.rate
			continue
		}
		n := c.count(elapsedSeconds)
		s.value += n
		if s.buckets != nil {
			s.sum += n * c.latencyMs
			for i, le := range bounds {
				if c.latencyMs <= le {
					s.buckets[i] += n
				}
			}
		}
	}
	return s
}

// Options configure an Exporter or a rendering.
type Options struct {
	// Clock is the exporter's time source; default time.Now. Tests inject a fake clock to scrape
	// exact values.
	Clock func() time.Time
	// OmitHistograms leaves out istio_request_duration_milliseconds, which is most of the samples
	// (21 per series): useful for scale runs that only need counters.
	OmitHistograms bool
}

// Exporter serves a scenario's metrics at /metrics. Create it with NewExporter; it is safe for
// concurrent use, so a test can change flows while Prometheus scrapes.
type Exporter struct {
	opts     Options
	bounds   []float64 // histogram bucket bounds; nil with OmitHistograms
	registry *prometheus.Registry
	metrics  http.Handler

	mu     sync.Mutex
	flows  map[string]Flow
	cells  map[string]*cell
	groups []*seriesGroup // cells grouped by series; rebuilt when the cell set changes
	at     time.Time      // when cells' acc was last brought up to date
}

// NewExporter returns an Exporter serving flows, with counters starting at zero now.
func NewExporter(opts Options, flows ...Flow) (*Exporter, error) {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	e := &Exporter{
		opts:     opts,
		registry: prometheus.NewRegistry(),
		flows:    map[string]Flow{},
		cells:    map[string]*cell{},
		at:       opts.Clock(),
	}
	if !opts.OmitHistograms {
		e.bounds = DurationBuckets()
	}
	if err := e.registry.Register(newCollector(e)); err != nil {
		return nil, fmt.Errorf("new exporter: register collector: %w", err)
	}
	e.metrics = promhttp.HandlerFor(e.registry, promhttp.HandlerOpts{})
	if err := e.Set(flows...); err != nil {
		return nil, fmt.Errorf("new exporter: %w", err)
	}
	return e, nil
}

// ServeHTTP serves /metrics (Prometheus text format) and 404 elsewhere.
func (e *Exporter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/metrics" {
		http.NotFound(w, r)
		return
	}
	e.metrics.ServeHTTP(w, r)
}

// Registry is the exporter's own registry (never the global one), for Gather in tests.
func (e *Exporter) Registry() *prometheus.Registry { return e.registry }

// Set adds flows, replacing any with the same Key. Counters keep their values across changes.
func (e *Exporter) Set(flows ...Flow) error {
	prepared, err := prepare(flows)
	if err != nil {
		return fmt.Errorf("set flows: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.advanceLocked()
	for _, f := range prepared {
		e.flows[f.Name] = f
	}
	e.rebuildLocked()
	return nil
}

// Update changes the flow with the given key in place; fn must not change its key. fn sees the
// flow with defaults applied, so derived fields (pod names) are not recomputed.
func (e *Exporter) Update(key string, fn func(*Flow)) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	f, ok := e.flows[key]
	if !ok {
		return fmt.Errorf("update flow %q: no such flow", key)
	}
	fn(&f)
	if err := f.Validate(); err != nil {
		return fmt.Errorf("update flow %q: %w", key, err)
	}
	f = f.withDefaults()
	if f.Name != key {
		return fmt.Errorf("update flow %q: the update changed its key to %q", key, f.Name)
	}
	e.advanceLocked()
	e.flows[key] = f
	e.rebuildLocked()
	return nil
}

// Remove stops the flows with the given keys. Their counters stay exported and stop rising, as
// a real proxy's would; their ejections gauges drop to 0.
func (e *Exporter) Remove(keys ...string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, k := range keys {
		if _, ok := e.flows[k]; !ok {
			return fmt.Errorf("remove flow %q: no such flow", k)
		}
	}
	e.advanceLocked()
	for _, k := range keys {
		delete(e.flows, k)
	}
	e.rebuildLocked()
	return nil
}

// Flows returns the current flows (with defaults applied), sorted by key.
func (e *Exporter) Flows() []Flow {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Flow, 0, len(e.flows))
	for _, f := range e.flows {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// advanceLocked brings every counter cell up to now at its current rate, so a rate change only
// affects the counting from now on.
func (e *Exporter) advanceLocked() {
	now := e.opts.Clock()
	dt := now.Sub(e.at).Seconds()
	if dt <= 0 {
		return // a clock that stands still or steps back never makes a counter go down
	}
	for _, c := range e.cells {
		if c.fam != famEjections {
			c.acc += c.rate * dt
		}
	}
	e.at = now
}

// rebuildLocked recomputes every cell's rate from the current flows. Cells no flow feeds any more
// keep their count at rate 0.
func (e *Exporter) rebuildLocked() {
	for _, c := range e.cells {
		c.rate = 0
	}
	flows := make([]Flow, 0, len(e.flows))
	for _, f := range e.flows {
		flows = append(flows, f)
	}
	added := false
	for _, con := range model(flows) {
		k := cellKey(con.fam, con.values, con.latencyMs)
		c, ok := e.cells[k]
		if !ok {
			c = &cell{fam: con.fam, values: con.values, latencyMs: con.latencyMs}
			e.cells[k] = c
			added = true
		}
		c.rate += con.rate
	}
	if added || e.groups == nil {
		cells := make([]*cell, 0, len(e.cells))
		for _, c := range e.cells {
			cells = append(cells, c)
		}
		e.groups = groupCells(cells)
	}
}

// exportedSeries is one series of a snapshot.
type exportedSeries struct {
	fam    family
	values []string
	sample
}

// snapshot brings the cells up to the clock and returns every series' current sample.
func (e *Exporter) snapshot() []exportedSeries {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.advanceLocked()
	out := make([]exportedSeries, len(e.groups))
	for i, g := range e.groups {
		out[i] = exportedSeries{fam: g.fam, values: g.values, sample: g.at(0, e.bounds)}
	}
	return out
}

// collector turns an exporter snapshot into const metrics at scrape time.
type collector struct {
	e                                                        *Exporter
	requests, duration, tcp, tcpClosed, rq, retry, ejections *prometheus.Desc
}

func newCollector(e *Exporter) *collector {
	req, tcp, envoy := RequestLabelNames(), TCPLabelNames(), EnvoyClusterLabelNames()
	return &collector{
		e:         e,
		requests:  prometheus.NewDesc(MetricRequests, "Total requests (synthetic, meshsim).", req, nil),
		duration:  prometheus.NewDesc(MetricRequestDuration, "Request duration in milliseconds (synthetic, meshsim).", req, nil),
		tcp:       prometheus.NewDesc(MetricTCPOpened, "Total TCP connections opened (synthetic, meshsim).", tcp, nil),
		tcpClosed: prometheus.NewDesc(MetricTCPClosed, "Total TCP connections closed (synthetic, meshsim).", tcp, nil),
		rq:        prometheus.NewDesc(MetricUpstreamRq, "Total upstream requests (synthetic, meshsim).", envoy, nil),
		retry:     prometheus.NewDesc(MetricUpstreamRetry, "Total upstream request retries (synthetic, meshsim).", envoy, nil),
		ejections: prometheus.NewDesc(MetricEjectionsActive, "Active outlier ejections (synthetic, meshsim).", envoy, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.requests, c.duration, c.tcp, c.tcpClosed, c.rq, c.retry, c.ejections} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.e.snapshot() {
		switch s.fam {
		case famRequests:
			ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, s.value, s.values...)
			if s.buckets != nil {
				buckets := make(map[float64]uint64, len(c.e.bounds))
				for i, le := range c.e.bounds {
					buckets[le] = uint64(s.buckets[i])
				}
				ch <- prometheus.MustNewConstHistogram(c.duration, uint64(s.value), s.sum, buckets, s.values...)
			}
		case famTCPOpened:
			ch <- prometheus.MustNewConstMetric(c.tcp, prometheus.CounterValue, s.value, s.values...)
		case famTCPClosed:
			ch <- prometheus.MustNewConstMetric(c.tcpClosed, prometheus.CounterValue, s.value, s.values...)
		case famUpstreamRq:
			ch <- prometheus.MustNewConstMetric(c.rq, prometheus.CounterValue, s.value, s.values...)
		case famUpstreamRetry:
			ch <- prometheus.MustNewConstMetric(c.retry, prometheus.CounterValue, s.value, s.values...)
		case famEjections:
			ch <- prometheus.MustNewConstMetric(c.ejections, prometheus.GaugeValue, s.value, s.values...)
		}
	}
}

// Span is the time range of a static rendering: samples at Start, Start+Step, ... up to End.
type Span struct {
	Start time.Time
	End   time.Time
	Step  time.Duration
}

// omFamily describes how one family is written in OpenMetrics.
type omFamily struct {
	fam    family
	name   string // family name on the TYPE line
	sample string // sample name ("" for histograms)
	typ    string
	help   string
	labels []string
}

// omFamilies lists the families in output order. OpenMetrics counters must end in _total, and
// the family is named without it. Envoy's upstream_rq_retry counter has no _total suffix, so it
// is declared "unknown" to keep its name: the TSDB stores samples by name and ignores the type.
func omFamilies() []omFamily {
	req, tcp, envoy := RequestLabelNames(), TCPLabelNames(), EnvoyClusterLabelNames()
	return []omFamily{
		{famRequests, "istio_requests", MetricRequests, "counter", "Total requests.", req},
		{famRequests, MetricRequestDuration, "", "histogram", "Request duration in milliseconds.", req},
		{famTCPOpened, "istio_tcp_connections_opened", MetricTCPOpened, "counter", "Total TCP connections opened.", tcp},
		{famTCPClosed, "istio_tcp_connections_closed", MetricTCPClosed, "counter", "Total TCP connections closed.", tcp},
		{famUpstreamRq, "envoy_cluster_upstream_rq", MetricUpstreamRq, "counter", "Total upstream requests.", envoy},
		{famUpstreamRetry, MetricUpstreamRetry, MetricUpstreamRetry, "unknown", "Total upstream request retries.", envoy},
		{famEjections, MetricEjectionsActive, MetricEjectionsActive, "gauge", "Active outlier ejections.", envoy},
	}
}

// WriteOpenMetrics renders flows over span as OpenMetrics text for
// `promtool tsdb create-blocks-from openmetrics`: counters start at 0 at span.Start and rise at
// each flow's rate; timestamps are in seconds; each family is written contiguously, series by
// series in time order; the output ends with "# EOF". Clock in opts is not used.
func WriteOpenMetrics(w io.Writer, flows []Flow, span Span, opts Options) error {
	if span.Step < time.Millisecond {
		return fmt.Errorf("write openmetrics: step %s must be at least 1ms (the timestamp resolution)", span.Step)
	}
	if span.End.Before(span.Start) {
		return fmt.Errorf("write openmetrics: end %s is before start %s", span.End, span.Start)
	}
	prepared, err := prepare(flows)
	if err != nil {
		return fmt.Errorf("write openmetrics: %w", err)
	}
	cells := map[string]*cell{}
	var ordered []*cell
	for _, con := range model(prepared) {
		k := cellKey(con.fam, con.values, con.latencyMs)
		c, ok := cells[k]
		if !ok {
			c = &cell{fam: con.fam, values: con.values, latencyMs: con.latencyMs}
			cells[k] = c
			ordered = append(ordered, c)
		}
		c.rate += con.rate
	}
	groups := groupCells(ordered)
	var bounds []float64
	if !opts.OmitHistograms {
		bounds = DurationBuckets()
	}
	les := make([]string, len(bounds))
	for i, le := range bounds {
		les[i] = formatLe(le)
	}
	steps := int(span.End.Sub(span.Start) / span.Step)
	startMs, stepMs := span.Start.UnixMilli(), span.Step.Milliseconds()
	timestamps := make([]string, steps+1)
	for i := range timestamps {
		timestamps[i] = strconv.FormatFloat(float64(startMs+int64(i)*stepMs)/1000, 'f', -1, 64)
	}

	bw := bufio.NewWriterSize(w, 1<<20)
	var line []byte
	for _, of := range omFamilies() {
		histogram := of.typ == "histogram"
		if histogram && bounds == nil {
			continue
		}
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", of.name, of.help, of.name, of.typ)
		for _, g := range groups {
			if g.fam != of.fam {
				continue
			}
			for i, ts := range timestamps {
				elapsed := (time.Duration(i) * span.Step).Seconds()
				if !histogram {
					s := g.at(elapsed, nil)
					line = appendSample(line[:0], of.sample, of.labels, g.values, "", "", s.value, ts)
					bw.Write(line)
					continue
				}
				s := g.at(elapsed, bounds)
				for bi, le := range les {
					line = appendSample(line[:0], of.name+"_bucket", of.labels, g.values, "le", le, s.buckets[bi], ts)
					bw.Write(line)
				}
				line = appendSample(line[:0], of.name+"_bucket", of.labels, g.values, "le", "+Inf", s.value, ts)
				bw.Write(line)
				line = appendSample(line[:0], of.name+"_count", of.labels, g.values, "", "", s.value, ts)
				bw.Write(line)
				line = appendSample(line[:0], of.name+"_sum", of.labels, g.values, "", "", s.sum, ts)
				bw.Write(line)
			}
		}
	}
	bw.WriteString("# EOF\n")
	// bufio.Writer keeps the first write error and returns it from Flush.
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write openmetrics: %w", err)
	}
	return nil
}

// RenderOpenMetrics is WriteOpenMetrics into a string, for harness.Backfill.
func RenderOpenMetrics(flows []Flow, span Span, opts Options) (string, error) {
	var b strings.Builder
	if err := WriteOpenMetrics(&b, flows, span, opts); err != nil {
		return "", err
	}
	return b.String(), nil
}

// formatLe formats a bucket bound the way client_golang's text format does ('g', shortest), so
// backfilled and scraped series share le values ("3.6e+06", not "3600000" or "3.6e6").
func formatLe(le float64) string { return strconv.FormatFloat(le, 'g', -1, 64) }

func appendSample(b []byte, name string, labels, values []string, extraName, extraValue string, v float64, ts string) []byte {
	b = append(b, name...)
	b = append(b, '{')
	for i, l := range labels {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendLabel(b, l, values[i])
	}
	if extraName != "" {
		b = append(b, ',')
		b = appendLabel(b, extraName, extraValue)
	}
	b = append(b, '}', ' ')
	b = strconv.AppendFloat(b, v, 'f', -1, 64)
	b = append(b, ' ')
	b = append(b, ts...)
	return append(b, '\n')
}

// appendLabel writes name="value" with OpenMetrics escaping: only backslash, double quote and
// newline are escaped (Go's %q would also escape non-ASCII, which OpenMetrics does not decode).
func appendLabel(b []byte, name, value string) []byte {
	b = append(b, name...)
	b = append(b, '=', '"')
	for i := 0; i < len(value); i++ {
		switch ch := value[i]; ch {
		case '\\':
			b = append(b, '\\', '\\')
		case '"':
			b = append(b, '\\', '"')
		case '\n':
			b = append(b, '\\', 'n')
		default:
			b = append(b, ch)
		}
	}
	return append(b, '"')
}

// Demo is a bookinfo-like mesh for demos: in namespace bookinfo, istio-ingressgateway →
// productpage → details and reviews (v1, v2, v3) → ratings, all over mTLS, plus
//   - plaintext into reviews-v1 from legacy-client in namespace legacy (a sidecar-injected client
//     whose DestinationRule disables TLS, so the server still knows who it is), and
//   - a retry storm on ratings: 30% of the attempts from reviews-v2 and reviews-v3 are retries,
//     and 5% of their requests fail with exhausted retries (URX).
func Demo() []Flow {
	const ns = "bookinfo"
	wl := func(name, app, version string) Workload {
		return Workload{Name: name, Namespace: ns, App: app, Version: version, ServiceAccount: "bookinfo-" + app}
	}
	ingress := Workload{Name: "istio-ingressgateway", Namespace: "istio-system", App: "istio-ingressgateway",
		Version: unknown, ServiceAccount: "istio-ingressgateway-service-account"}
	productpage := wl("productpage-v1", "productpage", "v1")
	details := wl("details-v1", "details", "v1")
	reviews := []Workload{wl("reviews-v1", "reviews", "v1"), wl("reviews-v2", "reviews", "v2"), wl("reviews-v3", "reviews", "v3")}
	ratings := wl("ratings-v1", "ratings", "v1")
	legacy := Workload{Name: "legacy-client", Namespace: "legacy", App: "legacy-client", Version: "v1", ServiceAccount: "default"}

	flows := []Flow{
		{Source: ingress, Destination: productpage, Rate: 10},
		{Source: productpage, Destination: details, Rate: 10},
	}
	for _, r := range reviews {
		flows = append(flows, Flow{Source: productpage, Destination: r, Subset: r.Version, Rate: 10.0 / 3})
	}
	for _, r := range reviews[1:] {
		flows = append(flows, Flow{Source: r, Destination: ratings, Rate: 5, RetryShare: 0.3, URXShare: 0.05})
	}
	flows = append(flows, Flow{Source: legacy, Destination: reviews[0], Rate: 2, Plaintext: true})
	return flows
}

// Generate builds a large mesh with n destination services for scale tests. It is deterministic:
// service i (0-based) is "svc-NNNNN" (workload "svc-NNNNN-v1") in namespace "mesh-NNN" (100
// services per namespace); its client is the previous service in the same namespace, or the
// namespace's "frontend" workload for the first. Rate is 1 + i%5 per second, over mTLS, except:
//   - i%10 == 5: TCP (istio_tcp_connections_opened_total only)
//   - i%100 == 37: plaintext
//   - i%100 == 59: a retry storm (RetryShare 0.2, URXShare 0.02)
//   - i%200 == 83: upstream timeouts (TimeoutShare 0.05)
//   - i%250 == 11: one active outlier ejection
func Generate(n int) []Flow {
	const perNamespace = 100
	flows := make([]Flow, 0, n)
	for i := 0; i < n; i++ {
		ns := fmt.Sprintf("mesh-%03d", i/perNamespace)
		dst := Workload{Name: fmt.Sprintf("svc-%05d-v1", i), Namespace: ns, App: fmt.Sprintf("svc-%05d", i)}
		src := Workload{Name: "frontend", Namespace: ns}
		if i%perNamespace != 0 {
			src = Workload{Name: fmt.Sprintf("svc-%05d-v1", i-1), Namespace: ns, App: fmt.Sprintf("svc-%05d", i-1)}
		}
		f := Flow{Source: src, Destination: dst, Rate: float64(1 + i%5)}
		switch {
		case i%10 == 5:
			f.Protocol = TCP
		case i%100 == 37:
			f.Plaintext = true
		case i%100 == 59:
			f.RetryShare, f.URXShare = 0.2, 0.02
		case i%200 == 83:
			f.TimeoutShare = 0.05
		}
		if i%250 == 11 {
			f.EjectionsActive = 1
		}
		flows = append(flows, f)
	}
	return flows
}
