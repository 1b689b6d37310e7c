// Command crdschemas writes, as conftest data, the OpenAPI schema of each kind of the Istio CRDs
// meshguard embeds: `go run ./test/bench/cmd/crdschemas internal/validate/crds.gen.json OUT.json`
// writes {"crd_schemas": {"VirtualService": {...}, ...}}, the storage version's schema of each
// kind.
// The bench's schema policy (test/bench/conftest/schema) checks objects against them with
// OPA's json.match_schema, as conftest users check objects against a CRD's schema.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: crdschemas CRDS.json OUT.json")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "crdschemas:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	data, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	var crds map[string]apiextensionsv1.CustomResourceDefinition // by group/Kind
	if err := json.Unmarshal(data, &crds); err != nil {
		return fmt.Errorf("decode %s: %w", in, err)
	}
	schemas := map[string]*apiextensionsv1.JSONSchemaProps{}
	for _, crd := range crds {
		for _, v := range crd.Spec.Versions {
			if v.Storage && v.Schema != nil {
				schemas[crd.Spec.Names.Kind] = v.Schema.OpenAPIV3Schema
			}
		}
	}
	if len(schemas) == 0 {
		return fmt.Errorf("%s: no CustomResourceDefinition with a schema", in)
	}
	b, err := json.Marshal(map[string]any{"crd_schemas": schemas})
	if err != nil {
		return err
	}
	return os.WriteFile(out, b, 0o644)
}
