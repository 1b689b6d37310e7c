package meshguard.rules.mg403

import rego.v1

violation contains v if {
	some i, log in input.object.spec.accessLogging
	expr := log.filter.expression
	is_string(expr)
	err := meshguard.cel_error(expr)
	err != ""
	v := {
		"field": sprintf("spec.accessLogging[%d].filter.expression", [i]),
		"message": sprintf("filter expression %q is not valid CEL: %s", [expr, err]),
	}
}
