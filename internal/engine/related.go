package engine

import (
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/meshguard/meshguard/internal/mesh"
)

// relatedFor tells the rules what the inventory says about obj, as Istio's model in
// internal/mesh resolves it, so that no rule re-implements host or policy resolution:
//   - VirtualService: per destination host as written, its FQDN, the DestinationRule Istio
//     applies for its callers (sidecars of its namespace, or its gateway), and that rule's policy per subset
//     ("" is the default cluster); and every destination that names a subset, wherever it is
//     (http route, mirror, tcp, tls).
//   - DestinationRule: the mTLS modes the workloads behind its host accept, per port.
//   - AuthorizationPolicy: the mTLS modes of the workloads it selects.
//   - PeerAuthentication, Telemetry: the group of policies competing for its scope.
func (e *Engine) relatedFor(obj *manifest.Object, inv Inventory) map[string]any {
	ns := obj.Namespace
	if ns == "" {
		ns = mesh.DefaultNamespace
	}
	ix := inv.Mesh()
	switch obj.Kind {
	case manifest.KindVirtualService:
		hosts := map[string]any{}
		var subsetRoutes []any
		caller := callerNamespace(obj, ns)
		for _, d := range destinations(obj) {
			if _, ok := hosts[d.host]; !ok {
				fqdn := mesh.FQDN(d.host, ns, ix.Domain())
				hosts[d.host] = hostFacts(fqdn, ix.DestinationRule(fqdn, caller))
			}
			if d.subset != "" {
				subsetRoutes = append(subsetRoutes, map[string]any{"field": d.field, "host": d.host, "subset": d.subset})
			}
		}
		return map[string]any{"hosts": hosts, "subsetRoutes": subsetRoutes}
	case manifest.KindDestinationRule:
		host := specString(obj, "host")
		top, ok := ix.HostMTLS(host, ns, 0)
		if !ok {
			return noRelated
		}
		m := mtlsFacts(top)
		ports := map[string]any{}
		for _, site := range Sites(obj, ScopeTrafficPolicy) {
			port, _ := site.Value["port"].(map[string]any)
			if n := manifest.Int(port["number"]); n > 0 {
				h, _ := ix.HostMTLS(host, ns, uint32(n))
				ports[strconv.FormatInt(n, 10)] = mtlsFacts(h)
			}
		}
		m["ports"] = ports
		return map[string]any{"mtls": m}
	case manifest.KindAuthorizationPolicy:
		spec := obj.SpecMap()
		if _, ok := spec["targetRef"]; ok {
			return noRelated // waypoint policies: the workloads are not known from labels
		}
		if _, ok := spec["targetRefs"]; ok {
			return noRelated
		}
		h := ix.SelectedMTLS(ns, mesh.MatchLabels(spec["selector"]))
		return map[string]any{"mtls": mtlsFacts(h)}
	case manifest.KindPeerAuthentication, manifest.KindTelemetry:
		if scoped(obj) || obj.Namespace == "" {
			// Without a namespace its neighbours are unknown until it is applied (lint -n places it).
			return map[string]any{"scoped": true}
		}
		return map[string]any{"scoped": false, "group": competing(obj, inv.List(obj.Kind, obj.Namespace))}
	}
	return noRelated
}

// callerNamespace is where the proxies that use a VirtualService's routes run: its own
// namespace for sidecars, or, for a VirtualService bound only to gateways, the first gateway's
// namespace (`ns/name`; a bare name is in the VirtualService's namespace), whose proxy then
// looks up DestinationRules.
func callerNamespace(vs *manifest.Object, ns string) string {
	spec := vs.SpecMap()
	gws, _ := spec["gateways"].([]any)
	for _, g := range gws {
		if g == "mesh" {
			return ns
		}
	}
	if len(gws) == 0 {
		return ns
	}
	if g, _ := gws[0].(string); strings.Contains(g, "/") && !strings.HasPrefix(g, "./") {
		return g[:strings.Index(g, "/")]
	}
	return ns
}

// competing lists the names of the unscoped policies of obj's kind in its namespace, in the
// order Istio ranks them (oldest first, then by name; not yet created last), when obj is the
// last of them and there are several: each group is reported once, on the member Istio
// surely ignores.
func competing(obj *manifest.Object, siblings []*manifest.Object) []any {
	var group []*manifest.Object
	for _, o := range siblings {
		// A name defined in several files of a lint run is one member, not several.
		if !scoped(o) && !slices.ContainsFunc(group, func(g *manifest.Object) bool { return g.Name == o.Name }) {
			group = append(group, o)
		}
	}
	if len(group) < 2 {
		return nil
	}
	sort.SliceStable(group, func(i, j int) bool {
		ci, cj := group[i].Created, group[j].Created
		if (ci == "") != (cj == "") {
			return cj == ""
		}
		if ci != cj {
			return ci < cj
		}
		return group[i].Name < group[j].Name
	})
	if group[len(group)-1].Name != obj.Name {
		return nil
	}
	names := make([]any, len(group))
	for i, o := range group {
		names[i] = o.Name
	}
	return names
}

// mtlsFacts turns resolved modes into what rules read: whether the workloads surely require
// mutual TLS (strict) or surely accept plaintext (plaintext), and the policies deciding it.
func mtlsFacts(h mesh.HostMTLS) map[string]any {
	plaintext := len(h.Modes) > 0
	var modes, policies []any
	for _, e := range h.Modes {
		if e.Mode == mesh.ModeStrict {
			plaintext = false
		}
		modes = append(modes, string(e.Mode))
		p := "no PeerAuthentication: Istio's default, PERMISSIVE"
		if e.Policy != nil {
			p = string(e.Level) + " policy " + e.Policy.Namespace + "/" + e.Policy.Name
		}
		if !slices.Contains(policies, any(p)) {
			policies = append(policies, p)
		}
	}
	return map[string]any{
		"namespace": h.Namespace, "workloads": h.Workloads, "strict": h.Strict(), "plaintext": plaintext,
		"modes": modes, "policies": policies,
	}
}

// hostFacts says what the DestinationRule Istio applies to a host configures, per subset: "" is
// the default cluster, which routes without a subset use; a subset's policy is merged over the
// top-level one, and settings written only on a subset are not the default cluster's.
func hostFacts(fqdn string, dr *mesh.DestinationRule) map[string]any {
	facts := map[string]any{"fqdn": fqdn, "destinationRules": []any{}, "subsets": []any{},
		"policies": map[string]any{"": policyFacts(nil)}}
	if dr == nil {
		return facts
	}
	var names, subsets []any
	for _, n := range dr.Names() {
		names = append(names, n)
	}
	policies := map[string]any{"": policyFacts(dr.Policy(""))}
	for _, s := range dr.Subsets {
		subsets = append(subsets, s.Name)
		policies[s.Name] = policyFacts(dr.Policy(s.Name))
	}
	facts["destinationRules"], facts["subsets"], facts["policies"] = names, subsets, policies
	return facts
}

// policyFacts reads a merged traffic policy: outlier detection and a retry budget (retryBudget
// or connectionPool.http.maxRetries), at the top or on any port.
func policyFacts(tp map[string]any) map[string]any {
	var outlier, budget bool
	levels := []map[string]any{tp}
	pls, _ := tp["portLevelSettings"].([]any)
	for _, p := range pls {
		if m, ok := p.(map[string]any); ok {
			levels = append(levels, m)
		}
	}
	for _, l := range levels {
		outlier = outlier || l["outlierDetection"] != nil
		budget = budget || l["retryBudget"] != nil
		cp, _ := l["connectionPool"].(map[string]any)
		h, _ := cp["http"].(map[string]any)
		budget = budget || h["maxRetries"] != nil
	}
	return map[string]any{"outlierDetection": outlier, "retryBudget": budget}
}

type destination struct {
	field, host, subset string
}

// destinations lists every destination of a VirtualService with its field path: HTTP routes
// and their mirrors, TCP and TLS routes.
func destinations(o *manifest.Object) []destination {
	spec := o.SpecMap()
	var out []destination
	add := func(path string, d any) {
		dm, _ := d.(map[string]any)
		host, _ := dm["host"].(string)
		subset, _ := dm["subset"].(string)
		if host != "" {
			out = append(out, destination{field: path, host: host, subset: subset})
		}
	}
	for _, kind := range []string{"http", "tcp", "tls"} {
		routes, _ := spec[kind].([]any)
		for i, rt := range routes {
			rm, _ := rt.(map[string]any)
			base := manifest.JoinIndex("spec."+kind, i)
			dests, _ := rm["route"].([]any)
			for j, d := range dests {
				dm, _ := d.(map[string]any)
				add(manifest.JoinIndex(base+".route", j)+".destination", dm["destination"])
			}
			if m, ok := rm["mirror"]; ok {
				add(base+".mirror", m)
			}
			mirrors, _ := rm["mirrors"].([]any)
			for j, m := range mirrors {
				mm, _ := m.(map[string]any)
				add(manifest.JoinIndex(base+".mirrors", j)+".destination", mm["destination"])
			}
		}
	}
	return out
}
