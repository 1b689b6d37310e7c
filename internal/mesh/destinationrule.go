package mesh

import (
	"slices"
	"sort"

	"github.com/meshguard/meshguard/internal/manifest"
)

// DestinationRule is what Istio makes of the DestinationRules that apply to one host for one
// caller: Istio's ConsolidatedDestRule. Several rules for one host and namespace are merged as
// mergeDestinationRule (pilot/pkg/model/destination_rule.go) merges them: subsets are
// concatenated (the first of a name wins) and the top-level traffic policy is the oldest rule's
// that has one.
type DestinationRule struct {
	// Host is the rule's host as Istio resolved it (it may be a wildcard covering the host asked).
	Host string
	// Namespace is the namespace the rules live in.
	Namespace string
	// Sources are the merged objects, oldest first.
	Sources []*manifest.Object
	// TrafficPolicy is the top-level traffic policy, nil when no merged rule has one.
	TrafficPolicy map[string]any
	// Subsets are the merged subsets, in order.
	Subsets []Subset

	exportTo []string
	selector map[string]string
}

// Subset is one DestinationRule subset.
type Subset struct {
	Name          string
	Labels        map[string]string
	TrafficPolicy map[string]any
}

// Names lists the sources as namespace/name, each once (a lint run may hold one object in
// several files).
func (d *DestinationRule) Names() []string {
	out := make([]string, 0, len(d.Sources))
	for _, o := range d.Sources {
		if n := o.Namespace + "/" + o.Name; !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// Subset returns the subset called name, or nil.
func (d *DestinationRule) Subset(name string) *Subset {
	for i := range d.Subsets {
		if d.Subsets[i].Name == name {
			return &d.Subsets[i]
		}
	}
	return nil
}

// Policy returns the traffic policy of traffic to subset ("" for the default cluster, the one a
// route without subset uses): the subset's policy merged field by field over the top-level one,
// as Istio's MergeTrafficPolicy does. Settings written only on a subset are not in the default
// cluster's policy.
func (d *DestinationRule) Policy(subset string) map[string]any {
	if subset == "" {
		return d.TrafficPolicy
	}
	s := d.Subset(subset)
	if s == nil || s.TrafficPolicy == nil {
		return d.TrafficPolicy
	}
	out := make(map[string]any, len(d.TrafficPolicy)+len(s.TrafficPolicy))
	for k, v := range d.TrafficPolicy {
		out[k] = v
	}
	for k, v := range s.TrafficPolicy {
		out[k] = v
	}
	return out
}

// destinationRules indexes the DestinationRules of one namespace as Istio's setDestinationRules
// (pilot/pkg/model/push_context.go) does: local holds the rules visible to callers in the
// namespace, exported those other namespaces may see, and rootLocal (root namespace only) the
// root namespace's private ones.
type destinationRules struct {
	local, exported, rootLocal *hostRules
}

// hostRules are consolidated rules by host, Istio's specificDestRules and wildcardDestRules.
type hostRules struct {
	byHost    map[string][]*DestinationRule
	wildcards []string
}

func newHostRules() *hostRules { return &hostRules{byHost: map[string][]*DestinationRule{}} }

func newDestinationRules(ns, root string, objs []*manifest.Object, domain string) *destinationRules {
	// Rules with a workload selector first, then oldest first: sortConfigBySelectorAndCreationTime.
	objs = slices.Clone(objs)
	sort.SliceStable(objs, func(i, j int) bool {
		si, sj := drSelector(objs[i]) != nil, drSelector(objs[j]) != nil
		if si != sj {
			return si
		}
		if objs[i].Created != objs[j].Created {
			return objs[i].Created < objs[j].Created
		}
		return objs[i].Name < objs[j].Name
	})
	d := &destinationRules{local: newHostRules(), exported: newHostRules()}
	if ns == root {
		d.rootLocal = newHostRules()
	}
	for _, o := range objs {
		spec := o.SpecMap()
		host, _ := spec["host"].(string)
		host = FQDN(host, ns, domain)
		exportTo := []string{}
		if sel := drSelector(o); sel == nil {
			for _, e := range stringList(spec["exportTo"]) {
				if !slices.Contains(exportTo, e) {
					exportTo = append(exportTo, e)
				}
			}
			sort.Strings(exportTo)
		} else {
			// Rules with a workload selector are never exported.
			exportTo = []string{"."}
		}
		if len(exportTo) == 0 || slices.Contains(exportTo, "*") || slices.Contains(exportTo, ".") || slices.Contains(exportTo, ns) {
			merge(d.local, host, o, exportTo)
		}
		// Istio's default exportTo for DestinationRules is "*" unless the mesh config says otherwise.
		privateOnly := len(exportTo) == 1 && (exportTo[0] == "." || exportTo[0] == ns)
		switch {
		case !privateOnly:
			merge(d.exported, host, o, exportTo)
		case ns == root:
			merge(d.rootLocal, host, o, exportTo)
		}
	}
	return d
}

// merge adds one rule to the consolidated rules of its host, as mergeDestinationRule does with
// ENABLE_ENHANCED_DESTINATIONRULE_MERGE (Istio's default): rules merge only when their exportTo
// sets are equal (a superset also merges, and is kept on its own too), and rules with different
// workload selectors stay apart.
func merge(into *hostRules, host string, o *manifest.Object, exportTo []string) {
	sel := drSelector(o)
	list := into.byHost[host]
	separately := true
	for _, mdr := range list {
		switch {
		case slices.Equal(exportTo, mdr.exportTo):
			separately = false
		case len(mdr.exportTo) > 0 && superset(exportTo, mdr.exportTo):
			separately = true
		default:
			continue
		}
		bothWith := sel != nil && mdr.selector != nil
		if bothWith && !equalLabels(sel, mdr.selector) {
			separately = true
			continue
		}
		if (sel == nil && mdr.selector == nil) || bothWith {
			separately = false
		}
		mdr.absorb(o)
	}
	if separately {
		if len(list) == 0 && wildcard(host) {
			into.wildcards = append(into.wildcards, host)
		}
		into.byHost[host] = append(list, newConsolidated(host, o, exportTo, sel))
	}
}

func newConsolidated(host string, o *manifest.Object, exportTo []string, sel map[string]string) *DestinationRule {
	d := &DestinationRule{Host: host, Namespace: o.Namespace, exportTo: exportTo, selector: sel}
	d.absorb(o)
	return d
}

// absorb merges o into d: its new subsets are appended, and its top-level policy is taken only
// when d has none yet.
func (d *DestinationRule) absorb(o *manifest.Object) {
	d.Sources = append(d.Sources, o)
	spec := o.SpecMap()
	if d.TrafficPolicy == nil {
		d.TrafficPolicy, _ = spec["trafficPolicy"].(map[string]any)
	}
	subsets, _ := spec["subsets"].([]any)
	for _, s := range subsets {
		m, _ := s.(map[string]any)
		name, _ := m["name"].(string)
		if d.Subset(name) != nil {
			continue // Istio keeps the first subset of a name and counts a duplicate
		}
		sub := Subset{Name: name, Labels: stringMap(m["labels"])}
		sub.TrafficPolicy, _ = m["trafficPolicy"].(map[string]any)
		d.Subsets = append(d.Subsets, sub)
	}
}

// lookup returns the consolidated rules for the most specific host of m matching host.
func lookup(m *hostRules, host string) []*DestinationRule {
	if m == nil {
		return nil
	}
	if l, ok := m.byHost[host]; ok {
		return l
	}
	if h, ok := MostSpecificMatch(host, m.wildcards); ok {
		return m.byHost[h]
	}
	return nil
}

// exportedTo keeps the rules exported to a caller namespace, as
// getExportedDestinationRuleFromNamespace does.
func exportedTo(list []*DestinationRule, caller string) []*DestinationRule {
	var out []*DestinationRule
	for _, d := range list {
		if len(d.exportTo) == 0 || slices.Contains(d.exportTo, "*") || slices.Contains(d.exportTo, caller) {
			out = append(out, d)
		}
	}
	return out
}

// catchAll picks, among the rules found for a host, the one a caller without matching workload
// selector gets: the last one without selector, as SidecarScope.DestinationRule
// (pilot/pkg/model/sidecar.go) does.
func catchAll(list []*DestinationRule) *DestinationRule {
	var out *DestinationRule
	for _, d := range list {
		if d.selector == nil {
			out = d
		}
	}
	return out
}

func drSelector(o *manifest.Object) map[string]string {
	spec := o.SpecMap()
	ws, _ := spec["workloadSelector"].(map[string]any)
	if len(ws) == 0 {
		return nil
	}
	ml := stringMap(ws["matchLabels"])
	if ml == nil {
		return map[string]string{}
	}
	return ml
}

func superset(a, b []string) bool {
	for _, x := range b {
		if !slices.Contains(a, x) {
			return false
		}
	}
	return true
}

func equalLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

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

func stringMap(v any) map[string]string {
	m, _ := v.(map[string]any)
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, x := range m {
		s, _ := x.(string)
		out[k] = s
	}
	return out
}

// nsOf is the namespace an object lands in.
func nsOf(o *manifest.Object) string {
	if o.Namespace == "" {
		return DefaultNamespace
	}
	return o.Namespace
}
