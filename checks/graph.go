package checks

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/common/model"
)

// Graph is the observed dependency graph of a mesh: who calls which service, how much, how
// well and whether over mTLS, joined with the retries, timeouts and outlier detection the
// configuration gives each call.
type Graph struct {
	EvaluatedAt time.Time `json:"evaluatedAt"`
	Window      string    `json:"window"`
	Nodes       []Node    `json:"nodes"`
	Edges       []Edge    `json:"edges"`
	// Queries are the PromQL queries the graph was built from (a constant number).
	Queries []string `json:"queries"`
}

// Node is a source workload or a destination service.
type Node struct {
	ID        string `json:"id"`
	Kind      string `json:"kind"` // workload or service
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// Edge is the traffic from one source workload to one destination service over the window.
type Edge struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	// Protocol is http (requests, including gRPC) or tcp (connections only).
	Protocol string `json:"protocol"`
	// RequestRate is requests per second (0 for tcp).
	RequestRate float64 `json:"requestRate"`
	// ErrorRate is the share of requests answered 5xx.
	ErrorRate float64 `json:"errorRate"`
	// P99Ms is the 99th percentile request duration in milliseconds, from
	// istio_request_duration_milliseconds; absent when unknown.
	P99Ms *float64 `json:"p99Ms,omitempty"`
	// ConnectionRate is TCP connections opened per second.
	ConnectionRate float64 `json:"connectionRate,omitempty"`
	// Reporter is the proxy the rates come from: source (the client's view, preferred) or
	// destination (clients without sidecars).
	Reporter string `json:"reporter"`
	// MTLS is mutual_tls, plaintext, mixed, or unknown when no destination proxy reported.
	MTLS string `json:"mtls"`
	// Config is what the configuration says about the edge.
	Config EdgeConfig `json:"config"`
}

// Graph query names.
const (
	graphRequests = "graph_requests"
	graphErrors   = "graph_errors"
	graphP99      = "graph_p99"
	graphSecurity = "graph_security"
	graphTCP      = "graph_tcp"
)

// GraphSignals are the queries the graph runs: one per figure, whatever the size of the mesh.
func GraphSignals(window time.Duration) []Signal {
	w := promDuration(window)
	const by = `reporter, source_workload_namespace, source_workload, destination_service, destination_service_name, destination_service_namespace`
	return []Signal{
		{Name: graphRequests, Query: fmt.Sprintf(`sum by (%s) (rate(istio_requests_total[%s]))`, by, w),
			Describes: "requests per second per edge and reporter"},
		{Name: graphErrors, Query: fmt.Sprintf(`sum by (%s) (rate(istio_requests_total{response_code=~"5.."}[%s]))`, by, w),
			Describes: "5xx responses per second per edge and reporter"},
		{Name: graphP99, Query: fmt.Sprintf(`histogram_quantile(0.99, sum by (%s, le) (rate(istio_request_duration_milliseconds_bucket[%s])))`, by, w),
			Describes: "99th percentile request duration per edge and reporter"},
		{Name: graphSecurity, Query: fmt.Sprintf(`sum by (%s, connection_security_policy) (rate(istio_requests_total{reporter="destination"}[%s]))`, by, w),
			Describes: "requests per second per edge by connection security, as the destination reports"},
		{Name: graphTCP, Query: fmt.Sprintf(`sum by (%s, connection_security_policy) (rate(istio_tcp_connections_opened_total[%s]))`, by, w),
			Describes: "TCP connections per second per edge, reporter and connection security"},
	}
}

// GraphOptions configure BuildGraph.
type GraphOptions struct {
	Querier Querier
	// Config gives the retries, timeouts and outlier detection of each edge (nil: none joined).
	Config *MeshConfig
	Window time.Duration
	// At is the evaluation time (zero: now).
	At            time.Time
	MeshDomain    string
	RootNamespace string
	QueryTimeout  time.Duration
}

type edgeKey struct{ srcNS, srcWL, host string }

// edgeAcc accumulates the figures of one edge by reporter.
type edgeAcc struct {
	key                    edgeKey
	svcName, svcNamespace  string
	requests, errors       map[string]float64 // by reporter
	p99                    map[string]float64
	mtls, plain            float64 // destination-reported request or connection rates
	tcpConns               map[string]float64
	tcpSecure, tcpInsecure float64
}

// BuildGraph runs the graph queries at one instant and joins the result with the configuration.
// A failing query fails the graph: a partial graph would mislead.
func BuildGraph(ctx context.Context, opts GraphOptions) (*Graph, error) {
	if opts.At.IsZero() {
		opts.At = time.Now()
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = time.Minute
	}
	if opts.Window < time.Second {
		return nil, fmt.Errorf("graph window %s must be at least 1s", opts.Window)
	}
	signals := GraphSignals(opts.Window)
	results := make([]QueryResult, len(signals))
	var wg sync.WaitGroup
	for i, sig := range signals {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = runQuery(ctx, opts.Querier, sig, opts.At, opts.QueryTimeout, 0)
		}()
	}
	wg.Wait()
	byName := map[string]model.Vector{}
	var errs []error
	for _, r := range results {
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
		byName[r.Signal] = r.Vector
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("build graph: %w", err)
	}

	edges := map[edgeKey]*edgeAcc{}
	get := func(m model.Metric) *edgeAcc {
		k := edgeKey{labelValue(m, "source_workload_namespace"), labelValue(m, "source_workload"), labelValue(m, "destination_service")}
		e, ok := edges[k]
		if !ok {
			e = &edgeAcc{key: k, requests: map[string]float64{}, errors: map[string]float64{}, p99: map[string]float64{},
				tcpConns: map[string]float64{},
				svcName:  labelValue(m, "destination_service_name"), svcNamespace: labelValue(m, "destination_service_namespace")}
			edges[k] = e
		}
		return e
	}
	for _, s := range byName[graphRequests] {
		get(s.Metric).requests[labelValue(s.Metric, "reporter")] += float64(s.Value)
	}
	for _, s := range byName[graphErrors] {
		get(s.Metric).errors[labelValue(s.Metric, "reporter")] += float64(s.Value)
	}
	for _, s := range byName[graphP99] {
		if v := float64(s.Value); !math.IsNaN(v) && !math.IsInf(v, 0) {
			get(s.Metric).p99[labelValue(s.Metric, "reporter")] = v
		}
	}
	for _, s := range byName[graphSecurity] {
		e := get(s.Metric)
		if labelValue(s.Metric, "connection_security_policy") == "mutual_tls" {
			e.mtls += float64(s.Value)
		} else {
			e.plain += float64(s.Value)
		}
	}
	for _, s := range byName[graphTCP] {
		e := get(s.Metric)
		reporter := labelValue(s.Metric, "reporter")
		e.tcpConns[reporter] += float64(s.Value)
		if reporter == "destination" {
			if labelValue(s.Metric, "connection_security_policy") == "mutual_tls" {
				e.tcpSecure += float64(s.Value)
			} else {
				e.tcpInsecure += float64(s.Value)
			}
		}
	}

	g := &Graph{EvaluatedAt: opts.At, Window: promDuration(opts.Window)}
	for _, s := range signals {
		g.Queries = append(g.Queries, s.Query)
	}
	nodes := map[string]Node{}
	join := newConfigJoin(opts.Config, opts.MeshDomain, opts.RootNamespace)
	for _, e := range edges {
		edge, ok := e.edge()
		if !ok {
			continue
		}
		src := Node{ID: "workload:" + e.key.srcNS + "/" + e.key.srcWL, Kind: "workload", Namespace: e.key.srcNS, Name: e.key.srcWL}
		if e.key.srcWL == "unknown" || e.key.srcWL == "" {
			src = Node{ID: "workload:unknown", Kind: "workload", Name: "unknown"}
		}
		dstName, dstNS := e.svcName, e.svcNamespace
		if dstName == "" || dstName == "unknown" {
			dstName, dstNS = serviceOf(e.key.host, opts.MeshDomain)
		}
		dst := Node{ID: "service:" + e.key.host, Kind: "service", Namespace: dstNS, Name: dstName}
		nodes[src.ID], nodes[dst.ID] = src, dst
		edge.Source, edge.Destination = src.ID, dst.ID
		edge.Config = join.edgeConfig(e.key.srcNS, e.key.host, edge.Protocol)
		g.Edges = append(g.Edges, edge)
	}
	for _, n := range nodes {
		g.Nodes = append(g.Nodes, n)
	}
	sort.Slice(g.Nodes, func(i, j int) bool { return g.Nodes[i].ID < g.Nodes[j].ID })
	sort.Slice(g.Edges, func(i, j int) bool {
		if g.Edges[i].Source != g.Edges[j].Source {
			return g.Edges[i].Source < g.Edges[j].Source
		}
		return g.Edges[i].Destination < g.Edges[j].Destination
	})
	return g, nil
}

// edge computes the edge's figures, preferring the client's view. ok is false for an edge with
// no traffic in the window.
func (e *edgeAcc) edge() (Edge, bool) {
	reporter := "source"
	if e.requests["source"] == 0 && e.tcpConns["source"] == 0 {
		reporter = "destination"
	}
	out := Edge{Reporter: reporter, Protocol: "http"}
	req := e.requests[reporter]
	switch {
	case req > 0:
		out.RequestRate = req
		out.ErrorRate = e.errors[reporter] / req
		if p, ok := e.p99[reporter]; ok {
			out.P99Ms = &p
		}
		out.MTLS = securityOf(e.mtls, e.plain)
	case e.tcpConns[reporter] > 0:
		out.Protocol = "tcp"
		out.MTLS = securityOf(e.tcpSecure, e.tcpInsecure)
	default:
		return Edge{}, false
	}
	out.ConnectionRate = e.tcpConns[reporter]
	return out, true
}

func securityOf(secure, plain float64) string {
	switch {
	case secure > 0 && plain > 0:
		return "mixed"
	case secure > 0:
		return "mutual_tls"
	case plain > 0:
		return "plaintext"
	}
	return "unknown"
}
