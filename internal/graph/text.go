package graph

import (
	"fmt"
	"io"
	"strings"
)

// WriteImpact writes an impact set as text or json.
func WriteImpact(w io.Writer, imp *Impact, format string) error {
	if format == "json" {
		return writeJSON(w, imp)
	}
	if format != "text" {
		return fmt.Errorf("impact format %q: want text or json", format)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Impact of %s (%s)\n\n", imp.Service, strings.Join(imp.Targets, ", "))
	fmt.Fprintf(&b, "Depends on it (%d), with the share of each one's traffic that passes through it:\n", len(imp.Dependents))
	for _, r := range imp.Dependents {
		fmt.Fprintf(&b, "  %-3d %-8s %-40s %6.1f%%  %s%s\n", r.Depth, r.Kind, qualified(r), r.Share*100, r.Health, teamText(r))
	}
	fmt.Fprintf(&b, "\nIt depends on (%d), where to look for a root cause:\n", len(imp.Dependencies))
	for _, r := range imp.Dependencies {
		fmt.Fprintf(&b, "  %-3d %-8s %-40s %s%s\n", r.Depth, r.Kind, qualified(r), r.Health, teamText(r))
	}
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("write impact: %w", err)
	}
	return nil
}

// teamText is a column for the owner, when known: who to call during an incident.
func teamText(r Reach) string {
	if r.Team == "" {
		return ""
	}
	return "  team " + r.Team
}

func qualified(r Reach) string {
	if r.Namespace == "" {
		return r.Name
	}
	return r.Namespace + "/" + r.Name
}

// WriteAmplification writes the chains as text (names resolved through g) or json, marking
// those over budget.
func WriteAmplification(w io.Writer, g *Graph, amp Amplification, budget float64, format string) error {
	if format == "json" {
		return writeJSON(w, struct {
			Budget float64 `json:"budget"`
			Amplification
		}{budget, amp})
	}
	if format != "text" {
		return fmt.Errorf("amplification format %q: want text or json", format)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Retry amplification: worst-case requests one call at the entry causes at each service (budget %g)\n\n", budget)
	fmt.Fprintf(&b, "%-10s %-8s  %s\n", "WORST", "SHARE", "CHAIN (service ×worst case so far)")
	for _, c := range amp.Chains {
		mark := "  "
		if c.WorstCase > budget {
			mark = "! "
		}
		fmt.Fprintf(&b, "%s%-8g %7.1f%%  %s\n", mark, c.WorstCase, c.Share*100, g.ChainText(c))
	}
	if amp.Truncated {
		fmt.Fprintf(&b, "\n(more than %d paths: the search stopped, chains are missing)\n", MaxChains)
	}
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("write amplification: %w", err)
	}
	return nil
}

// ChainText writes a chain with names: "ns/entry -> svc ×3 -> svc ×9".
func (g *Graph) ChainText(c Chain) string {
	parts := []string{g.nodeName(c.Entry)}
	for _, h := range c.Hops {
		parts = append(parts, fmt.Sprintf("%s ×%g", g.nodeName(h.Service), h.WorstCase))
	}
	s := strings.Join(parts, " -> ")
	if c.Cycle {
		s += " (cycle)"
	}
	if c.Cut {
		s += " (cut)"
	}
	return s
}

func (g *Graph) nodeName(id string) string {
	n := g.Node(id)
	if n == nil {
		return id
	}
	if n.Namespace == "" {
		return n.Name
	}
	return n.Namespace + "/" + n.Name
}
