package alerting

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the notifier's collectors, by Alertmanager URL.
type Metrics struct {
	Sent        *prometheus.CounterVec
	SendErrors  *prometheus.CounterVec
	Dropped     *prometheus.CounterVec
	QueueLength *prometheus.GaugeVec
}

// NewMetrics creates the collectors under namespace and subsystem (meshguard_check_ for `meshguard
// check`) and registers them on reg; a nil reg registers nothing (one-shot runs and tests).
func NewMetrics(reg prometheus.Registerer, namespace, subsystem string) *Metrics {
	m := &Metrics{
		Sent: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: subsystem,
			Name: "alertmanager_alerts_sent_total", Help: "Alerts delivered to each Alertmanager."}, []string{"alertmanager"}),
		SendErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: subsystem,
			Name: "alertmanager_send_errors_total", Help: "Failed attempts to post alerts to each Alertmanager (they are retried)."}, []string{"alertmanager"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: subsystem,
			Name: "alertmanager_alerts_dropped_total", Help: "Alert updates dropped because an Alertmanager's queue was full."}, []string{"alertmanager"}),
		QueueLength: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Subsystem: subsystem,
			Name: "alertmanager_queue_length", Help: "Alert updates waiting for each Alertmanager."}, []string{"alertmanager"}),
	}
	if reg != nil {
		reg.MustRegister(m.Sent, m.SendErrors, m.Dropped, m.QueueLength)
	}
	return m
}
