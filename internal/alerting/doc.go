// Package alerting holds alert instances through their states and delivers them to
// Alertmanager, as Prometheus's rules/alerting.go and notifier/ do, and knows nothing of Istio:
// `meshguard check` (package checks) finds the conditions, this package decides what is sent
// when. A Tracker turns each cycle's findings into pending, firing and resolved alerts with
// Prometheus's timestamps; a Notifier gives every Alertmanager its own queue that keeps the
// latest state of each alert and retries with backoff, so an Alertmanager that is down loses
// nothing.
package alerting

// Label names and severities the state machine and the notifier read.
const (
	LabelAlertname = "alertname"
	LabelSeverity  = "severity"

	SeverityCritical = "critical"
	SeverityWarning  = "warning"
)
