package checks

import (
	"fmt"
	"sort"

	"github.com/prometheus/common/model"
)

// serviceLabels identify a destination service in an alert.
func serviceLabels(host, domain string) map[string]string {
	name, ns := serviceOf(host, domain)
	return map[string]string{LabelNamespace: ns, "service": name, "destination_service": host}
}

// istioService reads the destination service of an istio_requests_total aggregate, falling back
// to the host when the name labels are missing.
func istioService(m model.Metric, domain string) map[string]string {
	host := labelValue(m, "destination_service")
	l := serviceLabels(host, domain)
	if v := labelValue(m, "destination_service_name"); v != "" && v != "unknown" {
		l["service"] = v
	}
	if v := labelValue(m, "destination_service_namespace"); v != "" && v != "unknown" {
		l[LabelNamespace] = v
	}
	return l
}

// sorted orders findings by their labels so output and tests are stable.
func sorted(fs []Finding) []Finding {
	keys := make([]string, len(fs))
	idx := make([]int, len(fs))
	for i := range fs {
		keys[i], idx[i] = labelsKey(fs[i].Labels), i
	}
	sort.Slice(idx, func(a, b int) bool { return keys[idx[a]] < keys[idx[b]] })
	out := make([]Finding, len(fs))
	for i, j := range idx {
		out[i] = fs[j]
	}
	return out
}

func evalRetryStorm(ec *evalContext) []Finding {
	domain := ec.settings.domain()
	threshold := percent(ec.settings.RetryRatio)
	window := promDuration(ec.settings.Window)
	var out []Finding
	for _, s := range ec.results[SignalEnvoyRetries] {
		host := labelValue(s.Metric, "service_host")
		l := serviceLabels(host, domain)
		if !ec.settings.watches(l[LabelNamespace]) {
			continue
		}
		v := float64(s.Value)
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
			Signal: SignalEnvoyRetries,
		})
	}
	for _, s := range ec.results[SignalURXRetries] {
		l := istioService(s.Metric, domain)
		if !ec.settings.watches(l[LabelNamespace]) {
			continue
		}
		host := l["destination_service"]
		v := float64(s.Value)
		out = append(out, Finding{
			Labels: l,
			Annotations: map[string]string{
				"summary": fmt.Sprintf("Retry storm on %s: %s of requests exhaust their retries (URX)", host, percent(v)),
				"description": fmt.Sprintf("%s of the requests clients sent to %s over the last %s failed with exhausted retries "+
					"(istio_requests_total{reporter=\"source\"} with response_flags URX); threshold %s. Envoy cluster stats are not "+
					"exported for this service, so the URX share stands in for retries / requests.",
					percent(v), host, window, threshold),
				"signal": "istio_requests_total response_flags URX share (no Envoy cluster stats)",
			},
			Value:  v,
			Signal: SignalURXRetries,
		})
	}
	return sorted(out)
}

func evalUpstreamTimeouts(ec *evalContext) []Finding {
	domain := ec.settings.domain()
	var out []Finding
	for _, s := range ec.results[SignalUpstreamTimeouts] {
		l := istioService(s.Metric, domain)
		if !ec.settings.watches(l[LabelNamespace]) {
			continue
		}
		host := l["destination_service"]
		v := float64(s.Value)
		out = append(out, Finding{
			Labels: l,
			Annotations: map[string]string{
				"summary": fmt.Sprintf("Upstream timeouts on %s: %s of requests time out", host, percent(v)),
				"description": fmt.Sprintf("%s of the requests clients sent to %s over the last %s timed out upstream "+
					"(istio_requests_total{reporter=\"source\"} with response_flags UT); threshold %s.",
					percent(v), host, promDuration(ec.settings.Window), percent(ec.settings.UpstreamTimeoutRatio)),
			},
			Value:  v,
			Signal: SignalUpstreamTimeouts,
		})
	}
	return sorted(out)
}

func evalCircuitOpen(ec *evalContext) []Finding {
	domain := ec.settings.domain()
	var out []Finding
	for _, s := range ec.results[SignalOutlierEjections] {
		name := labelValue(s.Metric, "cluster_name")
		c, ok := parseCluster(name)
		if !ok {
			continue
		}
		l := serviceLabels(c.Host, domain)
		if !ec.settings.watches(l[LabelNamespace]) {
			continue
		}
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
			},
			Value:  v,
			Signal: SignalOutlierEjections,
		})
	}
	return sorted(out)
}
