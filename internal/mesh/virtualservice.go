package mesh

import (
	"slices"
	"sort"

	"github.com/meshguard/meshguard/internal/manifest"
)

// VirtualService returns the VirtualService that routes host (a full name) for sidecars in
// namespace caller, or nil: among those bound to the mesh gateway (no gateways, or "mesh") and
// exported to the caller, the one whose host covers host most specifically, as Istio picks a
// route's virtual host by MostSpecificHostMatch; then the caller's namespace, the service's, the
// root namespace; then the oldest, as Istio keeps the oldest of conflicting rules.
func (ix *Index) VirtualService(host, caller string) *manifest.Object {
	svcNS, _ := HostNamespace(host, caller, ix.domain)
	type cand struct {
		o    *manifest.Object
		host string
	}
	var cands []cand
	var hosts []string
	for _, o := range ix.vss {
		spec := o.SpecMap()
		if !boundToMesh(spec) || !exported(stringList(spec["exportTo"]), nsOf(o), caller) {
			continue
		}
		for _, h := range stringList(spec["hosts"]) {
			if h = FQDN(h, nsOf(o), ix.domain); SubsetOf(host, h) {
				cands = append(cands, cand{o, h})
				hosts = append(hosts, h)
			}
		}
	}
	best, ok := MostSpecificMatch(host, hosts)
	if !ok {
		return nil
	}
	rank := func(ns string) int {
		for i, n := range []string{caller, svcNS, ix.root} {
			if n != "" && n == ns {
				return i
			}
		}
		return 3
	}
	cands = slices.DeleteFunc(cands, func(c cand) bool { return c.host != best })
	sort.SliceStable(cands, func(a, b int) bool {
		oa, ob := cands[a].o, cands[b].o
		if ra, rb := rank(nsOf(oa)), rank(nsOf(ob)); ra != rb {
			return ra < rb
		}
		if oa.Created != ob.Created {
			return oa.Created < ob.Created
		}
		return nsOf(oa)+"/"+oa.Name < nsOf(ob)+"/"+ob.Name
	})
	return cands[0].o
}

// boundToMesh tells whether a VirtualService applies to sidecars: no gateways, or "mesh" among
// them.
func boundToMesh(spec map[string]any) bool {
	gws := stringList(spec["gateways"])
	return len(gws) == 0 || slices.Contains(gws, "mesh")
}

// exported tells whether an object of namespace ns with exportTo is visible in namespace caller
// (no exportTo is Istio's default, "*").
func exported(exportTo []string, ns, caller string) bool {
	if len(exportTo) == 0 || slices.Contains(exportTo, "*") || slices.Contains(exportTo, caller) {
		return true
	}
	return ns == caller && slices.Contains(exportTo, ".")
}
