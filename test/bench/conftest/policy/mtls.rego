package main

import rego.v1

# MG301
deny contains msg if {
	input.kind == "PeerAuthentication"
	input.spec.mtls.mode in {"PERMISSIVE", "DISABLE"}
	msg := sprintf("MG301 spec.mtls.mode: mtls.mode is %s", [input.spec.mtls.mode])
}

# MG302
deny contains msg if {
	input.kind == "PeerAuthentication"
	some port, p in input.spec.portLevelMtls
	p.mode in {"PERMISSIVE", "DISABLE"}
	msg := sprintf("MG302 spec.portLevelMtls[%q].mode: port accepts plaintext", [port])
}

# MG303
deny contains msg if {
	input.kind == "PeerAuthentication"
	input.metadata.namespace == "istio-system"
	not input.spec.selector
	object.get(input.spec, ["mtls", "mode"], "UNSET") != "STRICT"
	msg := "MG303 spec.mtls.mode: the mesh-wide policy is not STRICT"
}

# MG401
deny contains msg if {
	input.kind == "Telemetry"
	some i, t in input.spec.tracing
	t.randomSamplingPercentage < 0
	msg := sprintf("MG401 spec.tracing[%d].randomSamplingPercentage: out of range", [i])
}

deny contains msg if {
	input.kind == "Telemetry"
	some i, t in input.spec.tracing
	t.randomSamplingPercentage > 100
	msg := sprintf("MG401 spec.tracing[%d].randomSamplingPercentage: out of range", [i])
}
