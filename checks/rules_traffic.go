package checks

import (
	"fmt"
	"sort"

	"github.com/meshguard/meshguard/internal/alerting"
	"github.com/prometheus/common/model"
)

// serviceLabels identify a destination service in an alert. A host outside the mesh has no
// namespace: the alert is not raised but counted (see Checker.Cycle).
func serviceLabels(host, domain string) map[string]string {
	name, ns := serviceOf(host, domain)
	return map[string]string{LabelNamespace: ns, "service": name, "destination_service": host}
}

// known tells whether a label value names something: Istio writes "unknown" where it cannot.
func known(v string) bool { return v != "" && v != "unknown" }

// istioService reads the destination service of an istio_requests_total aggregate: the name and
// namespace labels where Istio knows them (a ServiceEntry host or a PassthroughCluster call has
// none), else what the host says, and the destination cluster.
func istioService(m model.Metric, s Settings) map[string]string {
	host := labelValue(m, "destination_service")
	l := serviceLabels(host, s.domain())
	if v := labelValue(m, "destination_service_name"); known(v) {
		l["service"] = v
	}
	if v := labelValue(m, "destination_service_namespace"); known(v) {
		l[LabelNamespace] = v
	}
	if v := labelValue(m, s.ClusterLabels.Destination); known(v) {
		l[LabelCluster] = v
	}
	return l
}

// sorted orders findings by their labels so output and tests are stable.
func sorted(fs []Finding) []Finding {
	keys := make([]string, len(fs))
	idx := make([]int, len(fs))
	for i := range fs {
		keys[i], idx[i] = alerting.LabelsKey(fs[i].Labels), i
	}
	sort.Slice(idx, func(a, b int) bool { return keys[idx[a]] < keys[idx[b]] })
	out := make([]Finding, len(fs))
	for i, j := range idx {
		out[i] = fs[j]
	}
	return out
}

// outcomeShare is the share of one service's requests that carried one response flag, as the
// reporter that saw the most of it counts it.
type outcomeShare struct {
	labels   map[string]string
	reporter string
	share    float64
}

// outcomeShares reads request_outcomes for one outcome: one share per destination service (and
// cluster). A sidecar client and a waypoint may both report the same request; the higher
// share is kept rather than adding two views of one request.
func outcomeShares(ec *evalContext, outcome string) []outcomeShare {
	byKey := map[string]*outcomeShare{}
	for _, smp := range ec.results[SignalRequestOutcomes] {
		if labelValue(smp.Metric, labelOutcome) != outcome {
			continue
		}
		l := istioService(smp.Metric, ec.settings)
		k := alerting.LabelsKey(l)
		v := float64(smp.Value)
		if o, ok := byKey[k]; ok && o.share >= v {
			continue
		}
		byKey[k] = &outcomeShare{labels: l, reporter: labelValue(smp.Metric, "reporter"), share: v}
	}
	out := make([]outcomeShare, 0, len(byKey))
	for _, o := range byKey {
		if ec.settings.watches(o.labels[LabelNamespace]) {
			out = append(out, *o)
		}
	}
	return out
}

// envoyStats reads the rows of envoy_cluster_stats that hold stat.
func envoyStats(ec *evalContext, stat string) model.Vector {
	var out model.Vector
	for _, s := range ec.results[SignalEnvoyStats] {
		if labelValue(s.Metric, labelStat) == stat {
			out = append(out, s)
		}
	}
	return out
}

// reporterPhrase names the proxy that counted a share.
func reporterPhrase(reporter string) string {
	if reporter == "waypoint" {
		return `the waypoint proxies (istio_requests_total{reporter="waypoint"})`
	}
	return `the clients' sidecars (istio_requests_total{reporter="source"})`
}

func evalRetryStorm(ec *evalContext) []Finding {
	domain := ec.settings.domain()
	threshold := percent(ec.settings.RetryRatio)
	window := promDuration(ec.settings.Window)
	var out []Finding
	// Services whose clients export Envoy's retry counters are judged by them; the others by
	// the share of requests that exhausted their retries.
	byEnvoy := map[string]bool{}
	for _, s := range envoyStats(ec, statRetryRatio) {
		host := labelValue(s.Metric, labelServiceHost)
		byEnvoy[host] = true
		v := float64(s.Value)
		l := serviceLabels(host, domain)
		if v <= ec.settings.RetryRatio || !ec.settings.watches(l[LabelNamespace]) {
			continue
		}
		out = append(out, Finding{
			Labels: l,
			Annotations: map[string]string{
				"summary": fmt.Sprintf("Retry storm on %s: %s of upstream requests are retries", host, percent(v)),
				"description": fmt.Sprintf("Envoy's outbound clusters for %s counted %s retries per upstream request over the last %s "+
					"(envoy_cluster_upstream_rq_retry / envoy_cluster_upstream_rq_total, all clients, ports and subsets); threshold %s.",
					host, percent(v), window, threshold),
				"signal": "envoy_cluster_upstream_rq_retry / envoy_cluster_upstream_rq_total",
			},
			Value:  v,
			Signal: SignalEnvoyStats,
		})
	}
	for _, o := range outcomeShares(ec, OutcomeRetriesExhausted) {
		host := o.labels["destination_service"]
		if byEnvoy[host] || o.share <= ec.settings.RetryRatio {
			continue
		}
		out = append(out, Finding{
			Labels: o.labels,
			Annotations: map[string]string{
				"summary": fmt.Sprintf("Retry storm on %s: %s of requests exhaust their retries (URX)", host, percent(o.share)),
				"description": fmt.Sprintf("%s of the requests %s counted to %s over the last %s failed with exhausted retries "+
					"(response_flags URX); threshold %s. Envoy's retry counters are not exported for this service, so the URX "+
					"share stands in for retries / requests.",
					percent(o.share), reporterPhrase(o.reporter), host, window, threshold),
				"signal":   "istio_requests_total response_flags URX share (no Envoy cluster stats)",
				"reporter": o.reporter,
			},
			Value:  o.share,
			Signal: SignalRequestOutcomes,
		})
	}
	return sorted(out)
}

func evalUpstreamTimeouts(ec *evalContext) []Finding {
	var out []Finding
	for _, o := range outcomeShares(ec, OutcomeUpstreamTimeout) {
		if o.share <= ec.settings.UpstreamTimeoutRatio {
			continue
		}
		host := o.labels["destination_service"]
		out = append(out, Finding{
			Labels: o.labels,
			Annotations: map[string]string{
				"summary": fmt.Sprintf("Upstream timeouts on %s: %s of requests time out", host, percent(o.share)),
				"description": fmt.Sprintf("%s of the requests %s counted to %s over the last %s timed out upstream "+
					"(response_flags UT); threshold %s.",
					percent(o.share), reporterPhrase(o.reporter), host, promDuration(ec.settings.Window), percent(ec.settings.UpstreamTimeoutRatio)),
				"reporter": o.reporter,
			},
			Value:  o.share,
			Signal: SignalRequestOutcomes,
		})
	}
	return sorted(out)
}

// evalCircuitOpen reads outlier ejections where Envoy's cluster stats are exported, and the
// overflow (UO) and no-healthy-upstream (UH) flags of istio_requests_total, which Istio reports
// by default, for the services without an ejection alert: the circuit is open either way.
func evalCircuitOpen(ec *evalContext) []Finding {
	domain := ec.settings.domain()
	var out []Finding
	ejected := map[string]bool{}
	for _, s := range envoyStats(ec, statEjections) {
		name := labelValue(s.Metric, "cluster_name")
		c, ok := parseCluster(name)
		if !ok {
			continue
		}
		l := serviceLabels(c.Host, domain)
		if !ec.settings.watches(l[LabelNamespace]) {
			continue
		}
		ejected[c.Host] = true
		l["cluster_name"] = name
		v := float64(s.Value)
		subset := ""
		if c.Subset != "" {
			subset = ", subset " + c.Subset
		}
		out = append(out, Finding{
			Labels: l,
			Annotations: map[string]string{
				"summary": fmt.Sprintf("Outlier detection ejected %g host(s) of %s", v, name),
				"description": fmt.Sprintf("envoy_cluster_outlier_detection_ejections_active is %g for cluster %s (service %s, port %s%s) "+
					"in at least one client proxy; threshold: any ejection (> 0). The circuit is open for those endpoints.",
					v, name, c.Host, c.Port, subset),
				"signal": "envoy_cluster_outlier_detection_ejections_active",
			},
			Value:  v,
			Signal: SignalEnvoyStats,
		})
	}
	flags := map[string]string{
		OutcomeOverflow:  "overflowed the circuit breaker's connection pool (UO)",
		OutcomeNoHealthy: "found no healthy upstream host (UH)",
	}
	for _, outcome := range []string{OutcomeOverflow, OutcomeNoHealthy} {
		for _, o := range outcomeShares(ec, outcome) {
			host := o.labels["destination_service"]
			if ejected[host] {
				continue
			}
			o.labels["response_flag"] = outcome
			out = append(out, Finding{
				Labels: o.labels,
				Annotations: map[string]string{
					"summary": fmt.Sprintf("Circuit open on %s: %s of requests %s", host, percent(o.share), flags[outcome]),
					"description": fmt.Sprintf("%s of the requests %s counted to %s over the last %s %s; threshold: any (> 0). "+
						"Envoy's outlier detection stats are not exported for it, so the response flag stands in for ejections.",
						percent(o.share), reporterPhrase(o.reporter), host, promDuration(ec.settings.Window), flags[outcome]),
					"signal":   "istio_requests_total response_flags " + outcome + " share",
					"reporter": o.reporter,
				},
				Value:  o.share,
				Signal: SignalRequestOutcomes,
			})
		}
	}
	return sorted(out)
}
