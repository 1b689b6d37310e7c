# The CRD schema check of meshguard's MG001 written for conftest, as conftest users check objects
# against a CustomResourceDefinition: OPA's json.match_schema against the storage version's
# OpenAPI schema of the object's kind (data.crd_schemas, written by test/bench/cmd/crdschemas
# from the CRDs meshguard embeds). meshguard's MG001 does more: unknown fields, object
# metadata, list-type invariants, the CRDs' CEL rules and istiod's validation.
package main

import rego.v1

deny contains msg if {
	schema := data.crd_schemas[input.kind]
	[ok, errs] := json.match_schema(input, schema)
	not ok
	some e in errs
	msg := sprintf("MG001 %s: %s", [e.field, e.desc])
}
