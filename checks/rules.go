package checks

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/meshguard/meshguard/internal/alerting"
	"github.com/prometheus/common/model"
)

// Alert names and the rule label of each.
const (
	AlertPlaintextTraffic   = "MeshPlaintextTraffic"
	AlertPlaintextAllowed   = "MeshPlaintextAllowed"
	AlertRetryStorm         = "MeshRetryStorm"
	AlertRetryAmplification = "MeshRetryAmplification"
	AlertUpstreamTimeouts   = "MeshUpstreamTimeouts"
	AlertCircuitOpen        = "MeshCircuitOpen"
	AlertTelemetryBlind     = "MeshTelemetryBlind"
	AlertCheckerDegraded    = "MeshCheckerDegraded"
	AlertCheckerOverLimit   = "MeshCheckerOverLimit"
)

// Label names the alerts use besides the identifying labels of Istio's metrics.
const (
	LabelNamespace = "namespace"
	LabelRule      = "rule"
)

// Finding is one would-be alert a rule found in a cycle.
type Finding struct {
	// Labels identify it (namespace, workload or service labels); alertname, severity and rule
	// are added from the rule.
	Labels map[string]string
	// Annotations hold summary, description and details; runbook_url is added from the rule.
	Annotations map[string]string
	// Value is the measured figure (a rate, a ratio, a count).
	Value float64
	// Signal is the query the figure comes from ("" when it is not one query's).
	Signal string
}

// Rule turns the results of a cycle's queries into findings of one alert.
type Rule struct {
	// Alertname is the alertname label.
	Alertname string
	// Severity is the severity label.
	Severity string
	// ID is the rule label: a stable slug, also used by `meshguard check --help` docs.
	ID string
	// Signals are the queries the rule reads. When one of them failed in a cycle, the rule's
	// alerts that were not found again are kept as they are: missing data resolves nothing.
	Signals []string
	// Help says when the alert fires.
	Help string

	// absence: the rule fires when data is missing, so it raises nothing while its data has a hole.
	absence bool
	eval    func(*evalContext) []Finding
}

// Rules returns the checker's rules, sorted by alert name. MeshCheckerDegraded and
// MeshCheckerOverLimit are raised by the checker itself and have no rule.
func Rules() []Rule {
	rules := []Rule{
		{Alertname: AlertPlaintextTraffic, Severity: alerting.SeverityCritical, ID: "plaintext-traffic",
			Signals: []string{SignalPlaintextRequests, SignalPlaintextTCP},
			Help:    "plaintext requests or TCP connections reach a workload whose effective PeerAuthentication is STRICT",
			eval:    evalPlaintextTraffic},
		{Alertname: AlertPlaintextAllowed, Severity: alerting.SeverityWarning, ID: "plaintext-allowed",
			Signals: []string{SignalPlaintextRequests, SignalPlaintextTCP},
			Help:    "plaintext traffic reaches a workload through a PERMISSIVE policy that carries a meshguard exception: the exception is in use",
			eval:    evalPlaintextAllowed},
		{Alertname: AlertRetryStorm, Severity: alerting.SeverityWarning, ID: "retry-storm",
			Signals: []string{SignalEnvoyStats, SignalRequestOutcomes},
			Help:    "retries / requests to one destination service exceed the retry ratio (Envoy cluster stats, or the URX share where they are not exported)",
			eval:    evalRetryStorm},
		{Alertname: AlertRetryAmplification, Severity: alerting.SeverityWarning, ID: "retry-amplification",
			Signals: []string{SignalCallChains},
			Help: "along an observed call chain, the retries Istio applies at each hop (Istio's default where none is written) let one call at the entry " +
				"become more requests at a service than the budget (check.thresholds.retryAmplification, default 10); the chain is in the alert",
			eval: evalRetryAmplification},
		{Alertname: AlertUpstreamTimeouts, Severity: alerting.SeverityWarning, ID: "upstream-timeouts",
			Signals: []string{SignalRequestOutcomes},
			Help:    "the share of requests to one destination service that time out upstream (UT), as client sidecars or waypoints see it, exceeds the timeout ratio",
			eval:    evalUpstreamTimeouts},
		{Alertname: AlertCircuitOpen, Severity: alerting.SeverityWarning, ID: "circuit-open",
			Signals: []string{SignalEnvoyStats, SignalRequestOutcomes},
			Help:    "outlier detection has ejected hosts of one outbound cluster, or (without Envoy's cluster stats) requests to a service overflow the circuit breaker (UO) or find no healthy upstream (UH)",
			eval:    evalCircuitOpen},
		{Alertname: AlertTelemetryBlind, Severity: alerting.SeverityWarning, ID: "telemetry-blind",
			Signals: []string{SignalTelemetryPresence},
			Help:    "a namespace the configuration makes STRICT has had no request or TCP series from a destination proxy for the whole window",
			absence: true,
			eval:    evalTelemetryBlind},
	}
	sort.Slice(rules, func(i, j int) bool { return rules[i].Alertname < rules[j].Alertname })
	return rules
}

// degradedRule describes MeshCheckerDegraded for listings; the checker raises it itself.
var degradedRule = Rule{Alertname: AlertCheckerDegraded, Severity: alerting.SeverityWarning, ID: "checker-degraded",
	Help: "the checker's own Prometheus queries (or its reading of the Istio configuration) fail"}

// overLimitRule describes MeshCheckerOverLimit for listings; the checker raises it itself.
var overLimitRule = Rule{Alertname: AlertCheckerOverLimit, Severity: alerting.SeverityWarning, ID: "checker-over-limit",
	Help: "a query returned more series than check.limits.maxSeriesPerSignal, or more alerts were found than check.limits.maxAlertsPerCycle: the excess is not evaluated"}

// AllAlerts lists every alert the checker can raise, its own included.
func AllAlerts() []Rule { return append(Rules(), degradedRule, overLimitRule) }

// evalContext is what rules read: one cycle's query results and the mesh configuration.
type evalContext struct {
	now      time.Time
	settings Settings
	results  map[string]model.Vector // by signal; absent when the query failed
	mesh     *MeshConfig
	// asked is when each signal's answer was asked for (earlier than now when it is reused).
	asked map[string]time.Time
	// memo keeps the retry amplification findings of the call chains answer they came from;
	// nil evaluates every time.
	memo *amplificationMemo
}

// amplificationMemo is the last retry amplification judgement and the time its call chains
// were asked.
type amplificationMemo struct {
	at       time.Time
	findings []Finding
}

// reservedLabel tells whether a label is set by the checker itself.
func reservedLabel(name string) bool {
	switch name {
	case alerting.LabelAlertname, alerting.LabelSeverity, LabelRule:
		return true
	}
	return false
}

func labelValue(m model.Metric, name string) string { return string(m[model.LabelName(name)]) }

// serviceOf splits a service host into its short name and namespace; a host outside the mesh
// keeps its whole name and has no namespace.
func serviceOf(host, domain string) (name, namespace string) {
	if ns, ok := meshHostNamespace(host, domain); ok {
		return strings.SplitN(host, ".", 2)[0], ns
	}
	return host, ""
}

// workloadRef writes namespace/workload, spelling out Istio's "unknown".
func workloadRef(namespace, workload string) string {
	if workload == "" || workload == "unknown" {
		return "a client without a sidecar (source_workload=\"unknown\")"
	}
	return namespace + "/" + workload
}

func percent(v float64) string { return fmt.Sprintf("%.2f%%", v*100) }

func perSecond(v float64, unit string) string { return fmt.Sprintf("%.3g %s/s", v, unit) }
