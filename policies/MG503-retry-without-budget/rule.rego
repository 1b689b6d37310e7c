package meshguard.rules.mg503

import rego.v1

violation contains v if {
	ns := object.get(input.object.metadata, "namespace", "")
	some site in input.sites.httpRoute
	to_number(object.get(site.value, ["retries", "attempts"], 0)) > 0
	some j, dest in site.value.route
	host := meshguard.fqdn(dest.destination.host, ns)
	not has_retry_budget(host)
	v := {
		"field": sprintf("%s.route[%d].destination.host", [site.path, j]),
		"message": sprintf("route retries to %s, whose DestinationRule sets neither retryBudget nor connectionPool.http.maxRetries: concurrent retries are unlimited", [host]),
	}
}

has_retry_budget(host) if {
	some dr in input.related.destinationRules
	meshguard.fqdn(dr.spec.host, object.get(dr.metadata, "namespace", "")) == host
	walk(dr.spec, [path, _])
	budget_path(path)
}

budget_path(path) if path[count(path) - 1] == "retryBudget"

budget_path(path) if {
	count(path) >= 3
	array.slice(path, count(path) - 3, count(path)) == ["connectionPool", "http", "maxRetries"]
}
