package graph

import (
	"fmt"
	"strings"

	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/meshguard/meshguard/internal/mesh"
)

// Policy is what Istio applies to a call: the routes of the VirtualService that routes the host
// for the caller (or Istio's default route), and the DestinationRule's circuit breaker.
type Policy struct {
	// VirtualService is "namespace/name", empty when none routes the host for the caller.
	VirtualService string `json:"virtualService,omitempty"`
	// Routes are the VirtualService's HTTP routes (metrics do not say which matched); without a
	// VirtualService, Istio's default route.
	Routes []Route `json:"routes,omitempty"`
	// Attempts is the most retries any route allows: the worst case amplification counts.
	Attempts        int64            `json:"attempts"`
	DestinationRule *DestinationRule `json:"destinationRule,omitempty"`
}

// Route is one HTTP route's timeout and retries.
type Route struct {
	Name string `json:"name"`
	// Timeout is the route timeout; empty: none (Istio's default).
	Timeout string `json:"timeout,omitempty"`
	Retries Retry  `json:"retries"`
}

// Retry is a route's retries as Istio configures them (mesh.RetryPolicy).
type Retry struct {
	// Attempts are retries after the first try; 0: none.
	Attempts      int64  `json:"attempts"`
	PerTryTimeout string `json:"perTryTimeout,omitempty"`
	RetryOn       string `json:"retryOn,omitempty"`
	// Default: nobody wrote retries and these are Istio's.
	Default bool `json:"default,omitempty"`
}

// DestinationRule is the circuit breaker of the rule that applies to the default cluster.
type DestinationRule struct {
	// Name lists the merged rules as "namespace/name".
	Name             string            `json:"name"`
	OutlierDetection *OutlierDetection `json:"outlierDetection,omitempty"`
	ConnectionPool   *ConnectionPool   `json:"connectionPool,omitempty"`
}

// OutlierDetection is the rule's outlierDetection.
type OutlierDetection struct {
	Consecutive5xxErrors     int64  `json:"consecutive5xxErrors,omitempty"`
	ConsecutiveGatewayErrors int64  `json:"consecutiveGatewayErrors,omitempty"`
	Interval                 string `json:"interval,omitempty"`
	BaseEjectionTime         string `json:"baseEjectionTime,omitempty"`
	MaxEjectionPercent       int64  `json:"maxEjectionPercent,omitempty"`
}

// ConnectionPool is the rule's connectionPool limits; zero: not set (Envoy's defaults).
type ConnectionPool struct {
	MaxConnections           int64  `json:"maxConnections,omitempty"`
	ConnectTimeout           string `json:"connectTimeout,omitempty"`
	HTTP1MaxPendingRequests  int64  `json:"http1MaxPendingRequests,omitempty"`
	HTTP2MaxRequests         int64  `json:"http2MaxRequests,omitempty"`
	MaxRequestsPerConnection int64  `json:"maxRequestsPerConnection,omitempty"`
	// MaxRetries is Envoy's bound on concurrent retries; not set, Istio allows 2^32-1.
	MaxRetries int64 `json:"maxRetries,omitempty"`
}

// policyJoin asks Istio's model (internal/mesh) what applies to a call.
type policyJoin struct{ ix *mesh.Index }

func (j policyJoin) policy(callerNS, host string) Policy {
	var p Policy
	var vs map[string]any
	if j.ix != nil {
		if o := j.ix.VirtualService(host, callerNS); o != nil {
			p.VirtualService = o.Namespace + "/" + o.Name
			vs = o.SpecMap()
		}
	}
	if p.VirtualService == "" {
		p.Routes = []Route{{Name: "default (no VirtualService)", Retries: retryOf(map[string]any{})}}
	} else {
		http, _ := vs["http"].([]any)
		for i, r := range http {
			rm, _ := r.(map[string]any)
			name, _ := rm["name"].(string)
			if name == "" {
				name = fmt.Sprintf("http[%d]", i)
			}
			route := Route{Name: name, Retries: retryOf(rm)}
			route.Timeout, _ = rm["timeout"].(string)
			p.Routes = append(p.Routes, route)
		}
	}
	for _, r := range p.Routes {
		p.Attempts = max(p.Attempts, r.Retries.Attempts)
	}
	p.DestinationRule = j.destinationRule(callerNS, host)
	return p
}

func retryOf(route map[string]any) Retry {
	r := mesh.RetryPolicy(route)
	return Retry{Attempts: r.Attempts, PerTryTimeout: r.PerTryTimeout, RetryOn: r.RetryOn, Default: r.Default}
}

func (j policyJoin) destinationRule(callerNS, host string) *DestinationRule {
	if j.ix == nil {
		return nil
	}
	dr := j.ix.DestinationRule(host, callerNS)
	if dr == nil {
		return nil
	}
	out := &DestinationRule{Name: strings.Join(dr.Names(), ", ")}
	tp := dr.Policy("")
	if od, ok := tp["outlierDetection"].(map[string]any); ok {
		out.OutlierDetection = &OutlierDetection{
			Consecutive5xxErrors:     manifest.Int(od["consecutive5xxErrors"]),
			ConsecutiveGatewayErrors: manifest.Int(od["consecutiveGatewayErrors"]),
			MaxEjectionPercent:       manifest.Int(od["maxEjectionPercent"]),
		}
		if out.OutlierDetection.Consecutive5xxErrors == 0 {
			out.OutlierDetection.Consecutive5xxErrors = manifest.Int(od["consecutiveErrors"]) // deprecated spelling
		}
		out.OutlierDetection.Interval, _ = od["interval"].(string)
		out.OutlierDetection.BaseEjectionTime, _ = od["baseEjectionTime"].(string)
	}
	if cp, ok := tp["connectionPool"].(map[string]any); ok {
		tcp, _ := cp["tcp"].(map[string]any)
		http, _ := cp["http"].(map[string]any)
		pool := &ConnectionPool{
			MaxConnections:           manifest.Int(tcp["maxConnections"]),
			HTTP1MaxPendingRequests:  manifest.Int(http["http1MaxPendingRequests"]),
			HTTP2MaxRequests:         manifest.Int(http["http2MaxRequests"]),
			MaxRequestsPerConnection: manifest.Int(http["maxRequestsPerConnection"]),
			MaxRetries:               manifest.Int(http["maxRetries"]),
		}
		pool.ConnectTimeout, _ = tcp["connectTimeout"].(string)
		out.ConnectionPool = pool
	}
	return out
}
