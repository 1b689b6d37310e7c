package graph

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrNoService is returned by Impact when no service matches the name.
var ErrNoService = errors.New("no such service in the graph")

// adjacency indexes a graph's edges by node.
type adjacency struct {
	out, in map[string][]*Edge
	outRate map[string]float64
}

func (g *Graph) adjacency() adjacency {
	a := adjacency{out: map[string][]*Edge{}, in: map[string][]*Edge{}, outRate: map[string]float64{}}
	for i := range g.Edges {
		e := &g.Edges[i]
		a.out[e.Source] = append(a.out[e.Source], e)
		a.in[e.Destination] = append(a.in[e.Destination], e)
		a.outRate[e.Source] += e.RequestRate
	}
	return a
}

// fraction is the share of a node's outgoing traffic that takes e.
func (a adjacency) fraction(e *Edge) float64 {
	if t := a.outRate[e.Source]; t > 0 {
		return e.RequestRate / t
	}
	return 0
}

// Impact is the blast radius of a service and where its own trouble may come from.
type Impact struct {
	Service string `json:"service"`
	// Targets are the service nodes the name matched (one per cluster that serves it).
	Targets []string `json:"targets"`
	// Dependents are the nodes whose traffic reaches the service, nearest first.
	Dependents []Reach `json:"dependents"`
	// Dependencies are the nodes the service's traffic reaches, nearest first: the direction in
	// which to look for a root cause.
	Dependencies []Reach `json:"dependencies"`
}

// Reach is a node of an impact set.
type Reach struct {
	Node      string `json:"node"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Depth counts edges from the service (a direct caller's call edge is 1).
	Depth  int    `json:"depth"`
	Health Health `json:"health"`
	// Share (dependents only) is the share of the node's outgoing traffic that reaches the
	// service, splitting at every node in proportion to its observed edge rates.
	Share float64 `json:"share,omitempty"`
	// Team is who to call about the node, when the cluster says (Describe).
	Team string `json:"team,omitempty"`
}

// Services returns the service nodes a name means: a node ID, a host, name.namespace, or a short
// name when it is unique across namespaces.
func (g *Graph) Services(name string) ([]string, error) {
	var exact, short []string
	namespaces := map[string]bool{}
	for _, n := range g.Nodes {
		if n.Kind != KindService {
			continue
		}
		switch name {
		case n.ID, n.Host, n.Name + "." + n.Namespace:
			exact = append(exact, n.ID)
		case n.Name:
			short = append(short, n.ID)
			namespaces[n.Namespace] = true
		}
	}
	switch {
	case len(exact) > 0:
		return exact, nil
	case len(namespaces) > 1:
		return nil, fmt.Errorf("service %q is in several namespaces (%s): write name.namespace", name, strings.Join(sortedKeys(namespaces), ", "))
	case len(short) > 0:
		return short, nil
	}
	return nil, fmt.Errorf("service %q: %w", name, ErrNoService)
}

// Impact finds what depends on service (transitively, with the share of each dependent's traffic
// that passes through it) and what it depends on.
func (g *Graph) Impact(service string) (*Impact, error) {
	targets, err := g.Services(service)
	if err != nil {
		return nil, err
	}
	a := g.adjacency()
	isTarget := map[string]bool{}
	for _, t := range targets {
		isTarget[t] = true
	}
	// pass is the share of a node's outgoing traffic that reaches a target. A cycle back to a
	// node being computed counts as not reaching: each request is followed once.
	pass := map[string]float64{}
	onPath := map[string]bool{}
	var reach func(id string) float64
	reach = func(id string) float64 {
		if isTarget[id] {
			return 1
		}
		if v, ok := pass[id]; ok {
			return v
		}
		if onPath[id] {
			return 0
		}
		onPath[id] = true
		v := 0.0
		for _, e := range a.out[id] {
			v += a.fraction(e) * reach(e.Destination)
		}
		onPath[id] = false
		pass[id] = v
		return v
	}
	imp := &Impact{Service: service, Targets: targets}
	for id, depth := range g.distances(targets, func(id string) []string { return sources(a.in[id]) }) {
		if s := reach(id); s > 0 && !isTarget[id] {
			imp.Dependents = append(imp.Dependents, g.reach(id, depth, s))
		}
	}
	for id, depth := range g.distances(targets, func(id string) []string { return destinations(a.out[id]) }) {
		if !isTarget[id] {
			imp.Dependencies = append(imp.Dependencies, g.reach(id, depth, 0))
		}
	}
	sortReach(imp.Dependents)
	sortReach(imp.Dependencies)
	return imp, nil
}

func (g *Graph) reach(id string, depth int, share float64) Reach {
	n := g.Node(id)
	return Reach{Node: id, Kind: n.Kind, Namespace: n.Namespace, Name: n.Name, Depth: depth, Health: n.Health, Share: share, Team: n.Team}
}

// distances is a breadth-first search from the targets along next.
func (g *Graph) distances(from []string, next func(string) []string) map[string]int {
	dist := map[string]int{}
	queue := append([]string(nil), from...)
	for _, t := range from {
		dist[t] = 0
	}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		for _, n := range next(id) {
			if _, seen := dist[n]; !seen {
				dist[n] = dist[id] + 1
				queue = append(queue, n)
			}
		}
	}
	return dist
}

func sources(es []*Edge) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Source
	}
	return out
}

func destinations(es []*Edge) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Destination
	}
	return out
}

func sortReach(rs []Reach) {
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].Depth != rs[j].Depth {
			return rs[i].Depth < rs[j].Depth
		}
		return rs[i].Node < rs[j].Node
	})
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
