package meshguard.rules.mg404

import rego.v1

violation contains v if {
	some i, m in input.object.spec.metrics
	some j, o in m.overrides
	some tag, t in o.tagOverrides
	expr := t.value
	is_string(expr)
	err := meshguard.cel_error(expr)
	err != ""
	v := {
		"field": sprintf("spec.metrics[%d].overrides[%d].tagOverrides[%q].value", [i, j, tag]),
		"message": sprintf("tag %s value %q is not valid CEL: %s", [tag, expr, err]),
	}
}
