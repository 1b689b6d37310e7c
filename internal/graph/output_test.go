package graph

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestEveryFormatDrawsTheSameGraph(t *testing.T) {
	g := build(t, observed(call{src: "shop/web", dst: "shop/a-v1", rate: 10}, call{src: "shop/a-v1", dst: "shop/b-v1", rate: 4}), nil)
	g.Edges[0].ErrorRate, g.Edges[0].Health = 0.5, Red
	g.Describe([]Workload{{Namespace: "shop", Name: "web", Metadata: []map[string]string{{"team": "storefront", "tier": "edge"}},
		LastDeploy: time.Date(2026, 11, 30, 9, 15, 0, 0, time.UTC)}}, MetadataKeys{Team: []string{"team"}, Tier: []string{"tier"}})
	render := func(format string) string {
		var b bytes.Buffer
		require.NoError(t, Write(&b, g, format, 10))
		return b.String()
	}
	tests := []struct {
		format string
		check  func(t *testing.T, out string)
	}{
		{"json", func(t *testing.T, out string) {
			var back Graph
			require.NoError(t, json.Unmarshal([]byte(out), &back))
			require.Equal(t, g.Edges, back.Edges)
			require.Equal(t, g.Nodes, back.Nodes)
			require.Contains(t, out, `"team": "storefront"`)
			require.Contains(t, out, `"lastDeploy": "2026-11-30T09:15:00Z"`)
		}},
		{"dot", func(t *testing.T, out string) {
			require.True(t, strings.HasPrefix(out, "// meshguard graph") && strings.HasSuffix(out, "}\n"))
			require.Contains(t, out, `"`+webWL+`" -> "`+aSvc+`" [color="#2e9e44", label="10 rps, 0% err, retries 2 (default)"]`)
			require.Contains(t, out, `label="east/shop"`, "namespaces are boxes")
			require.Contains(t, out, `"`+webWL+`" [label="web\nteam storefront, tier edge", shape=box`, "a workload shows its team and tier")
			require.Equal(t, strings.Count(out, "{"), strings.Count(out, "}"))
		}},
		{"mermaid", func(t *testing.T, out string) {
			require.True(t, strings.HasPrefix(out, "flowchart LR\n"))
			require.Contains(t, out, `subgraph g0["east/shop"]`)
			require.Regexp(t, `n\d+\["web<br/>team storefront, tier edge"\]:::unknown`, out, "a workload shows its team and tier")
			require.Regexp(t, `n\d+\(\["a"\]\):::green`, out, "services are rounded, coloured by health")
			require.Regexp(t, `n\d+ -->\|"10 rps, 0% err, retries 2 \(default\)"\| n\d+`, out)
			require.Contains(t, out, "linkStyle 0 stroke:#d43131", "the first edge is red")
		}},
		{"html", func(t *testing.T, out string) {
			require.True(t, strings.HasPrefix(out, "<!DOCTYPE html>"))
			require.NotRegexp(t, `(src|href)="https?:`, out, "nothing is fetched when the page is viewed")
			require.Contains(t, out, `<script id="meshguard-data" type="application/json">`)
			require.Contains(t, out, "red from 1% errors or p99 1000ms")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.format+" renders the nodes, edges and health", func(t *testing.T) {
			tt.check(t, render(tt.format))
		})
	}
	require.ErrorContains(t, Write(&bytes.Buffer{}, g, "svg", 10), `"svg"`)
}

func TestTheImpactAndAmplificationReportsNameTheChainAndTheBudget(t *testing.T) {
	g := build(t, observed(call{src: "shop/web", dst: "shop/a-v1", rate: 10}, call{src: "shop/a-v1", dst: "shop/b-v1", rate: 10},
		call{src: "shop/b-v1", dst: "shop/c-v1", rate: 10}), nil)
	g.Describe([]Workload{{Namespace: "shop", Name: "c-v1", Metadata: []map[string]string{{"team": "ledger"}}}}, MetadataKeys{Team: []string{"team"}})
	var b bytes.Buffer
	require.NoError(t, WriteAmplification(&b, g, g.Amplification(), 10, "text"))
	require.Contains(t, b.String(), "! 27         100.0%  shop/web -> shop/a ×3 -> shop/b ×9 -> shop/c ×27")
	b.Reset()
	imp, err := g.Impact("b")
	require.NoError(t, err)
	require.NoError(t, WriteImpact(&b, imp, "text"))
	require.Contains(t, b.String(), "Depends on it (3)")
	require.Regexp(t, `1 +workload shop/a-v1 +100.0%  green`, b.String())
	require.Contains(t, b.String(), "It depends on (3)")
	require.Regexp(t, `3 +workload shop/c-v1 +green  team ledger\n`, b.String(), "a dependency names its owner")
	require.Error(t, WriteImpact(&b, imp, "yaml"))
}
