package meshguard.rules.mg406

import rego.v1

violation contains v if {
	some i, m in input.object.spec.metrics
	uses_prometheus(m)
	some j, o in m.overrides
	o.disabled == true
	metric := object.get(object.get(o, "match", {}), "metric", "ALL_METRICS")
	metric in {"ALL_METRICS", "REQUEST_COUNT"}
	v := {
		"field": sprintf("spec.metrics[%d].overrides[%d].disabled", [i, j]),
		"message": sprintf("%s is disabled for the prometheus provider: the runtime checker cannot confirm mTLS or retries in this scope", [metric]),
	}
}

# No providers means the mesh default provider, which is prometheus in a default install.
uses_prometheus(m) if count(object.get(m, "providers", [])) == 0

uses_prometheus(m) if {
	some p in m.providers
	p.name == "prometheus"
}
