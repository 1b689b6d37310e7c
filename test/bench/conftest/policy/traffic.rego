package main

import rego.v1

# Every traffic policy of a DestinationRule: top level, subsets, and their port-level settings.
traffic_policies contains [path, tp] if {
	input.kind == "DestinationRule"
	tp := input.spec.trafficPolicy
	path := "spec.trafficPolicy"
}

traffic_policies contains [path, tp] if {
	input.kind == "DestinationRule"
	some j, subset in input.spec.subsets
	tp := subset.trafficPolicy
	path := sprintf("spec.subsets[%d].trafficPolicy", [j])
}

traffic_policies contains [path, pl] if {
	some [base, tp] in traffic_policies_top
	some k, pl in tp.portLevelSettings
	path := sprintf("%s.portLevelSettings[%d]", [base, k])
}

traffic_policies_top contains [path, tp] if {
	input.kind == "DestinationRule"
	tp := input.spec.trafficPolicy
	path := "spec.trafficPolicy"
}

traffic_policies_top contains [path, tp] if {
	input.kind == "DestinationRule"
	some j, subset in input.spec.subsets
	tp := subset.trafficPolicy
	path := sprintf("spec.subsets[%d].trafficPolicy", [j])
}

# MG201
deny contains msg if {
	some [path, tp] in traffic_policies
	tp.outlierDetection.maxEjectionPercent > 50
	msg := sprintf("MG201 %s.outlierDetection.maxEjectionPercent: may eject too many endpoints", [path])
}

# MG202
warn contains msg if {
	some [path, tp] in traffic_policies
	some f in ["consecutive5xxErrors", "consecutiveGatewayErrors", "consecutiveErrors"]
	tp.outlierDetection[f] == 1
	msg := sprintf("MG202 %s.outlierDetection.%s: a single error ejects a host", [path, f])
}

# MG203
warn contains msg if {
	some [path, tp] in traffic_policies
	tp.outlierDetection.consecutiveErrors
	msg := sprintf("MG203 %s.outlierDetection.consecutiveErrors: deprecated", [path])
}

# MG204
warn contains msg if {
	some [path, tp] in traffic_policies
	tp.tls.mode == "DISABLE"
	host := input.spec.host
	mesh_host(host)
	msg := sprintf("MG204 %s.tls.mode: TLS disabled for mesh host %s", [path, host])
}

# MG205
warn contains msg if {
	some [path, tp] in traffic_policies
	tp.connectionPool.http.maxRetries > 1024
	msg := sprintf("MG205 %s.connectionPool.http.maxRetries: retry circuit breaker set too high", [path])
}

warn contains msg if {
	some [path, tp] in traffic_policies
	tp.retryBudget.percent > 20
	msg := sprintf("MG205 %s.retryBudget.percent: retry budget too high", [path])
}

mesh_host(host) if not contains(host, ".")

mesh_host(host) if endswith(host, ".svc.cluster.local")
