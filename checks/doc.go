// Package checks is meshguard's runtime checker: it asks Prometheus whether live traffic keeps the
// promises the Istio configuration makes (STRICT mTLS, bounded retries, timeouts, ejections) and
// raises alerts in Alertmanager when it does not.
//
// It follows Prometheus's own alerting pipeline (rules/alerting.go, rules/manager.go and
// notifier/): each cycle runs one PromQL query per signal, whatever the size of the mesh; the
// rules turn the results into findings; a state machine with an injected clock turns findings
// into alerts; firing alerts are re-sent every cycle with EndsAt a few cycles ahead and a
// resolved alert is sent once with EndsAt = now. Unlike Prometheus, every Alertmanager gets its
// own queue that keeps the latest state of each alert and retries with backoff, so an
// Alertmanager that is down loses nothing. An alert is never resolved because data is missing:
// when a query fails, the alerts that depend on it stay as they are and MeshCheckerDegraded fires.
//
// The package also builds the observed service graph (`meshguard graph`).
package checks
