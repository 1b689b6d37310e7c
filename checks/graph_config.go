package checks

import (
	"fmt"
	"strings"

	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/meshguard/meshguard/internal/mesh"
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

// configJoin finds the VirtualService and DestinationRule of an edge by asking Istio's model.
type configJoin struct {
	ix *mesh.Index
}

func newConfigJoin(cfg *MeshConfig, domain, root string) *configJoin {
	var objs []*manifest.Object
	if cfg != nil {
		objs = cfg.Objects
	}
	return &configJoin{ix: mesh.NewIndex(root, domain, objs, nil)}
}

// edgeConfig resolves the configuration of traffic from a workload in srcNS to host.
func (j *configJoin) edgeConfig(srcNS, host, protocol string) EdgeConfig {
	var out EdgeConfig
	if protocol == "http" {
		if vs := j.ix.VirtualService(host, srcNS); vs != nil {
			out.VirtualService = vs.Namespace + "/" + vs.Name
			out.Routes = routesOf(vs.SpecMap())
		} else {
			out.Routes = []RoutePolicy{{Route: "default (no VirtualService)", Retries: retryPolicy(map[string]any{})}}
		}
	}
	dr := j.ix.DestinationRule(host, srcNS)
	if dr == nil {
		return out
	}
	out.DestinationRule = strings.Join(dr.Names(), ", ")
	tp := dr.Policy("")
	if od := outlierOf(tp, ""); od != nil {
		out.OutlierDetection = append(out.OutlierDetection, *od)
	}
	if cp, ok := tp["connectionPool"].(map[string]any); ok {
		if h, ok := cp["http"].(map[string]any); ok {
			out.MaxRetries = intOf(h["maxRetries"])
		}
	}
	for _, s := range dr.Subsets {
		if od := outlierOf(s.TrafficPolicy, s.Name); od != nil {
			out.OutlierDetection = append(out.OutlierDetection, *od)
		}
	}
	return out
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
		p.Retries = retryPolicy(rm)
		out = append(out, p)
	}
	return out
}

// retryPolicy is the route's retries as Istio configures them: written, or Istio's default.
func retryPolicy(route map[string]any) *RetryPolicy {
	r := mesh.RetryPolicy(route)
	return &RetryPolicy{Attempts: r.Attempts, PerTryTimeout: r.PerTryTimeout, RetryOn: r.RetryOn, Default: r.Default}
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
