package meshguard.rules.mg405

import rego.v1

# Attributes whose values are (nearly) unique per request or connection.
high_cardinality := [
	`request\.path`,
	`request\.url_path`,
	`request\.query`,
	`request\.id`,
	`request\.time`,
	`request\.headers\[\s*['"]x-request-id['"]\s*\]`,
	`request\.headers\[\s*['"]traceparent['"]\s*\]`,
	`source\.address`,
	`source\.port`,
	`connection\.id`,
	`upstream\.address`,
	`upstream\.local_address`,
]

violation contains v if {
	some i, m in input.object.spec.metrics
	some j, o in m.overrides
	some tag, t in o.tagOverrides
	object.get(t, "operation", "UPSERT") != "REMOVE"
	expr := t.value
	is_string(expr)
	some pattern in high_cardinality
	found := regex.find_n(pattern, expr, 1)
	count(found) > 0
	v := {
		"field": sprintf("spec.metrics[%d].overrides[%d].tagOverrides[%q].value", [i, j, tag]),
		"message": sprintf("tag %s reads %s, a per-request value: every request makes a new time series", [tag, found[0]]),
	}
}
