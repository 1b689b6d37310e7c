package checks

import (
	"fmt"
	"sort"
	"strings"

	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/meshguard/meshguard/internal/mesh"
)

// Istio's defaults for a route no VirtualService configures (and for a route without retries):
// 2 retries on these conditions, and no timeout.
const (
	istioDefaultRetryAttempts = 2
	istioDefaultRetryOn       = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
)

// EdgeConfig is what the configuration says about an edge.
type EdgeConfig struct {
	// VirtualService routing the destination host for the source ("namespace/name"), if any.
	VirtualService string `json:"virtualService,omitempty"`
	// Routes are that VirtualService's HTTP routes (the graph cannot tell which one matched).
	// Without a VirtualService it holds Istio's default route.
	Routes []RoutePolicy `json:"routes,omitempty"`
	// DestinationRule for the host ("namespace/name"), if any.
	DestinationRule string `json:"destinationRule,omitempty"`
	// OutlierDetection of the DestinationRule's traffic policy and of its subsets.
	OutlierDetection []OutlierPolicy `json:"outlierDetection,omitempty"`
	// MaxRetries is connectionPool.http.maxRetries, Envoy's limit on concurrent retries
	// (0: not set, Istio then allows 2^32-1).
	MaxRetries int64 `json:"maxRetries,omitempty"`
}

// RoutePolicy is the retry and timeout policy of one HTTP route.
type RoutePolicy struct {
	Route string `json:"route"` // name, or http[i]
	// Timeout is the route timeout ("" for none, Istio's default).
	Timeout string       `json:"timeout,omitempty"`
	Retries *RetryPolicy `json:"retries,omitempty"`
}

// RetryPolicy is a route's retries.
type RetryPolicy struct {
	Attempts      int64  `json:"attempts"`
	PerTryTimeout string `json:"perTryTimeout,omitempty"`
	RetryOn       string `json:"retryOn,omitempty"`
	// Default is true when these are Istio's defaults because nothing is configured.
	Default bool `json:"default,omitempty"`
}

// OutlierPolicy is the outlier detection at one level of a DestinationRule.
type OutlierPolicy struct {
	Subset                   string `json:"subset,omitempty"`
	Consecutive5xxErrors     int64  `json:"consecutive5xxErrors,omitempty"`
	ConsecutiveGatewayErrors int64  `json:"consecutiveGatewayErrors,omitempty"`
	Interval                 string `json:"interval,omitempty"`
	BaseEjectionTime         string `json:"baseEjectionTime,omitempty"`
	MaxEjectionPercent       int64  `json:"maxEjectionPercent,omitempty"`
}

// configJoin finds the VirtualService and DestinationRule of an edge.
type configJoin struct {
	domain, root string
	vss, drs     []*manifest.Object
}

func newConfigJoin(cfg *MeshConfig, domain, root string) *configJoin {
	j := &configJoin{domain: domain, root: root}
	if cfg == nil {
		return j
	}
	for _, o := range cfg.Objects {
		switch o.Kind {
		case manifest.KindVirtualService:
			j.vss = append(j.vss, o)
		case manifest.KindDestinationRule:
			j.drs = append(j.drs, o)
		}
	}
	return j
}

// edgeConfig resolves the configuration of traffic from a workload in srcNS to host.
func (j *configJoin) edgeConfig(srcNS, host, protocol string) EdgeConfig {
	var out EdgeConfig
	dstNS, _ := meshHostNamespace(host, j.domain)
	order := []string{srcNS, dstNS, j.root}
	if protocol == "http" {
		vs := j.pick(j.vss, order, func(o *manifest.Object) bool {
			spec := o.SpecMap()
			return appliesToMesh(spec) && j.anyHostMatches(stringList(spec["hosts"]), o.Namespace, host)
		})
		if vs != nil {
			out.VirtualService = vs.Namespace + "/" + vs.Name
			out.Routes = routesOf(vs.SpecMap())
		} else {
			out.Routes = []RoutePolicy{{Route: "default (no VirtualService)",
				Retries: &RetryPolicy{Attempts: istioDefaultRetryAttempts, RetryOn: istioDefaultRetryOn, Default: true}}}
		}
	}
	dr := j.pick(j.drs, order, func(o *manifest.Object) bool {
		h, _ := o.SpecMap()["host"].(string)
		return j.anyHostMatches([]string{h}, o.Namespace, host)
	})
	if dr != nil {
		out.DestinationRule = dr.Namespace + "/" + dr.Name
		spec := dr.SpecMap()
		tp, _ := spec["trafficPolicy"].(map[string]any)
		if od := outlierOf(tp, ""); od != nil {
			out.OutlierDetection = append(out.OutlierDetection, *od)
		}
		if cp, ok := tp["connectionPool"].(map[string]any); ok {
			if h, ok := cp["http"].(map[string]any); ok {
				out.MaxRetries = intOf(h["maxRetries"])
			}
		}
		subsets, _ := spec["subsets"].([]any)
		for _, s := range subsets {
			sm, _ := s.(map[string]any)
			name, _ := sm["name"].(string)
			stp, _ := sm["trafficPolicy"].(map[string]any)
			if od := outlierOf(stp, name); od != nil {
				out.OutlierDetection = append(out.OutlierDetection, *od)
			}
		}
	}
	return out
}

// pick returns the matching object Istio would use: the one in the client's namespace first,
// then the service's, then the root namespace's, then any other; the oldest within a namespace.
func (j *configJoin) pick(objs []*manifest.Object, order []string, match func(*manifest.Object) bool) *manifest.Object {
	rank := func(ns string) int {
		for i, o := range order {
			if o != "" && o == ns {
				return i
			}
		}
		return len(order)
	}
	var cands []*manifest.Object
	for _, o := range objs {
		if match(o) {
			cands = append(cands, o)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	sort.SliceStable(cands, func(a, b int) bool {
		ra, rb := rank(cands[a].Namespace), rank(cands[b].Namespace)
		if ra != rb {
			return ra < rb
		}
		if cands[a].Created != cands[b].Created {
			return cands[a].Created < cands[b].Created
		}
		return cands[a].Namespace+"/"+cands[a].Name < cands[b].Namespace+"/"+cands[b].Name
	})
	return cands[0]
}

// anyHostMatches tells whether one of hosts (as written in an object in namespace ns) covers
// host: equal once expanded, or a wildcard suffix.
func (j *configJoin) anyHostMatches(hosts []string, ns, host string) bool {
	for _, h := range hosts {
		h = mesh.FQDN(h, ns, j.domain)
		switch {
		case h == host, h == "*":
			return true
		case strings.HasPrefix(h, "*.") && strings.HasSuffix(host, h[1:]):
			return true
		}
	}
	return false
}

// appliesToMesh tells whether a VirtualService applies to sidecars: no gateways, or "mesh"
// among them.
func appliesToMesh(spec map[string]any) bool {
	gws := stringList(spec["gateways"])
	if len(gws) == 0 {
		return true
	}
	for _, g := range gws {
		if g == "mesh" {
			return true
		}
	}
	return false
}

func routesOf(spec map[string]any) []RoutePolicy {
	http, _ := spec["http"].([]any)
	var out []RoutePolicy
	for i, r := range http {
		rm, _ := r.(map[string]any)
		name, _ := rm["name"].(string)
		if name == "" {
			name = fmt.Sprintf("http[%d]", i)
		}
		p := RoutePolicy{Route: name}
		p.Timeout, _ = rm["timeout"].(string)
		if rt, ok := rm["retries"].(map[string]any); ok {
			p.Retries = &RetryPolicy{Attempts: intOf(rt["attempts"])}
			p.Retries.PerTryTimeout, _ = rt["perTryTimeout"].(string)
			p.Retries.RetryOn, _ = rt["retryOn"].(string)
		} else {
			p.Retries = &RetryPolicy{Attempts: istioDefaultRetryAttempts, RetryOn: istioDefaultRetryOn, Default: true}
		}
		out = append(out, p)
	}
	return out
}

func outlierOf(tp map[string]any, subset string) *OutlierPolicy {
	od, ok := tp["outlierDetection"].(map[string]any)
	if !ok {
		return nil
	}
	p := &OutlierPolicy{
		Subset:                   subset,
		Consecutive5xxErrors:     intOf(od["consecutive5xxErrors"]),
		ConsecutiveGatewayErrors: intOf(od["consecutiveGatewayErrors"]),
		MaxEjectionPercent:       intOf(od["maxEjectionPercent"]),
	}
	if p.Consecutive5xxErrors == 0 {
		p.Consecutive5xxErrors = intOf(od["consecutiveErrors"]) // deprecated spelling
	}
	p.Interval, _ = od["interval"].(string)
	p.BaseEjectionTime, _ = od["baseEjectionTime"].(string)
	return p
}

// stringList reads a list of strings from a generic document.
func stringList(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// intOf reads an integer from a generic document (YAML gives int64, JSON float64; protobuf
// wrappers such as UInt32Value may arrive as strings).
func intOf(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case int:
		return int64(n)
	case float64:
		return int64(n)
	case string:
		var i int64
		fmt.Sscan(n, &i)
		return i
	case map[string]any: // {value: N}
		return intOf(n["value"])
	}
	return 0
}
