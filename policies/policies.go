// Package policies is meshguard's built-in rule bundle. Each rule is one directory,
// `MGnnn-slug/`, holding rule.yaml (ID, severity, parameters with defaults, description,
// remediation), the rule itself in rule.cel or rule.rego, and testdata/pass.yaml and
// testdata/fail.yaml. Rules MG001, MG002, MG003, MG008 and MG009 are implemented by the
// engine; their directories carry metadata and tests only.
package policies

import (
	"embed"

	"github.com/meshguard/meshguard/internal/engine"
)

//go:embed MG*/rule.yaml MG*/rule.cel MG*/rule.rego MG*/testdata
var bundle embed.FS

// dirs is the bundle, sorted by ID. A rule directory that is not listed here is not loaded
// (a test checks the list against the directories).
var dirs = []string{
	"MG001-invalid-document",
	"MG002-evaluation-limit",
	"MG003-istio-validation-warning",
	"MG008-malformed-exception",
	"MG009-expired-exception",
	"MG101-retry-attempts",
	"MG102-retry-no-per-try-timeout",
	"MG103-retry-no-timeout",
	"MG104-retry-exceeds-timeout",
	"MG105-retry-on-unknown",
	"MG106-retry-non-idempotent",
	"MG107-default-retries",
	"MG201-max-ejection-percent",
	"MG202-eject-on-single-error",
	"MG203-deprecated-consecutive-errors",
	"MG204-tls-disabled-in-mesh",
	"MG205-retry-circuit-breaker",
	"MG206-failover-without-outlier-detection",
	"MG207-tls-without-ca-certificates",
	"MG301-mtls-not-strict",
	"MG302-port-mtls-not-strict",
	"MG303-mesh-wide-not-strict",
	"MG304-identity-over-plaintext",
	"MG401-sampling-out-of-range",
	"MG402-mesh-sampling-too-high",
	"MG403-access-log-filter-cel",
	"MG404-tag-override-cel",
	"MG405-high-cardinality-tag",
	"MG406-prometheus-metrics-disabled",
	"MG501-tls-vs-strict",
	"MG502-retry-without-outlier-detection",
	"MG503-retry-without-budget",
	"MG504-no-mesh-wide-strict",
	"MG505-duplicate-scope-policy",
	"MG506-undefined-subset",
}

// All loads every built-in rule.
func All() ([]*engine.Rule, error) {
	return engine.LoadRuleDirs(bundle, dirs, "builtin")
}
