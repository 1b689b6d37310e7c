package graph

import (
	"sort"
	"strings"
)

// Bounds of the chain search: real meshes are shallow, and a graph whose paths explode is cut
// (and says so) rather than exhausting the checker.
const (
	MaxChainHops = 32
	MaxChains    = 20000
	// worstCaseCap keeps products finite (JSON has no infinity); a chain at the cap is Saturated.
	worstCaseCap = 1e15
)

// Amplification is retry amplification along the observed call chains.
type Amplification struct {
	Chains []Chain `json:"chains"`
	// Truncated: the search stopped at MaxChains paths; chains are missing.
	Truncated bool `json:"truncated,omitempty"`
}

// Chain is a path of calls from an entry workload (one nobody in the graph calls) through
// services. Workload paths that pass through the same services are one chain.
type Chain struct {
	Entry string `json:"entry"`
	Hops  []Hop  `json:"hops"`
	// WorstCase is the last hop's: requests one call at the entry can cause there.
	WorstCase float64 `json:"worstCase"`
	// Share is the share of the entry's traffic that follows the chain, splitting at every node
	// in proportion to its observed edge rates; the shares of an entry's chains add up to 1.
	Share float64 `json:"share"`
	// Cycle: the last hop calls a service already on the chain, where the search stops.
	Cycle bool `json:"cycle,omitempty"`
	// Cut: the chain goes on past MaxChainHops.
	Cut       bool `json:"cut,omitempty"`
	Saturated bool `json:"saturated,omitempty"`
}

// Hop is one service of a chain.
type Hop struct {
	Service string `json:"service"`
	// Attempts are the retries of the call into the service (the most any route allows).
	Attempts int64 `json:"attempts"`
	// WorstCase is the product over the chain so far of (attempts + 1).
	WorstCase float64 `json:"worstCase"`
}

// Key names the chain: entry and services, arrows between.
func (c Chain) Key() string {
	parts := []string{c.Entry}
	for _, h := range c.Hops {
		parts = append(parts, h.Service)
	}
	return strings.Join(parts, " -> ")
}

// Amplification follows every call chain from the entry workloads.
func (g *Graph) Amplification() Amplification {
	a := g.adjacency()
	var out Amplification
	byKey := map[string]*Chain{}
	var order []string
	paths := 0
	emit := func(c Chain) {
		paths++
		k := c.Key()
		if have, ok := byKey[k]; ok {
			have.Share += c.Share
			for i := range have.Hops {
				have.Hops[i].Attempts = max(have.Hops[i].Attempts, c.Hops[i].Attempts)
				have.Hops[i].WorstCase = max(have.Hops[i].WorstCase, c.Hops[i].WorstCase)
			}
			have.WorstCase = have.Hops[len(have.Hops)-1].WorstCase
			have.Saturated = have.Saturated || c.Saturated
			return
		}
		c.Hops = append([]Hop(nil), c.Hops...)
		byKey[k] = &c
		order = append(order, k)
	}
	onChain := map[string]bool{}
	var walk func(workload string, c Chain)
	walk = func(workload string, c Chain) {
		calls := a.out[workload]
		if len(calls) == 0 || len(c.Hops) >= MaxChainHops {
			c.Cut = len(calls) > 0
			if len(c.Hops) > 0 {
				emit(c)
			}
			return
		}
		for _, call := range calls {
			if paths >= MaxChains {
				out.Truncated = true
				return
			}
			svc := call.Destination
			attempts := int64(0)
			if call.Policy != nil {
				attempts = call.Policy.Attempts
			}
			next := c
			worst := 1.0
			if len(c.Hops) > 0 {
				worst = c.Hops[len(c.Hops)-1].WorstCase
			}
			worst *= float64(attempts + 1)
			if worst > worstCaseCap {
				worst, next.Saturated = worstCaseCap, true
			}
			next.Hops = append(c.Hops[:len(c.Hops):len(c.Hops)], Hop{Service: svc, Attempts: attempts, WorstCase: worst})
			next.WorstCase = worst
			next.Share = c.Share * a.fraction(call)
			if onChain[svc] {
				next.Cycle = true
				emit(next)
				continue
			}
			serves := a.out[svc]
			if len(serves) == 0 {
				emit(next)
				continue
			}
			onChain[svc] = true
			for _, serve := range serves {
				branch := next
				branch.Share = next.Share * a.fraction(serve)
				walk(serve.Destination, branch)
			}
			onChain[svc] = false
		}
	}
	for _, entry := range g.entries(a) {
		walk(entry, Chain{Entry: entry, Share: 1})
	}
	for _, k := range order {
		out.Chains = append(out.Chains, *byKey[k])
	}
	sort.SliceStable(out.Chains, func(i, j int) bool {
		ci, cj := out.Chains[i], out.Chains[j]
		if ci.WorstCase != cj.WorstCase {
			return ci.WorstCase > cj.WorstCase
		}
		if ci.Share != cj.Share {
			return ci.Share > cj.Share
		}
		return ci.Key() < cj.Key()
	})
	return out
}

// entries are the workloads nothing in the graph calls, then, for call cycles no entry
// reaches, the first workload of each in ID order.
func (g *Graph) entries(a adjacency) []string {
	var out []string
	reached := map[string]bool{}
	var mark func(string)
	mark = func(id string) {
		if reached[id] {
			return
		}
		reached[id] = true
		for _, e := range a.out[id] {
			mark(e.Destination)
		}
	}
	for _, n := range g.Nodes {
		if n.Kind == KindWorkload && len(a.in[n.ID]) == 0 && len(a.out[n.ID]) > 0 {
			out = append(out, n.ID)
			mark(n.ID)
		}
	}
	for _, n := range g.Nodes {
		if n.Kind == KindWorkload && !reached[n.ID] && len(a.out[n.ID]) > 0 {
			out = append(out, n.ID)
			mark(n.ID)
		}
	}
	return out
}
