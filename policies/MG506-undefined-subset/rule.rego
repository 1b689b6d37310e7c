package meshguard.rules.mg506

import rego.v1

violation contains v if {
	ns := object.get(input.object.metadata, "namespace", "")
	some site in input.sites.httpRoute
	some j, dest in site.value.route
	subset := dest.destination.subset
	subset != ""
	host := meshguard.fqdn(dest.destination.host, ns)
	not defined(host, subset)
	v := {
		"field": sprintf("%s.route[%d].destination.subset", [site.path, j]),
		"message": sprintf("subset %q of %s is not defined by any DestinationRule: requests routed here fail with 503 (NR)", [subset, host]),
	}
}

defined(host, subset) if {
	some dr in input.related.destinationRules
	meshguard.fqdn(dr.spec.host, object.get(dr.metadata, "namespace", "")) == host
	some s in dr.spec.subsets
	s.name == subset
}
