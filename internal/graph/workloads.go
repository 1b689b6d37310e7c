package graph

import (
	"sort"
	"time"
)

// Workload is what the cluster holds about a workload: the label and annotation maps its owner
// team and tier are looked up in, and when it was last rolled out.
type Workload struct {
	Namespace, Name string
	// Metadata are searched in order, so the most specific comes first: the pod template's
	// labels (what the pods, and so Istio, carry), then the object's labels and annotations.
	Metadata []map[string]string
	// LastDeploy is the rollout time: the newest ReplicaSet's creation, else the object's.
	LastDeploy time.Time
}

// MetadataKeys name the labels or annotations that give the owner team and the tier, each
// list tried in order.
type MetadataKeys struct {
	Team, Tier []string
}

// Describe sets the team, tier and last deploy of every workload node that has a Workload of
// the same namespace and name. The cluster read is one cluster, so a name in several clusters
// of the mesh is taken to be the same workload (Istio's namespace sameness). A workload the
// cluster does not hold keeps its fields empty. A service then takes the team and tier the
// workloads behind it agree on, and the newest of their deploys: what changed last behind it.
func (g *Graph) Describe(workloads []Workload, keys MetadataKeys) {
	byName := make(map[[2]string]*Workload, len(workloads))
	for i := range workloads {
		w := &workloads[i]
		byName[[2]string{w.Namespace, w.Name}] = w
	}
	for i := range g.Nodes {
		n := &g.Nodes[i]
		if n.Kind != KindWorkload {
			continue
		}
		w, ok := byName[[2]string{n.Namespace, n.Name}]
		if !ok {
			continue
		}
		n.Team = lookup(keys.Team, w.Metadata)
		n.Tier = lookup(keys.Tier, w.Metadata)
		if !w.LastDeploy.IsZero() {
			t := w.LastDeploy.UTC()
			n.LastDeploy = &t
		}
	}
	behind := map[string][]*Node{}
	for _, e := range g.Edges {
		if e.Kind == EdgeServe {
			behind[e.Source] = append(behind[e.Source], g.Node(e.Destination))
		}
	}
	for id, ws := range behind {
		s := g.Node(id)
		s.Team = agreed(ws, func(n *Node) string { return n.Team })
		s.Tier = agreed(ws, func(n *Node) string { return n.Tier })
		for _, w := range ws {
			if w.LastDeploy != nil && (s.LastDeploy == nil || w.LastDeploy.After(*s.LastDeploy)) {
				t := *w.LastDeploy
				s.LastDeploy = &t
			}
		}
	}
}

// agreed is the value every node has, or "" when one differs or has none: a service owned by
// two teams has no single owner to show.
func agreed(nodes []*Node, value func(*Node) string) string {
	v := value(nodes[0])
	for _, n := range nodes[1:] {
		if value(n) != v {
			return ""
		}
	}
	return v
}

// lookup returns the value of the first key set in any of the maps: the key order is the
// user's precedence, the map order breaks ties within one key.
func lookup(keys []string, maps []map[string]string) string {
	for _, k := range keys {
		for _, m := range maps {
			if v := m[k]; v != "" {
				return v
			}
		}
	}
	return ""
}

// WorkloadNamespaces lists the namespaces of the graph's workloads, sorted: where a cluster
// read for Describe has to look.
func (g *Graph) WorkloadNamespaces() []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range g.Nodes {
		if n.Kind == KindWorkload && n.Namespace != "" && !seen[n.Namespace] {
			seen[n.Namespace] = true
			out = append(out, n.Namespace)
		}
	}
	sort.Strings(out)
	return out
}
