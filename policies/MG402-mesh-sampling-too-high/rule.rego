package meshguard.rules.mg402

import rego.v1

violation contains v if {
	object.get(input.object.metadata, "namespace", "") == input.rootNamespace
	not input.scoped
	limit := input.params.MG402.maxMeshSamplingPercent
	some i, t in input.object.spec.tracing
	p := t.randomSamplingPercentage
	is_number(p)
	p > limit
	v := {
		"field": sprintf("spec.tracing[%d].randomSamplingPercentage", [i]),
		"message": sprintf("mesh-wide Telemetry samples %v%% of all requests, above %v%%", [p, limit]),
	}
}
