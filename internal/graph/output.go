package graph

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Formats lists the formats Write knows.
func Formats() []string { return []string{"json", "dot", "mermaid", "html"} }

// Write renders g in format. An unknown format is an error, never a silent fallback. budget is
// the amplification budget the html page marks chains against.
func Write(w io.Writer, g *Graph, format string, budget float64) error {
	var err error
	switch format {
	case "json":
		err = writeJSON(w, g)
	case "dot":
		err = writeDOT(w, g)
	case "mermaid":
		err = writeMermaid(w, g)
	case "html":
		err = WriteHTML(w, g, budget)
	default:
		return fmt.Errorf("graph format %q: want one of %s", format, strings.Join(Formats(), ", "))
	}
	if err != nil {
		return fmt.Errorf("write graph %s: %w", format, err)
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Colours of the health values, shared by every picture and the legend.
var healthColour = map[Health]string{Green: "#2e9e44", Yellow: "#e0a800", Red: "#d43131", Unknown: "#8c8c8c"}

// group is the namespace box a node is drawn in: cluster and namespace.
func (n Node) group() string {
	if n.Namespace == "" {
		return n.Cluster
	}
	return n.Cluster + "/" + n.Namespace
}

// label is a node's text in pictures: its name and, on a second line (after br), its team and
// tier where the cluster gave them.
func (n Node) label(br string) string {
	var owner []string
	if n.Team != "" {
		owner = append(owner, "team "+n.Team)
	}
	if n.Tier != "" {
		owner = append(owner, "tier "+n.Tier)
	}
	if len(owner) == 0 {
		return n.Name
	}
	return n.Name + br + strings.Join(owner, ", ")
}

// groups orders the nodes by their namespace box.
func (g *Graph) groups() ([]string, map[string][]Node) {
	by := map[string][]Node{}
	for _, n := range g.Nodes {
		by[n.group()] = append(by[n.group()], n)
	}
	names := make([]string, 0, len(by))
	for k := range by {
		names = append(names, k)
	}
	sort.Strings(names)
	return names, by
}

// Label is the text of an edge in pictures: rate, errors, p99, protocol, retries, mTLS.
func (e Edge) Label() string {
	unit := "rps"
	if e.Protocol == ProtocolTCP {
		unit = "conn/s"
	}
	parts := []string{fmt.Sprintf("%.3g %s", e.RequestRate, unit)}
	if e.Protocol != ProtocolTCP {
		parts = append(parts, fmt.Sprintf("%.2g%% err", e.ErrorRate*100))
	}
	if e.P99Ms != nil {
		parts = append(parts, fmt.Sprintf("p99 %.0fms", *e.P99Ms))
	}
	if e.Protocol != ProtocolHTTP {
		parts = append(parts, e.Protocol)
	}
	if e.Policy != nil && e.Protocol != ProtocolTCP {
		r := fmt.Sprintf("retries %d", e.Policy.Attempts)
		if len(e.Policy.Routes) == 1 && e.Policy.Routes[0].Retries.Default {
			r += " (default)"
		}
		parts = append(parts, r)
	}
	if e.MTLSShare != nil && *e.MTLSShare < 1 {
		parts = append(parts, fmt.Sprintf("mTLS %.0f%%", *e.MTLSShare*100))
	}
	return strings.Join(parts, ", ")
}

func writeDOT(w io.Writer, g *Graph) error {
	var b strings.Builder
	fmt.Fprintf(&b, "// meshguard graph: observed over %s at %s; colours: health (%s)\n", g.Window,
		g.EvaluatedAt.UTC().Format("2006-01-02T15:04:05Z"), thresholdText(g.Thresholds))
	b.WriteString("digraph mesh {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=10, style=filled, fontcolor=white];\n  edge [fontname=\"Helvetica\", fontsize=9];\n")
	names, by := g.groups()
	for i, grp := range names {
		fmt.Fprintf(&b, "  subgraph %s {\n    label=%s;\n    style=dashed;\n", dotID(fmt.Sprintf("cluster_%d", i)), dotID(grp))
		for _, n := range by[grp] {
			shape := "box"
			if n.Kind == KindService {
				shape = "ellipse"
			}
			fmt.Fprintf(&b, "    %s [label=%s, shape=%s, fillcolor=%s];\n", dotID(n.ID), dotID(n.label("\n")), shape, dotID(healthColour[n.Health]))
		}
		b.WriteString("  }\n")
	}
	for _, e := range g.Edges {
		attrs := fmt.Sprintf("color=%s", dotID(healthColour[e.Health]))
		if e.Kind == EdgeCall {
			attrs += ", label=" + dotID(e.Label())
		} else {
			attrs += ", style=dashed"
		}
		fmt.Fprintf(&b, "  %s -> %s [%s];\n", dotID(e.Source), dotID(e.Destination), attrs)
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// dotID quotes a Graphviz ID: backslashes and quotes escaped, newlines as \n.
func dotID(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// writeMermaid writes a flowchart GitHub renders in Markdown: namespaces as subgraphs, health as
// classes on nodes and link styles on edges.
func writeMermaid(w io.Writer, g *Graph) error {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	ids := map[string]string{}
	for i, n := range g.Nodes {
		ids[n.ID] = fmt.Sprintf("n%d", i)
	}
	names, by := g.groups()
	for i, grp := range names {
		fmt.Fprintf(&b, "  subgraph g%d[%s]\n", i, mermaidText(grp))
		for _, n := range by[grp] {
			open, close := "[", "]"
			if n.Kind == KindService {
				open, close = "([", "])"
			}
			fmt.Fprintf(&b, "    %s%s%s%s:::%s\n", ids[n.ID], open, mermaidText(n.label("<br/>")), close, n.Health)
		}
		b.WriteString("  end\n")
	}
	for i, e := range g.Edges {
		arrow := "-.->"
		if e.Kind == EdgeCall {
			arrow = "-->|" + mermaidText(e.Label()) + "|"
		}
		fmt.Fprintf(&b, "  %s %s %s\n", ids[e.Source], arrow, ids[e.Destination])
		fmt.Fprintf(&b, "  linkStyle %d stroke:%s\n", i, healthColour[e.Health])
	}
	for _, h := range []Health{Green, Yellow, Red, Unknown} {
		fmt.Fprintf(&b, "  classDef %s fill:%s,color:#fff\n", h, healthColour[h])
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// mermaidText quotes a label; Mermaid reads entity codes inside quotes.
func mermaidText(s string) string {
	return `"` + strings.NewReplacer(`"`, "#quot;", "|", "#124;").Replace(s) + `"`
}

func thresholdText(t Thresholds) string {
	return fmt.Sprintf("red from %.3g%% errors or p99 %gms, yellow from %.3g%% or %gms",
		t.ErrorRateCritical*100, t.P99CriticalMs, t.ErrorRateWarning*100, t.P99WarningMs)
}
