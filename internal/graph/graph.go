// Package graph is the live service map: the connected topology Istio's request metrics show
// (workload -> service -> the workloads behind it), each edge joined with the policy Istio
// applies to it (internal/mesh), health by configurable thresholds, the impact set of a service
// and retry amplification along observed call chains. It runs no queries itself: Queries names
// them and Build turns their answers into a Graph, so the caller owns Prometheus.
package graph

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/prometheus/common/model"

	"github.com/meshguard/meshguard/internal/mesh"
)

// Node kinds.
const (
	KindWorkload = "workload"
	KindService  = "service"
)

// Protocols of an edge, from request_protocol (tcp: istio_tcp_connections_opened_total).
const (
	ProtocolHTTP = "http"
	ProtocolGRPC = "grpc"
	ProtocolTCP  = "tcp"
)

// Graph is the observed service map over a window.
type Graph struct {
	EvaluatedAt time.Time  `json:"evaluatedAt"`
	Window      string     `json:"window"`
	Thresholds  Thresholds `json:"thresholds"`
	Nodes       []Node     `json:"nodes"`
	Edges       []Edge     `json:"edges"`
	// Queries are the PromQL queries the graph was built from (a constant number).
	Queries []string `json:"queries,omitempty"`
	// Notes say what the map cannot show, and why.
	Notes []string `json:"notes,omitempty"`
}

// Node is a workload or a service. Its ID holds the cluster, so one name in two clusters is two
// nodes.
type Node struct {
	ID        string `json:"id"`
	Kind      string `json:"kind"`
	Cluster   string `json:"cluster,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Host is a service's full name (destination_service).
	Host string `json:"host,omitempty"`
	// RequestRate and ErrorRate are what the node serves: requests per second into it and the
	// share that failed. P99Ms is the worst p99 of the edges into it.
	RequestRate float64  `json:"requestRate"`
	ErrorRate   float64  `json:"errorRate"`
	P99Ms       *float64 `json:"p99Ms,omitempty"`
	Health      Health   `json:"health"`
	// EjectedEndpoints (services) is the most endpoints outlier detection holds ejected in any
	// client; OverflowRate the requests per second connection pools refused. Absent: no client
	// exports Envoy's cluster stats for the service.
	EjectedEndpoints *float64 `json:"ejectedEndpoints,omitempty"`
	OverflowRate     *float64 `json:"overflowRate,omitempty"`
	// Team, Tier and LastDeploy come from the cluster's Deployment, StatefulSet or DaemonSet of
	// a workload's namespace and name; a service's from the workloads behind it (Describe).
	// Empty when there is none or no cluster was read.
	Team       string     `json:"team,omitempty"`
	Tier       string     `json:"tier,omitempty"`
	LastDeploy *time.Time `json:"lastDeploy,omitempty"`
}

// Edge is traffic from a workload to a service (a call, with the caller's policy) or from a
// service to a workload behind it (the service's share of traffic to that workload).
type Edge struct {
	ID          string `json:"id"`
	Source      string `json:"source"`
	Destination string `json:"destination"`
	// Kind is call (workload -> service) or serve (service -> workload).
	Kind     string `json:"kind"`
	Protocol string `json:"protocol"`
	// RequestRate is requests per second (connections per second for tcp).
	RequestRate float64 `json:"requestRate"`
	// ErrorRate is the share of requests that failed: HTTP 5xx, or gRPC status other than OK.
	ErrorRate float64  `json:"errorRate"`
	P50Ms     *float64 `json:"p50Ms,omitempty"`
	P99Ms     *float64 `json:"p99Ms,omitempty"`
	// MTLSShare is the share of requests (connections) the destination proxy saw over mutual
	// TLS; absent when no destination proxy reported.
	MTLSShare *float64 `json:"mtlsShare,omitempty"`
	// Reporter is the proxy the rates come from: source (preferred for calls), destination.
	Reporter string `json:"reporter"`
	Health   Health `json:"health"`
	// Policy is what Istio applies to a call edge.
	Policy *Policy `json:"policy,omitempty"`
}

// Edge kinds.
const (
	EdgeCall  = "call"
	EdgeServe = "serve"
)

// Options configure Build.
type Options struct {
	// Index answers which VirtualService and DestinationRule apply (nil: none written).
	Index      *mesh.Index
	Thresholds Thresholds
	Window     time.Duration
	At         time.Time
	// Queries are recorded in the graph as its provenance.
	Queries []string
	// ClusterLabels name the cluster labels the queries were written with.
	ClusterLabels ClusterLabels
}

// flowKey is one observed (caller workload, service, serving workload) triple.
type flowKey struct {
	srcCluster, srcNS, srcWL string
	dstCluster, host         string
	svcName, svcNS           string
	dstNS, dstWL             string
}

// figures are one flow's or one edge's sums by reporter.
type figures struct {
	requests, errors  map[string]float64
	byProtocol        map[string]float64
	mtls, plain       float64
	tcp               map[string]float64
	tcpMTLS, tcpPlain float64
	p50, p99          map[string]float64
}

func newFigures() *figures {
	return &figures{requests: map[string]float64{}, errors: map[string]float64{}, byProtocol: map[string]float64{},
		tcp: map[string]float64{}, p50: map[string]float64{}, p99: map[string]float64{}}
}

func (f *figures) add(o *figures) {
	for k, v := range o.requests {
		f.requests[k] += v
	}
	for k, v := range o.errors {
		f.errors[k] += v
	}
	for k, v := range o.byProtocol {
		f.byProtocol[k] += v
	}
	for k, v := range o.tcp {
		f.tcp[k] += v
	}
	f.mtls += o.mtls
	f.plain += o.plain
	f.tcpMTLS += o.tcpMTLS
	f.tcpPlain += o.tcpPlain
}

func label(m model.Metric, name string) string { return string(m[model.LabelName(name)]) }

func keyOf(m model.Metric, c ClusterLabels) flowKey {
	return flowKey{
		srcCluster: label(m, c.Source), srcNS: label(m, "source_workload_namespace"), srcWL: label(m, "source_workload"),
		dstCluster: label(m, c.Destination), host: label(m, "destination_service"),
		svcName: label(m, "destination_service_name"), svcNS: label(m, "destination_service_namespace"),
		dstNS: label(m, "destination_workload_namespace"), dstWL: label(m, "destination_workload"),
	}
}

func (k flowKey) callKey() flowKey  { k.dstNS, k.dstWL = "", ""; return k }
func (k flowKey) serveKey() flowKey { k.srcCluster, k.srcNS, k.srcWL = "", "", ""; return k }

// Build turns the answers to Queries (by query name; a missing one counts as empty) into the
// graph, joined with the policy opts.Index gives each call.
func Build(results map[string]model.Vector, opts Options) *Graph {
	if opts.Thresholds == (Thresholds{}) {
		opts.Thresholds = DefaultThresholds()
	}
	clusters := opts.ClusterLabels.withDefaults()
	flows := map[flowKey]*figures{}
	get := func(k flowKey) *figures {
		f, ok := flows[k]
		if !ok {
			f = newFigures()
			flows[k] = f
		}
		return f
	}
	for _, s := range results[QueryRequests] {
		f := get(keyOf(s.Metric, clusters))
		r := label(s.Metric, "reporter")
		f.requests[r] += float64(s.Value)
		f.byProtocol[label(s.Metric, "request_protocol")] += float64(s.Value)
	}
	for _, s := range results[QueryTopology] {
		f := get(keyOf(s.Metric, clusters))
		if p := label(s.Metric, "request_protocol"); p == ProtocolTCP {
			f.tcp["source"] += float64(s.Value)
		} else {
			f.requests["source"] += float64(s.Value)
			f.byProtocol[p] += float64(s.Value)
		}
	}
	for _, s := range results[QueryErrors] {
		get(keyOf(s.Metric, clusters)).errors[label(s.Metric, "reporter")] += float64(s.Value)
	}
	for _, s := range results[QuerySecurity] {
		f := get(keyOf(s.Metric, clusters))
		if label(s.Metric, "connection_security_policy") == "mutual_tls" {
			f.mtls += float64(s.Value)
		} else {
			f.plain += float64(s.Value)
		}
	}
	for _, s := range results[QueryTCP] {
		f := get(keyOf(s.Metric, clusters))
		r := label(s.Metric, "reporter")
		f.tcp[r] += float64(s.Value)
		if r == "destination" {
			if label(s.Metric, "connection_security_policy") == "mutual_tls" {
				f.tcpMTLS += float64(s.Value)
			} else {
				f.tcpPlain += float64(s.Value)
			}
		}
	}
	calls, serves := map[flowKey]*figures{}, map[flowKey]*figures{}
	for k, f := range flows {
		for _, agg := range []struct {
			m map[flowKey]*figures
			k flowKey
		}{{calls, k.callKey()}, {serves, k.serveKey()}} {
			a, ok := agg.m[agg.k]
			if !ok {
				a = newFigures()
				agg.m[agg.k] = a
			}
			a.add(f)
		}
	}
	quantiles := func(name string, m map[flowKey]*figures, keyFn func(flowKey) flowKey, set func(*figures) map[string]float64) {
		for _, s := range results[name] {
			v := float64(s.Value)
			if math.IsNaN(v) || math.IsInf(v, 0) {
				continue
			}
			if f, ok := m[keyFn(keyOf(s.Metric, clusters))]; ok {
				set(f)[label(s.Metric, "reporter")] = v
			}
		}
	}
	p50 := func(f *figures) map[string]float64 { return f.p50 }
	p99 := func(f *figures) map[string]float64 { return f.p99 }
	quantiles(QueryCallP50, calls, flowKey.callKey, p50)
	quantiles(QueryCallP99, calls, flowKey.callKey, p99)
	quantiles(QueryServeP50, serves, flowKey.serveKey, p50)
	quantiles(QueryServeP99, serves, flowKey.serveKey, p99)

	g := &Graph{EvaluatedAt: opts.At, Window: model.Duration(opts.Window).String(), Thresholds: opts.Thresholds, Queries: opts.Queries}
	nodes := map[string]*Node{}
	addNode := func(n Node) string {
		if _, ok := nodes[n.ID]; !ok {
			nodes[n.ID] = &n
		}
		return n.ID
	}
	join := policyJoin{ix: opts.Index}
	for k, f := range calls {
		e, ok := f.edge("source")
		if !ok {
			continue
		}
		e.Kind = EdgeCall
		e.Source = addNode(workloadNode(k.srcCluster, k.srcNS, k.srcWL))
		e.Destination = addNode(serviceNode(k, opts.Index))
		switch {
		case k.srcWL == "" || k.srcWL == unknown:
			// No sidecar on the caller: no proxy applies a route, retries or a circuit breaker.
		case e.Protocol != ProtocolTCP:
			p := join.policy(k.srcNS, k.host)
			e.Policy = &p
		default:
			if dr := join.destinationRule(k.srcNS, k.host); dr != nil {
				e.Policy = &Policy{DestinationRule: dr}
			}
		}
		g.Edges = append(g.Edges, e)
	}
	for k, f := range serves {
		e, ok := f.edge("destination")
		// A server without a sidecar is "unknown": which workload it is cannot be told, and one
		// node for all of them would join unrelated services.
		if !ok || k.dstWL == "" || k.dstWL == unknown {
			continue
		}
		e.Kind = EdgeServe
		e.Source = addNode(serviceNode(k, opts.Index))
		e.Destination = addNode(workloadNode(k.dstCluster, k.dstNS, k.dstWL))
		g.Edges = append(g.Edges, e)
	}
	sort.Slice(g.Edges, func(i, j int) bool {
		if g.Edges[i].Source != g.Edges[j].Source {
			return g.Edges[i].Source < g.Edges[j].Source
		}
		return g.Edges[i].Destination < g.Edges[j].Destination
	})
	for i := range g.Edges {
		e := &g.Edges[i]
		e.ID = e.Source + " -> " + e.Destination
		e.Health = opts.Thresholds.Judge(e.RequestRate, e.ErrorRate, e.P99Ms, e.Protocol == ProtocolTCP)
		// A node's figures are what flows into it: calls into a service, serves into a workload.
		n := nodes[e.Destination]
		if e.Protocol != ProtocolTCP {
			n.RequestRate += e.RequestRate
			n.ErrorRate += e.ErrorRate * e.RequestRate
			if e.P99Ms != nil && (n.P99Ms == nil || *e.P99Ms > *n.P99Ms) {
				p := *e.P99Ms
				n.P99Ms = &p
			}
		}
	}
	byHost := map[string][]*Node{} // one per cluster serving the host
	for _, n := range nodes {
		if n.Kind == KindService {
			byHost[n.Host] = append(byHost[n.Host], n)
		}
	}
	live := func(name string, set func(*Node, float64)) {
		for _, s := range results[name] {
			for _, n := range byHost[label(s.Metric, "service_host")] {
				set(n, float64(s.Value))
			}
		}
	}
	live(QueryEjections, func(n *Node, v float64) { n.EjectedEndpoints = &v })
	live(QueryOverflow, func(n *Node, v float64) { n.OverflowRate = &v })
	if len(results[QueryEjections]) == 0 && len(results[QueryOverflow]) == 0 {
		g.Notes = append(g.Notes, EnvoyStatsHint)
	}
	for _, n := range nodes {
		if n.RequestRate > 0 {
			n.ErrorRate /= n.RequestRate
		}
		n.Health = opts.Thresholds.Judge(n.RequestRate, n.ErrorRate, n.P99Ms, false)
		g.Nodes = append(g.Nodes, *n)
	}
	sort.Slice(g.Nodes, func(i, j int) bool { return g.Nodes[i].ID < g.Nodes[j].ID })
	return g
}

// reporters are the proxies whose view of an edge is taken, in order of preference: the caller's
// sidecar for a call and the server's for a serve, then an ambient waypoint (which stands between
// both), then the other end. ztunnel reports TCP only, as source or destination.
var reporters = map[string][]string{
	"source":      {"source", "waypoint", "destination"},
	"destination": {"destination", "waypoint", "source"},
}

// edge computes an edge's figures from the first reporter in reporters[prefer] that saw its
// requests (a caller without a sidecar has no source view; an ambient one has a waypoint's),
// else the first that saw its connections. ok is false without traffic.
func (f *figures) edge(prefer string) (Edge, bool) {
	order := reporters[prefer]
	r, other := "", order[len(order)-1]
	for _, seen := range []map[string]float64{f.requests, f.tcp} {
		for _, c := range order {
			if r == "" && seen[c] > 0 {
				r = c
			}
		}
	}
	if r == "" {
		r = order[0]
	}
	e := Edge{Reporter: r}
	switch req := f.requests[r]; {
	case req > 0:
		e.Protocol = ProtocolHTTP
		if f.byProtocol[ProtocolGRPC] > f.byProtocol[ProtocolHTTP] {
			e.Protocol = ProtocolGRPC
		}
		e.RequestRate = req
		e.ErrorRate = f.errors[r] / req
		e.P50Ms, e.P99Ms = pick(f.p50, r, other), pick(f.p99, r, other)
		e.MTLSShare = share(f.mtls, f.plain)
	case f.tcp[r] > 0:
		e.Protocol = ProtocolTCP
		e.RequestRate = f.tcp[r]
		e.MTLSShare = share(f.tcpMTLS, f.tcpPlain)
	default:
		return Edge{}, false
	}
	return e, true
}

func pick(m map[string]float64, first, second string) *float64 {
	for _, r := range []string{first, second} {
		if v, ok := m[r]; ok {
			return &v
		}
	}
	return nil
}

func share(part, rest float64) *float64 {
	if part+rest == 0 {
		return nil
	}
	v := part / (part + rest)
	return &v
}

// unknown is Istio's value for a label it cannot know.
const unknown = "unknown"

func workloadNode(cluster, ns, name string) Node {
	if name == "" || name == unknown {
		// Clients without a sidecar are indistinguishable: one node per cluster.
		return Node{ID: fmt.Sprintf("workload:%s/unknown", cluster), Kind: KindWorkload, Cluster: cluster, Name: unknown}
	}
	return Node{ID: fmt.Sprintf("workload:%s/%s/%s", cluster, ns, name), Kind: KindWorkload, Cluster: cluster, Namespace: ns, Name: name}
}

func serviceNode(k flowKey, ix *mesh.Index) Node {
	name, ns := k.svcName, k.svcNS
	if name == "" || name == unknown {
		name, ns = k.host, ""
		domain := mesh.DefaultDomain
		if ix != nil {
			domain = ix.Domain()
		}
		if n, ok := mesh.ServiceName(k.host, domain); ok {
			name = n
			ns, _ = mesh.HostNamespace(k.host, "", domain)
		}
	}
	return Node{ID: fmt.Sprintf("service:%s/%s", k.dstCluster, k.host), Kind: KindService, Cluster: k.dstCluster,
		Namespace: ns, Name: name, Host: k.host}
}

// Node returns the node with id, or nil.
func (g *Graph) Node(id string) *Node {
	i := sort.Search(len(g.Nodes), func(i int) bool { return g.Nodes[i].ID >= id })
	if i < len(g.Nodes) && g.Nodes[i].ID == id {
		return &g.Nodes[i]
	}
	return nil
}
