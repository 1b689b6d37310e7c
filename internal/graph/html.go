package graph

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"strings"
)

// The page's scripts and style, embedded so that the page needs no network when viewed and the
// build none either (web/NOTICE.md: versions, licences, how to fetch them again).
var (
	//go:embed web/cytoscape.min.js
	cytoscapeJS string
	//go:embed web/cytoscape-dagre.min.js
	dagreJS string
	//go:embed web/page.js
	pageJS string
	//go:embed web/page.css
	pageCSS string
)

// pageData is what page.js reads.
type pageData struct {
	Graph   *Graph            `json:"graph"`
	Chains  []Chain           `json:"chains"`
	Budget  float64           `json:"budget"`
	Colours map[Health]string `json:"colours"`
}

// WriteHTML writes one self-contained page: the map with pan and zoom, details and the impact
// set of a clicked node, the legend, the thresholds and the chains over the amplification budget.
func WriteHTML(w io.Writer, g *Graph, budget float64) error {
	data, err := json.Marshal(pageData{Graph: g, Chains: g.Amplification().Chains, Budget: budget, Colours: healthColour})
	if err != nil {
		return fmt.Errorf("encode page data: %w", err)
	}
	var b strings.Builder
	b.Grow(len(cytoscapeJS) + len(dagreJS) + len(data) + 8192)
	when := fmt.Sprintf("observed over %s until %s", g.Window, g.EvaluatedAt.UTC().Format("2006-01-02 15:04:05Z"))
	fmt.Fprintf(&b, `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>meshguard service map, %s</title><style>%s</style></head>
<body><header><h1>meshguard service map</h1><span class="meta">%s</span><button id="fit">fit</button></header>
<main><div id="map"></div><aside>
<h2>Legend</h2><div class="legend">%s
<div>▭ workload &nbsp; ▢ service (rounded) &nbsp; dashed box: namespace</div>
<div>solid arrow: calls (rate, errors); dashed: the service's traffic to a workload behind it</div>
<div><span class="swatch" style="background:#fff;border:2px solid #7b2cbf"></span>depends on the selection
<span class="swatch" style="background:#fff;border:2px solid #1971c2"></span>the selection depends on it</div>
<div>double border, ×N: a chain's worst case above the budget</div></div>
<h2>Thresholds</h2><div>%s</div>
<h2>Retry amplification over %g</h2><div id="chains"></div>
<h2>Selection</h2><div id="details"><p class="muted">Click a service or workload.</p></div>
</aside></main>
<script id="meshguard-data" type="application/json">%s</script>
<script>%s</script>
<script>%s</script>
<script>%s</script>
</body></html>
`, html.EscapeString(when), pageCSS, html.EscapeString(when), legendHTML(), html.EscapeString(thresholdText(g.Thresholds)),
		budget, data, cytoscapeJS, dagreJS, pageJS)
	_, err = io.WriteString(w, b.String())
	return err
}

func legendHTML() string {
	var b strings.Builder
	for _, h := range []Health{Green, Yellow, Red, Unknown} {
		fmt.Fprintf(&b, `<div><span class="swatch" style="background:%s"></span>%s</div>`, healthColour[h], map[Health]string{
			Green: "green: within the thresholds", Yellow: "yellow: approaching", Red: "red: breached",
			Unknown: "grey: no requests, or TCP (no error signal)"}[h])
	}
	return b.String()
}
