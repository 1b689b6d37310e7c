package webhook

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshguard/meshguard/internal/manifest"
)

// Results a request is counted under in meshguard_webhook_requests_total.
const (
	ResultAllowed = "allowed" // admitted with nothing to say
	ResultWarned  = "warned"  // admitted with warnings
	ResultDenied  = "denied"  // refused for error findings
	// ResultFailedOpen and ResultFailedClosed: evaluation failed (rule error, panic, deadline,
	// inventory not synced) and webhook.failurePolicy answered allow or deny.
	ResultFailedOpen   = "failed_open"
	ResultFailedClosed = "failed_closed"
	ResultInvalid      = "invalid" // a malformed request, answered 400
)

// Metrics are the webhook's Prometheus collectors. They live on the registry passed to
// NewMetrics (controller-runtime's, in `meshguard serve`), never on a package-level one.
type Metrics struct {
	requests         *prometheus.CounterVec
	latency          *prometheus.HistogramVec
	findings         *prometheus.CounterVec
	evaluationErrors prometheus.Counter
	panics           prometheus.Counter
	reloads          *prometheus.CounterVec
	inventory        *prometheus.GaugeVec
	istiodValidation *prometheus.CounterVec
	// istiodRun and istiodLeft are istiodValidation's two series, looked up once.
	istiodRun, istiodLeft prometheus.Counter
}

// NewMetrics creates the collectors and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshguard_webhook_requests_total",
			Help: "Admission requests by kind, operation and result (allowed, warned, denied, failed_open, failed_closed, invalid).",
		}, []string{"kind", "operation", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "meshguard_webhook_request_duration_seconds",
			Help: "Time from receiving an admission request to writing its answer.",
			// From 0.5 ms (a review against a cached inventory) to 10 s (past any API server's
			// webhook timeout).
			Buckets: []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"kind", "operation"}),
		findings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshguard_webhook_findings_total",
			Help: "Findings reported at admission, by rule and severity, whatever the enforcement.",
		}, []string{"rule", "severity"}),
		evaluationErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshguard_webhook_evaluation_errors_total",
			Help: "Reviews that could not be evaluated (rule error, panic, deadline, inventory not synced) and were answered by the failure policy.",
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshguard_webhook_panics_total",
			Help: "Panics recovered while reviewing a request (also counted as evaluation errors).",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshguard_webhook_config_reloads_total",
			Help: "Configuration reloads by result (success, failure).",
		}, []string{"result"}),
		inventory: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshguard_webhook_inventory_objects",
			Help: "Objects in the webhook's inventory cache, by kind.",
		}, []string{"kind"}),
		istiodValidation: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshguard_webhook_istiod_validation_total",
			Help: "Reviewed objects by who ran istiod's validation: meshguard (run), or istiod's own validating webhook, which fails closed and is sure to see them (left_to_istiod).",
		}, []string{"by"}),
	}
	m.istiodRun = m.istiodValidation.WithLabelValues("run")
	m.istiodLeft = m.istiodValidation.WithLabelValues("left_to_istiod")
	var errs []error
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.findings, m.evaluationErrors, m.panics, m.reloads, m.inventory, m.istiodValidation} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("register webhook metrics: %w", err)
	}
	return m, nil
}

// kindLabel bounds the kind label to the checked kinds: requests carry whatever a client sends.
func kindLabel(kind string) string {
	switch kind {
	case manifest.KindVirtualService, manifest.KindDestinationRule, manifest.KindPeerAuthentication, manifest.KindTelemetry,
		manifest.KindAuthorizationPolicy:
		return kind
	case "":
		return "unknown"
	}
	return "other"
}

func operationLabel(op string) string {
	switch op {
	case "CREATE", "UPDATE", "DELETE", "CONNECT":
		return op
	case "":
		return "unknown"
	}
	return "other"
}
