package checks

import (
	"fmt"
	"strings"

	"github.com/prometheus/common/model"

	"github.com/meshguard/meshguard/internal/graph"
	"github.com/meshguard/meshguard/internal/mesh"
)

// SignalCallChains is the traffic between workloads through services that retry amplification
// follows (internal/graph.TopologyQuery).
const SignalCallChains = graph.QueryTopology

// evalRetryAmplification follows the observed call chains with the retries Istio applies at
// each hop, and finds those whose worst case exceeds the budget. A chain is reported up to its
// first service over the budget, so the chains that go on from there are one alert, not one each.
func evalRetryAmplification(ec *evalContext) []Finding {
	s := ec.settings
	g := graph.Build(map[string]model.Vector{graph.QueryTopology: ec.results[SignalCallChains]},
		graph.Options{Index: ec.mesh.index(s.RootNamespace, s.domain()), Window: s.Window, At: ec.now,
			ClusterLabels: graph.ClusterLabels(s.ClusterLabels)})
	amp := g.Amplification()
	type over struct {
		chain graph.Chain
		share float64
		full  []string
	}
	var order []string
	byKey := map[string]*over{}
	for _, c := range amp.Chains {
		i := 0
		for i < len(c.Hops) && c.Hops[i].WorstCase <= s.RetryAmplification {
			i++
		}
		if i == len(c.Hops) {
			continue
		}
		prefix := c
		prefix.Hops = c.Hops[:i+1]
		prefix.WorstCase, prefix.Cycle, prefix.Cut = c.Hops[i].WorstCase, c.Cycle && i == len(c.Hops)-1, false
		k := prefix.Key()
		o, ok := byKey[k]
		if !ok {
			o = &over{chain: prefix}
			byKey[k] = o
			order = append(order, k)
		}
		o.share += c.Share
		o.full = append(o.full, g.ChainText(c))
	}
	var out []Finding
	for _, k := range order {
		o := byKey[k]
		last := g.Node(o.chain.Hops[len(o.chain.Hops)-1].Service)
		entry := g.Node(o.chain.Entry)
		if !s.watches(last.Namespace) {
			continue
		}
		l := serviceLabels(last.Host, s.domain())
		l["source_workload"], l["source_workload_namespace"] = entry.Name, entry.Namespace
		if known(last.Cluster) {
			l[LabelCluster] = last.Cluster
		}
		l["chain"] = g.ChainText(o.chain)
		var steps []string
		for _, h := range o.chain.Hops {
			steps = append(steps, fmt.Sprintf("%s (%d retries, ×%g)", g.Node(h.Service).Name, h.Attempts, h.WorstCase))
		}
		more := ""
		if len(o.full) > 1 || o.full[0] != l["chain"] {
			more = " Chains through it: " + strings.Join(o.full, "; ") + "."
		}
		out = append(out, Finding{
			Labels: l,
			Annotations: map[string]string{
				"summary": fmt.Sprintf("Retry amplification ×%g at %s: one call from %s can become %g requests there",
					o.chain.WorstCase, last.Host, workloadRef(entry.Namespace, entry.Name), o.chain.WorstCase),
				"description": fmt.Sprintf("Along %s, each hop retries as its VirtualService route says (Istio's default of %d "+
					"retries where none is written): %s. The worst case is the product of (attempts + 1) over the hops, %g, "+
					"above the budget of %g (check.thresholds.retryAmplification). %s of %s's traffic follows this chain over the last %s.%s",
					l["chain"], mesh.DefaultRetryAttempts, strings.Join(steps, ", "), o.chain.WorstCase, s.RetryAmplification, percent(min(o.share, 1)),
					workloadRef(entry.Namespace, entry.Name), promDuration(s.Window), more),
				"chain": l["chain"],
			},
			Value:  o.chain.WorstCase,
			Signal: SignalCallChains,
		})
	}
	return sorted(out)
}
