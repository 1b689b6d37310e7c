// Package mesh is meshguard's one model of Istio's semantics: how a host name resolves and
// matches, which DestinationRule applies to a host for a caller, and which mTLS mode a workload
// accepts on a port. Rules, the webhook, the checker and the graph all ask here, so that they
// agree with each other and with Istio. Each function names the Istio code it follows.
package mesh

import (
	"net/netip"
	"strings"
)

// DefaultDomain is the cluster DNS domain Istio assumes.
const DefaultDomain = "cluster.local"

// DefaultNamespace is where kubectl puts an object that names no namespace.
const DefaultNamespace = "default"

// FQDN expands a host as Istio's ResolveShortnameToFQDN (pilot/pkg/model/config.go) does: only a
// name without dots becomes `<name>.<namespace>.svc.<domain>`; `*`, IP addresses and names with
// dots are taken as written, so `reviews.bookinfo.svc` stays what it is. An empty namespace is
// kubectl's default one, where such an object lands when applied.
func FQDN(host, namespace, domain string) string {
	if host == "" || host == "*" || strings.Contains(host, ".") {
		return host
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return host
	}
	if namespace == "" {
		namespace = DefaultNamespace
	}
	return host + "." + namespace + ".svc." + orDomain(domain)
}

func orDomain(domain string) string {
	if domain == "" {
		return DefaultDomain
	}
	return domain
}

// Matches tells whether two (possibly wildcarded) hosts overlap, as Istio's host.Name.Matches
// (pkg/config/host/name.go).
func Matches(a, b string) bool {
	aw, bw := wildcard(a), wildcard(b)
	switch {
	case aw && bw:
		if len(a) < len(b) {
			return strings.HasSuffix(b[1:], a[1:])
		}
		return strings.HasSuffix(a[1:], b[1:])
	case aw:
		return strings.HasSuffix(b, a[1:])
	case bw:
		return strings.HasSuffix(a, b[1:])
	}
	return a == b
}

// SubsetOf tells whether host a is covered by host b, as Istio's host.Name.SubsetOf.
func SubsetOf(a, b string) bool {
	aw, bw := wildcard(a), wildcard(b)
	switch {
	case aw && bw:
		return len(a) >= len(b) && strings.HasSuffix(a[1:], b[1:])
	case aw:
		return false
	case bw:
		return strings.HasSuffix(a, b[1:])
	}
	return a == b
}

// MoreSpecific orders hosts as Istio's host.MoreSpecific (pkg/config/host/names.go): names
// before wildcards, then longer before shorter, then alphabetically.
func MoreSpecific(a, b string) bool {
	aw, bw := wildcard(a), wildcard(b)
	if aw != bw {
		return bw
	}
	if len(a) == len(b) {
		return a < b
	}
	return len(a) > len(b)
}

// MostSpecificMatch returns, among candidates, the host Istio's MostSpecificHostMatch
// (pilot/pkg/model/config.go) picks for needle: an exact match first, else the most specific
// wildcard whose suffix covers needle.
func MostSpecificMatch(needle string, candidates []string) (string, bool) {
	var best string
	found := false
	for _, c := range candidates {
		if c == needle {
			return c, true
		}
	}
	n := needle
	if wildcard(needle) {
		n = needle[1:]
	}
	for _, c := range candidates {
		if !wildcard(c) || !strings.HasSuffix(n, c[1:]) {
			continue
		}
		if !found || MoreSpecific(c, best) {
			best, found = c, true
		}
	}
	return best, found
}

func wildcard(h string) bool { return h != "" && h[0] == '*' }

// IsMeshHost tells whether host, as written in an object, reaches Kubernetes
// services of the mesh: a short name, a name under `.svc.<domain>`, or a wildcard covering such
// names (`*.shop.svc.cluster.local`, `*.local`, `*`). Istio's registry knows services only by
// their full name, so `reviews.bookinfo.svc` and `reviews.bookinfo` are not mesh hosts.
func IsMeshHost(host, domain string) bool {
	if host == "" {
		return false
	}
	fqdn := FQDN(host, DefaultNamespace, domain)
	return Matches(fqdn, "*.svc."+orDomain(domain)) && (wildcard(fqdn) || serviceParts(fqdn, domain) != nil)
}

// serviceParts splits `name.namespace.svc.<domain>` (or `*.namespace.svc.<domain>`) into name
// and namespace; nil for any other host.
func serviceParts(fqdn, domain string) []string {
	rest, ok := strings.CutSuffix(fqdn, ".svc."+orDomain(domain))
	if !ok {
		return nil
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" || parts[1] == "*" {
		return nil
	}
	return parts
}

// HostNamespace returns the namespace of the services a host names (as written in an object of
// namespace ns): the namespace component of `name.ns.svc.<domain>` or `*.ns.svc.<domain>`, or ns
// for a short name. ok is false for hosts outside the mesh and for wildcards spanning namespaces.
func HostNamespace(host, ns, domain string) (string, bool) {
	p := serviceParts(FQDN(host, ns, domain), domain)
	if p == nil {
		return "", false
	}
	return p[1], true
}

// ServiceName returns the service name of `name.ns.svc.<domain>`; ok is false for wildcards and
// hosts outside the mesh.
func ServiceName(fqdn, domain string) (string, bool) {
	p := serviceParts(fqdn, domain)
	if p == nil || p[0] == "*" {
		return "", false
	}
	return p[0], true
}

// Scoped tells whether a policy spec narrows itself to some workloads (a selector with labels,
// or target references). Istio treats an empty selector as no selector.
func Scoped(spec map[string]any) bool {
	if spec == nil {
		return false
	}
	if len(MatchLabels(spec["selector"])) > 0 {
		return true
	}
	if tr, ok := spec["targetRef"].(map[string]any); ok && len(tr) > 0 {
		return true
	}
	if trs, ok := spec["targetRefs"].([]any); ok && len(trs) > 0 {
		return true
	}
	return false
}

// MatchLabels reads `{matchLabels: {...}}` (PeerAuthentication and AuthorizationPolicy
// selectors); nil when there is none.
func MatchLabels(sel any) map[string]string {
	m, _ := sel.(map[string]any)
	ml, _ := m["matchLabels"].(map[string]any)
	if len(ml) == 0 {
		return nil
	}
	out := make(map[string]string, len(ml))
	for k, v := range ml {
		s, _ := v.(string)
		out[k] = s
	}
	return out
}
