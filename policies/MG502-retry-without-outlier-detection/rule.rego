package meshguard.rules.mg502

import rego.v1

violation contains v if {
	ns := object.get(input.object.metadata, "namespace", "")
	some site in input.sites.httpRoute
	to_number(object.get(site.value, ["retries", "attempts"], 0)) > 0
	some j, dest in site.value.route
	host := meshguard.fqdn(dest.destination.host, ns)
	not has_outlier_detection(host)
	v := {
		"field": sprintf("%s.route[%d].destination.host", [site.path, j]),
		"message": sprintf("route retries to %s, but no DestinationRule gives it outlierDetection: retries keep hitting failing endpoints", [host]),
	}
}

has_outlier_detection(host) if {
	some dr in input.related.destinationRules
	meshguard.fqdn(dr.spec.host, object.get(dr.metadata, "namespace", "")) == host
	walk(dr.spec, [path, _])
	path[count(path) - 1] == "outlierDetection"
}
