package checks

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// GraphFormats lists the output formats of WriteGraph.
func GraphFormats() []string { return []string{"dot", "json"} }

// WriteGraph writes g in format (json or dot). An unknown format is an error, never a silent
// fallback.
func WriteGraph(w io.Writer, g *Graph, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(g); err != nil {
			return fmt.Errorf("write graph json: %w", err)
		}
		return nil
	case "dot":
		return writeDOT(w, g)
	}
	return fmt.Errorf("graph format %q: want one of %s", format, strings.Join(GraphFormats(), ", "))
}

// writeDOT writes a Graphviz digraph: workloads are boxes, services ellipses; an edge is
// labelled with its figures and configuration, red when plaintext, orange when mixed, bold when
// more than 5% of requests fail.
func writeDOT(w io.Writer, g *Graph) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "// meshguard graph: observed over %s at %s\n", g.Window, g.EvaluatedAt.UTC().Format("2006-01-02T15:04:05Z"))
	bw.WriteString("digraph mesh {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=10];\n  edge [fontname=\"Helvetica\", fontsize=9];\n")
	byNS := map[string][]Node{}
	for _, n := range g.Nodes {
		byNS[n.Namespace] = append(byNS[n.Namespace], n)
	}
	namespaces := make([]string, 0, len(byNS))
	for ns := range byNS {
		namespaces = append(namespaces, ns)
	}
	sort.Strings(namespaces)
	for i, ns := range namespaces {
		indent := "  "
		if ns != "" {
			fmt.Fprintf(bw, "  subgraph %s {\n    label=%s;\n    style=dashed;\n", dotID(fmt.Sprintf("cluster_%d", i)), dotID(ns))
			indent = "    "
		}
		for _, n := range byNS[ns] {
			shape := "box"
			if n.Kind == "service" {
				shape = "ellipse"
			}
			fmt.Fprintf(bw, "%s%s [label=%s, shape=%s];\n", indent, dotID(n.ID), dotID(n.Name), shape)
		}
		if ns != "" {
			bw.WriteString("  }\n")
		}
	}
	for _, e := range g.Edges {
		attrs := []string{"label=" + dotID(edgeLabel(e))}
		switch e.MTLS {
		case "plaintext":
			attrs = append(attrs, `color="red"`, `fontcolor="red"`)
		case "mixed":
			attrs = append(attrs, `color="orange"`)
		}
		if e.ErrorRate > 0.05 {
			attrs = append(attrs, `penwidth=2`)
		}
		fmt.Fprintf(bw, "  %s -> %s [%s];\n", dotID(e.Source), dotID(e.Destination), strings.Join(attrs, ", "))
	}
	bw.WriteString("}\n")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write graph dot: %w", err)
	}
	return nil
}

func edgeLabel(e Edge) string {
	var lines []string
	if e.Protocol == "tcp" {
		lines = append(lines, fmt.Sprintf("%.3g conn/s (tcp)", e.ConnectionRate))
	} else {
		l := fmt.Sprintf("%.3g rps, %.1f%% 5xx", e.RequestRate, e.ErrorRate*100)
		if e.P99Ms != nil {
			l += fmt.Sprintf(", p99 %.0fms", *e.P99Ms)
		}
		lines = append(lines, l)
	}
	lines = append(lines, "mTLS: "+e.MTLS)
	for _, r := range e.Config.Routes {
		var parts []string
		if r.Retries != nil {
			rp := fmt.Sprintf("retries %d", r.Retries.Attempts)
			if r.Retries.PerTryTimeout != "" {
				rp += "×" + r.Retries.PerTryTimeout
			}
			if r.Retries.Default {
				rp += " (default)"
			}
			parts = append(parts, rp)
		}
		if r.Timeout != "" {
			parts = append(parts, "timeout "+r.Timeout)
		} else {
			parts = append(parts, "no timeout")
		}
		lines = append(lines, r.Route+": "+strings.Join(parts, ", "))
	}
	for _, od := range e.Config.OutlierDetection {
		l := "outlier"
		if od.Subset != "" {
			l += " [" + od.Subset + "]"
		}
		l += fmt.Sprintf(": %d×5xx", od.Consecutive5xxErrors)
		if od.Interval != "" {
			l += "/" + od.Interval
		}
		if od.MaxEjectionPercent > 0 {
			l += fmt.Sprintf(", max %d%%", od.MaxEjectionPercent)
		}
		lines = append(lines, l)
	}
	if len(e.Config.OutlierDetection) == 0 && e.Config.DestinationRule == "" {
		lines = append(lines, "no DestinationRule")
	}
	return strings.Join(lines, "\n")
}

// dotID quotes a Graphviz ID: backslashes and quotes escaped, newlines as \n.
func dotID(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}
