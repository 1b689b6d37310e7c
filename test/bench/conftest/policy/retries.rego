# The per-object rules of meshguard's bundle written for conftest, as a user moving from conftest
# would write them: the same checks over the same fields, with the same messages' substance. They
# exist only to compare `meshguard lint` with `conftest test` on the same files (run.sh).
package main

import rego.v1

http_routes contains [i, route] if {
	input.kind == "VirtualService"
	some i, route in input.spec.http
}

attempts(route) := object.get(route, ["retries", "attempts"], 0)

duration_ms(d) := time.parse_duration_ns(d) / 1000000

known_retry_on := {
	"5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "envoy-ratelimited",
	"retriable-4xx", "refused-stream", "retriable-status-codes", "retriable-headers",
	"http3-post-connect-failure", "cancelled", "deadline-exceeded", "internal", "resource-exhausted",
	"unavailable",
}

# MG101
deny contains msg if {
	some [i, route] in http_routes
	attempts(route) > 3
	msg := sprintf("MG101 spec.http[%d].retries.attempts: retries.attempts is %d, above the budget of 3", [i, attempts(route)])
}

# MG102
warn contains msg if {
	some [i, route] in http_routes
	attempts(route) > 0
	not route.retries.perTryTimeout
	msg := sprintf("MG102 spec.http[%d].retries.perTryTimeout: retries without a per-try timeout", [i])
}

# MG103
warn contains msg if {
	some [i, route] in http_routes
	attempts(route) > 0
	duration_ms(object.get(route, "timeout", "0s")) == 0
	msg := sprintf("MG103 spec.http[%d].timeout: retries without a route timeout", [i])
}

# MG104
warn contains msg if {
	some [i, route] in http_routes
	attempts(route) > 0
	t := duration_ms(route.timeout)
	p := duration_ms(route.retries.perTryTimeout)
	t > 0
	p > 0
	(attempts(route) + 1) * p > t
	msg := sprintf("MG104 spec.http[%d].retries.perTryTimeout: (attempts + 1) x perTryTimeout exceeds the route timeout", [i])
}

# MG105
deny contains msg if {
	some [i, route] in http_routes
	some token in split(route.retries.retryOn, ",")
	t := trim_space(token)
	t != ""
	not known_retry_on[t]
	not regex.match(`^[1-5][0-9][0-9]$`, t)
	msg := sprintf("MG105 spec.http[%d].retries.retryOn: retryOn token %q is not a retry condition", [i, t])
}

# MG106: every match is on POST or PATCH by exact method, and retryOn allows replays.
warn contains msg if {
	some [i, route] in http_routes
	attempts(route) > 0
	count(route.match) > 0
	every m in route.match {
		m.method.exact in {"POST", "PATCH"}
	}
	some token in split(object.get(route, ["retries", "retryOn"], "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"), ",")
	not trim_space(token) in {"connect-failure", "refused-stream", "reset-before-request", ""}
	msg := sprintf("MG106 spec.http[%d].retries.retryOn: retrying non-idempotent requests", [i])
}
