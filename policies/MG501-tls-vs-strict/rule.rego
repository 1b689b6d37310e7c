package meshguard.rules.mg501

import rego.v1

violation contains v if {
	mtls := input.related.mtls
	mtls.mode == "STRICT"
	some site in input.sites.trafficPolicy
	mode := site.value.tls.mode
	mode in {"DISABLE", "SIMPLE"}
	v := {
		"field": concat(".", [site.path, "tls.mode"]),
		"message": sprintf(
			"tls.mode is %s for %s, but PeerAuthentication %s makes namespace %s STRICT: client sidecars' %s connections will be refused",
			[mode, input.object.spec.host, object.get(mtls, "policy", "(mesh default)"), mtls.namespace, describe(mode)],
		),
	}
}

describe("DISABLE") := "plaintext"

describe("SIMPLE") := "one-way TLS"
