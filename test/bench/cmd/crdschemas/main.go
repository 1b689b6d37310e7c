// Command crdschemas writes, as conftest data, the OpenAPI schema of each kind of a file of
// CustomResourceDefinitions: `go run ./test/bench/cmd/crdschemas CRDS.yaml OUT.json` writes
// {"crd_schemas": {"VirtualService": {...}, ...}}, the storage version's schema of each kind.
// The bench's schema policy (test/bench/conftest/schema) checks objects against them with
// OPA's json.match_schema, as conftest users check objects against a CRD's schema.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: crdschemas CRDS.yaml OUT.json")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "crdschemas:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	schemas := map[string]*apiextensionsv1.JSONSchemaProps{}
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	for {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := dec.Decode(&crd); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("decode %s: %w", in, err)
		}
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
