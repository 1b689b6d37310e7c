package meshguard.rules.mg504

import rego.v1

violation contains v if {
	not strict_mesh_wide
	v := {
		"field": "",
		"message": sprintf("no mesh-wide STRICT PeerAuthentication in %s: namespaces without their own STRICT policy accept plaintext", [input.rootNamespace]),
	}
}

strict_mesh_wide if {
	some pa in input.related.meshWidePeerAuthentications
	pa.spec.mtls.mode == "STRICT"
}
