// Package mesh holds the parts of Istio's semantics that rules, the webhook and the checker all
// need to agree on: how a host name resolves, what scope a policy has, and which
// PeerAuthentication is in force for a workload.
package mesh

import "strings"

// DefaultDomain is the cluster DNS domain Istio assumes.
const DefaultDomain = "cluster.local"

// FQDN expands a host the way Istio does for VirtualService and DestinationRule hosts: a name
// without dots is a service in namespace; anything else is taken as written.
func FQDN(host, namespace, domain string) string {
	if domain == "" {
		domain = DefaultDomain
	}
	if host == "" || strings.Contains(host, ".") || host == "*" {
		return host
	}
	return host + "." + namespace + ".svc." + domain
}

// IsMeshHost tells whether host names a Kubernetes service inside the mesh: a short name, or a
// name (or wildcard) under `.svc.<domain>`.
func IsMeshHost(host, domain string) bool {
	if domain == "" {
		domain = DefaultDomain
	}
	if host == "" || host == "*" {
		return false
	}
	if !strings.Contains(host, ".") {
		return true
	}
	return strings.HasSuffix(host, ".svc."+domain) || strings.HasSuffix(host, ".svc")
}

// HostNamespace returns the namespace of the service a mesh host names: the host's own
// namespace component, or namespace for a short name. ok is false for hosts outside the mesh and
// for wildcards spanning namespaces.
func HostNamespace(host, namespace, domain string) (ns string, ok bool) {
	if domain == "" {
		domain = DefaultDomain
	}
	if !IsMeshHost(host, domain) {
		return "", false
	}
	if !strings.Contains(host, ".") {
		return namespace, true
	}
	parts := strings.Split(strings.TrimSuffix(strings.TrimSuffix(host, "."+domain), ".svc"), ".")
	// parts is [name, namespace] or [*, namespace]
	if len(parts) != 2 || parts[1] == "*" || parts[1] == "" {
		return "", false
	}
	return parts[1], true
}

// Scoped tells whether a policy spec narrows itself to some workloads (a selector with labels,
// or target references). Istio treats an empty selector as no selector.
func Scoped(spec map[string]any) bool {
	if spec == nil {
		return false
	}
	if sel, ok := spec["selector"].(map[string]any); ok {
		if ml, ok := sel["matchLabels"].(map[string]any); ok && len(ml) > 0 {
			return true
		}
	}
	if tr, ok := spec["targetRef"].(map[string]any); ok && len(tr) > 0 {
		return true
	}
	if trs, ok := spec["targetRefs"].([]any); ok && len(trs) > 0 {
		return true
	}
	return false
}
