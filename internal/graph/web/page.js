// The meshguard service map: draws the graph embedded in the page with Cytoscape and dagre, and
// answers clicks with details and the impact set. Everything it needs is in the page.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("meshguard-data").textContent);
  var g = data.graph, budget = data.budget;
  var colour = data.colours;

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function pct(v) { return (v * 100).toFixed(v < 0.01 ? 2 : 1) + "%"; }
  function num(v) { return Number(v.toPrecision(3)).toString(); }
  function ms(v) { return v == null ? "–" : num(v) + " ms"; }

  // The worst case amplification that reaches each service, over every chain.
  var worst = {};
  (data.chains || []).forEach(function (c) {
    c.hops.forEach(function (h) { worst[h.service] = Math.max(worst[h.service] || 0, h.worstCase); });
  });

  var nodesByID = {};
  var elements = [];
  var groups = {};
  g.nodes.forEach(function (n) {
    nodesByID[n.id] = n;
    var grp = n.namespace ? n.cluster + "/" + n.namespace : n.cluster;
    if (!groups[grp]) {
      groups[grp] = true;
      elements.push({ data: { id: "group:" + grp, label: grp, kind: "group" } });
    }
    var label = n.name;
    if (n.team) { label += "\n" + n.team; }
    if (worst[n.id] > budget) { label += "\n×" + num(worst[n.id]); }
    elements.push({ data: { id: n.id, label: label, kind: n.kind, health: n.health, parent: "group:" + grp,
      over: worst[n.id] > budget ? "yes" : "no" } });
  });
  var edgesByID = {};
  g.edges.forEach(function (e) {
    edgesByID[e.id] = e;
    var short = num(e.requestRate) + (e.protocol === "tcp" ? " conn/s" : " rps");
    if (e.protocol !== "tcp") { short += " · " + pct(e.errorRate); }
    elements.push({ data: { id: e.id, source: e.source, target: e.destination, kind: e.kind, health: e.health,
      label: e.kind === "call" ? short : "" } });
  });

  var cy = cytoscape({
    container: document.getElementById("map"),
    elements: elements,
    wheelSensitivity: 0.3,
    style: [
      { selector: "node", style: { "label": "data(label)", "text-wrap": "wrap", "text-valign": "center", "color": "#fff",
        "font-size": 10, "width": 110, "height": 34, "background-color": colour.unknown, "border-width": 0 } },
      { selector: "node[kind='service']", style: { "shape": "round-rectangle" } },
      { selector: "node[kind='workload']", style: { "shape": "rectangle" } },
      { selector: "node[health='green']", style: { "background-color": colour.green } },
      { selector: "node[health='yellow']", style: { "background-color": colour.yellow } },
      { selector: "node[health='red']", style: { "background-color": colour.red } },
      { selector: "node[over='yes']", style: { "border-width": 3, "border-color": "#6a040f", "border-style": "double", "height": 44 } },
      { selector: "node[kind='group']", style: { "background-color": "#eef2f7", "background-opacity": 0.6, "border-width": 1,
        "border-style": "dashed", "border-color": "#99a", "color": "#445", "text-valign": "top", "text-halign": "center",
        "font-size": 11, "padding": 12, "shape": "round-rectangle" } },
      { selector: "edge", style: { "curve-style": "bezier", "target-arrow-shape": "triangle", "width": 2,
        "line-color": colour.unknown, "target-arrow-color": colour.unknown, "label": "data(label)", "font-size": 8,
        "text-background-color": "#fff", "text-background-opacity": 0.8, "text-rotation": "autorotate" } },
      { selector: "edge[kind='serve']", style: { "line-style": "dashed", "width": 1.5 } },
      { selector: "edge[health='green']", style: { "line-color": colour.green, "target-arrow-color": colour.green } },
      { selector: "edge[health='yellow']", style: { "line-color": colour.yellow, "target-arrow-color": colour.yellow } },
      { selector: "edge[health='red']", style: { "line-color": colour.red, "target-arrow-color": colour.red } },
      { selector: ".faded", style: { "opacity": 0.15 } },
      { selector: "node.upstream", style: { "border-width": 4, "border-color": "#7b2cbf", "border-style": "solid" } },
      { selector: "node.downstream", style: { "border-width": 4, "border-color": "#1971c2", "border-style": "solid" } },
      { selector: "node.focus", style: { "border-width": 5, "border-color": "#111", "border-style": "solid" } },
      { selector: "edge.upstream", style: { "width": 4 } },
      { selector: "edge.downstream", style: { "width": 4 } },
      { selector: "edge.focus", style: { "width": 5 } }
    ],
    layout: { name: "dagre", rankDir: "LR", nodeSep: 20, rankSep: 70, animate: false }
  });

  // The impact set: what reaches the node (dependents) and what it reaches (dependencies).
  function walk(start, dir) {
    var seen = {}, queue = [start], found = [];
    seen[start.id()] = true;
    while (queue.length) {
      var n = queue.shift();
      var edges = dir === "up" ? n.incomers("edge") : n.outgoers("edge");
      edges.forEach(function (e) {
        found.push(e);
        var next = dir === "up" ? e.source() : e.target();
        if (!seen[next.id()]) { seen[next.id()] = true; found.push(next); queue.push(next); }
      });
    }
    return cy.collection(found);
  }

  function clear() {
    cy.elements().removeClass("faded upstream downstream focus");
  }

  function policyHTML(p) {
    if (!p) { return ""; }
    var h = "<div>VirtualService: " + esc(p.virtualService || "none (Istio's default route)") + "</div>";
    (p.routes || []).forEach(function (r) {
      var rt = r.retries.attempts ? r.retries.attempts + " retries" : "no retries";
      if (r.retries.perTryTimeout) { rt += " × " + r.retries.perTryTimeout; }
      if (r.retries.retryOn) { rt += " on " + r.retries.retryOn; }
      if (r.retries.default) { rt += " (Istio's default)"; }
      h += "<div>route " + esc(r.name) + ": " + esc(rt) + ", timeout " + esc(r.timeout || "none") + "</div>";
    });
    var dr = p.destinationRule;
    if (!dr) { return h + "<div>DestinationRule: none (no outlier detection, no connection limits)</div>"; }
    h += "<div>DestinationRule: " + esc(dr.name) + "</div>";
    var od = dr.outlierDetection;
    h += "<div>outlier detection: " + (od ? esc((od.consecutive5xxErrors || 0) + "×5xx" + (od.interval ? " / " + od.interval : "") +
      (od.baseEjectionTime ? ", eject " + od.baseEjectionTime : "") + (od.maxEjectionPercent ? ", max " + od.maxEjectionPercent + "%" : "")) : "none") + "</div>";
    var cp = dr.connectionPool;
    if (cp) {
      var parts = [];
      ["maxConnections", "http1MaxPendingRequests", "http2MaxRequests", "maxRequestsPerConnection", "maxRetries", "connectTimeout"].forEach(function (k) {
        if (cp[k]) { parts.push(k + " " + cp[k]); }
      });
      h += "<div>connection pool: " + esc(parts.join(", ") || "set, no limits") + "</div>";
    }
    return h;
  }

  function edgeHTML(e) {
    var from = nodesByID[e.source], to = nodesByID[e.destination];
    var h = "<div class='edge' data-edge='" + esc(e.id) + "'><b>" + esc(from.name) + " → " + esc(to.name) + "</b> <span class='muted'>(" + esc(e.kind) + ", " + esc(e.protocol) + ")</span>";
    h += "<table><tr><td>rate</td><td>" + num(e.requestRate) + (e.protocol === "tcp" ? " conn/s" : " req/s") + "</td></tr>";
    if (e.protocol !== "tcp") {
      h += "<tr><td>errors</td><td>" + pct(e.errorRate) + "</td></tr><tr><td>p50 / p99</td><td>" + ms(e.p50Ms) + " / " + ms(e.p99Ms) + "</td></tr>";
    }
    h += "<tr><td>mTLS</td><td>" + (e.mtlsShare == null ? "unknown" : pct(e.mtlsShare)) + "</td></tr>";
    h += "<tr><td>health</td><td><span class='swatch' style='background:" + colour[e.health] + "'></span>" + esc(e.health) + "</td></tr>";
    h += "<tr><td>reported by</td><td>" + esc(e.reporter) + "</td></tr></table>" + policyHTML(e.policy) + "</div>";
    return h;
  }

  var details = document.getElementById("details");
  function showNode(n) {
    var d = nodesByID[n.id()];
    if (!d) { return; }
    clear();
    var up = walk(n, "up"), down = walk(n, "down");
    cy.elements().not(up).not(down).not(n).not("node[kind='group']").addClass("faded");
    up.addClass("upstream");
    down.addClass("downstream");
    n.addClass("focus");
    var h = "<h2>" + esc(d.kind) + " " + esc(d.namespace ? d.namespace + "/" : "") + esc(d.name) + "</h2>";
    h += "<table><tr><td>cluster</td><td>" + esc(d.cluster || "–") + "</td></tr><tr><td>serves</td><td>" + num(d.requestRate) + " req/s, " + pct(d.errorRate) +
      " errors, p99 " + ms(d.p99Ms) + "</td></tr><tr><td>health</td><td><span class='swatch' style='background:" + colour[d.health] + "'></span>" + esc(d.health) + "</td></tr>";
    h += "<tr><td>team</td><td class='team'>" + esc(d.team || "–") + "</td></tr><tr><td>tier</td><td class='tier'>" + esc(d.tier || "–") +
      "</td></tr><tr><td>" + (d.kind === "service" ? "last deploy behind it" : "last deploy") + "</td><td class='last-deploy'>" + esc(d.lastDeploy || "–") + "</td></tr>";
    if (d.ejectedEndpoints != null) { h += "<tr><td>ejected</td><td>" + num(d.ejectedEndpoints) + " endpoints (outlier detection, most in any client)</td></tr>"; }
    if (d.overflowRate != null) { h += "<tr><td>overflow</td><td>" + num(d.overflowRate) + " req/s refused by connection pools</td></tr>"; }
    if (worst[d.id]) { h += "<tr><td>worst case</td><td class='" + (worst[d.id] > budget ? "over" : "") + "'>×" + num(worst[d.id]) + " requests per entry call</td></tr>"; }
    h += "<tr><td>impact</td><td><span id='dependents'>" + up.nodes().length + "</span> depend on it, it depends on <span id='dependencies'>" + down.nodes().length + "</span></td></tr></table>";
    h += "<h2>Edges</h2>";
    n.connectedEdges().forEach(function (e) { h += edgeHTML(edgesByID[e.id()]); });
    details.innerHTML = h;
    details.dataset.selected = d.id;
  }
  function showEdge(edge) {
    clear();
    cy.elements().not(edge).not(edge.connectedNodes()).not("node[kind='group']").addClass("faded");
    edge.addClass("focus");
    details.innerHTML = "<h2>Edge</h2>" + edgeHTML(edgesByID[edge.id()]);
    details.dataset.selected = edge.id();
  }
  cy.on("tap", "node", function (ev) { if (ev.target.data("kind") !== "group") { showNode(ev.target); } });
  cy.on("tap", "edge", function (ev) { showEdge(ev.target); });
  cy.on("tap", function (ev) {
    if (ev.target === cy) { clear(); details.innerHTML = "<p class='muted'>Click a service or workload.</p>"; delete details.dataset.selected; }
  });

  // The chains over budget, hottest first; a click highlights the chain.
  var list = document.getElementById("chains");
  var over = (data.chains || []).filter(function (c) { return c.worstCase > budget; });
  if (!over.length) { list.innerHTML = "<p class='muted'>No chain exceeds the budget of " + budget + ".</p>"; }
  over.forEach(function (c) {
    var names = [nodesByID[c.entry].name].concat(c.hops.map(function (h) { return nodesByID[h.service].name + " ×" + num(h.worstCase); }));
    var div = document.createElement("div");
    div.className = "chain";
    div.innerHTML = "<span class='over'>×" + num(c.worstCase) + "</span> " + esc(names.join(" → ")) + " <span class='muted'>(" + pct(c.share) + " of entry traffic)</span>";
    div.addEventListener("click", function () {
      clear();
      var ids = [c.entry].concat(c.hops.map(function (h) { return h.service; }));
      var path = cy.collection();
      ids.forEach(function (id) { path = path.union(cy.getElementById(id)); });
      cy.elements().not(path).not("node[kind='group']").addClass("faded");
      path.addClass("focus");
    });
    list.appendChild(div);
  });

  document.getElementById("fit").addEventListener("click", function () { cy.fit(undefined, 20); });
  window.meshguard = { cy: cy };
  document.body.dataset.ready = "true";
})();
