package meshguard.rules.mg505

import rego.v1

violation contains v if {
	not input.scoped
	# An object without metadata.namespace lands wherever it is applied: nothing to compare.
	ns := object.get(input.object.metadata, "namespace", "")
	ns != ""
	some other in input.related.unscopedSiblings
	v := {
		"field": "metadata.name",
		"message": sprintf("%s %s/%s is also %s in namespace %s: Istio applies only one of them (the oldest) and ignores the other", [
			input.object.kind, ns, other.metadata.name, scope(ns), ns,
		]),
	}
}

scope(ns) := "mesh-wide" if ns == input.rootNamespace

scope(ns) := "namespace-wide" if ns != input.rootNamespace
