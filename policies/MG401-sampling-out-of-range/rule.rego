package meshguard.rules.mg401

import rego.v1

violation contains v if {
	some i, t in input.object.spec.tracing
	p := t.randomSamplingPercentage
	is_number(p)
	not in_range(p)
	v := {
		"field": sprintf("spec.tracing[%d].randomSamplingPercentage", [i]),
		"message": sprintf("randomSamplingPercentage is %v: it must be within [0, 100]", [p]),
	}
}

in_range(p) if {
	p >= 0
	p <= 100
}
