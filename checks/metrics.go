package checks

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshguard/meshguard/internal/alerting"
)

// Metrics are the checker's own metrics, registered on the registry the caller passes in (never
// the global one).
type Metrics struct {
	CycleDuration prometheus.Histogram
	Cycles        *prometheus.CounterVec // by result: ok, degraded
	Queries       *prometheus.CounterVec // by signal and result: success, error
	QueryDuration *prometheus.HistogramVec
	AlertsFiring  *prometheus.GaugeVec // by alertname
	Degraded      prometheus.Gauge
	LastSuccess   prometheus.Gauge
	// Alerting are the notifier's, under the same prefix.
	Alerting          *alerting.Metrics
	ConfigLoadErrors  prometheus.Counter
	ConfigLastSuccess prometheus.Gauge
	SeriesOverLimit   *prometheus.CounterVec // by signal
	AlertsOverLimit   prometheus.Counter
	// Unattributed counts findings without a namespace, by alertname: not raised.
	Unattributed *prometheus.CounterVec
	// EnvoyOutboundClusters is 0 when no client exports Envoy's cluster stats.
	EnvoyOutboundClusters prometheus.Gauge
}

// NewMetrics creates the metrics and registers them on reg (nil: not registered, for tests and
// one-shot runs).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns, sub = "meshguard", "check"
	m := &Metrics{
		Alerting: alerting.NewMetrics(reg, ns, sub),
		CycleDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "cycle_duration_seconds", Help: "Duration of one check cycle: configuration, queries, rules and hand-over to the notifier.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}),
		Cycles: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "cycles_total", Help: "Check cycles run, by result (ok, degraded)."}, []string{"result"}),
		Queries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "queries_total", Help: "PromQL queries run, by signal and result (success, error)."}, []string{"signal", "result"}),
		QueryDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "query_duration_seconds", Help: "Duration of each signal's PromQL query.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"signal"}),
		AlertsFiring: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "alerts_firing", Help: "Alerts firing after the last cycle, by alertname."}, []string{"alertname"}),
		Degraded: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "degraded", Help: "1 when the last cycle could not run every query or read the mesh configuration."}),
		LastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "last_success_timestamp_seconds", Help: "When the last cycle with every query successful ran."}),
		ConfigLoadErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "config_load_errors_total", Help: "Failed reads of the mesh configuration (PeerAuthentications)."}),
		ConfigLastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "config_last_success_timestamp_seconds", Help: "When the mesh configuration was last read."}),
		SeriesOverLimit: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "series_over_limit_total", Help: "Series over check.limits.maxSeriesPerSignal left out of a cycle, summed over cycles, by signal."}, []string{"signal"}),
		AlertsOverLimit: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "alerts_over_limit_total", Help: "New alerts over check.limits.maxAlertsPerCycle not raised, summed over cycles."}),
		Unattributed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "unattributed_findings_total", Help: "Findings not raised because their series name no namespace (a PassthroughCluster, host:port or unknown destination), by alertname, summed over cycles."}, []string{"alertname"}),
		EnvoyOutboundClusters: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "envoy_cluster_stats_outbound_clusters", Help: "Outbound clusters whose Envoy stats (retries, outlier ejections) the clients export; 0: none, Istio's default without proxyStatsMatcher, and the checker uses the URX, UO and UH response flags instead."}),
	}
	if reg != nil {
		reg.MustRegister(m.CycleDuration, m.Cycles, m.Queries, m.QueryDuration, m.AlertsFiring, m.Degraded, m.LastSuccess,
			m.ConfigLoadErrors, m.ConfigLastSuccess,
			m.SeriesOverLimit, m.AlertsOverLimit, m.Unattributed, m.EnvoyOutboundClusters)
	}
	return m
}
