// Package checks is meshguard's runtime checker: it asks Prometheus whether live traffic keeps the
// promises the Istio configuration makes (STRICT mTLS, bounded retries, timeouts, ejections) and
// turns what it finds into alerts.
//
// It follows Prometheus's own alerting pipeline (rules/alerting.go, rules/manager.go): each
// cycle runs one PromQL query per signal, whatever the size of the mesh (signals.go), and the
// rules turn the results into findings (rules*.go). What happens to a finding next, its states
// and its delivery to Alertmanager, is internal/alerting's, which knows nothing of Istio; the
// daemon around the cycles (leader election, the HTTP endpoints) is internal/checkd's. An alert
// is never resolved because data is missing: when a query fails, the alerts that depend on it
// stay as they are and MeshCheckerDegraded fires.
//
// The package also builds the observed service graph (`meshguard graph`).
package checks
