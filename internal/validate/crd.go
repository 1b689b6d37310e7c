package validate

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/api/equality"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
	kubeopenapivalidate "k8s.io/kube-openapi/pkg/validation/validate"

	"github.com/meshguard/meshguard/internal/manifest"
)

// crdFile holds kubernetes/customresourcedefinitions.gen.yaml of the istio.io/api version go.mod
// pins, as JSON keyed by group/Kind, so that a process decodes and compiles only the CRDs of the
// kinds it meets (go generate refreshes it; a test keeps it equal to the module's file).
//
//go:generate go test -run ^TestTheEmbeddedCRDsAreThoseOfThePinnedAPIModule$ -update-crds .
//go:embed crds.gen.json
var crdFile []byte

// crdVersion is one served version of one CRD, compiled: what kube-apiserver's customresource
// strategy holds per version.
type crdVersion struct {
	namespaced bool
	status     bool
	structural *structuralschema.Structural
	schema     *schemaValidator
	cel        *cel.Validator
}

type groupKind struct{ group, kind string }

// crdKind is one CRD of the embedded file, decoded and compiled the first time an object of its
// kind is validated: a lint run or a webhook meets a few of the fifteen kinds, and decoding and
// compiling all of them was 80 ms of every start.
type crdKind struct {
	raw      json.RawMessage
	once     sync.Once
	versions map[string]*crdVersion
	err      error
}

func (c *crdKind) compiled() (map[string]*crdVersion, error) {
	c.once.Do(func() { c.versions, c.err = loadCRD(c.raw) })
	return c.versions, c.err
}

// indexCRDs reads the embedded file's index: the CRDs by group and kind, not yet decoded.
func indexCRDs(data []byte) (map[groupKind]*crdKind, error) {
	var byKind map[string]json.RawMessage
	if err := json.Unmarshal(data, &byKind); err != nil {
		return nil, fmt.Errorf("decode Istio CRDs: %w", err)
	}
	out := map[groupKind]*crdKind{}
	for k, raw := range byKind {
		group, kind, ok := strings.Cut(k, "/")
		if !ok {
			return nil, fmt.Errorf("decode Istio CRDs: key %q is not group/Kind", k)
		}
		out[groupKind{group, kind}] = &crdKind{raw: raw}
	}
	if len(out) == 0 {
		return nil, errors.New("decode Istio CRDs: no CustomResourceDefinition found")
	}
	return out, nil
}

// loadCRD decodes one CRD and compiles its served versions.
func loadCRD(raw []byte) (map[string]*crdVersion, error) {
	var crd apiextensionsv1.CustomResourceDefinition
	if err := json.Unmarshal(raw, &crd); err != nil {
		return nil, fmt.Errorf("decode Istio CRD: %w", err)
	}
	versions := map[string]*crdVersion{}
	var compiled []apiextensionsv1.CustomResourceDefinitionVersion
versions:
	for _, v := range crd.Spec.Versions {
		if !v.Served || v.Schema == nil {
			continue
		}
		// Istio serves every version of a kind with one schema: compile it once.
		for _, c := range compiled {
			if equality.Semantic.DeepEqual(c.Schema, v.Schema) && equality.Semantic.DeepEqual(c.Subresources, v.Subresources) {
				versions[v.Name] = versions[c.Name]
				continue versions
			}
		}
		cv, err := compileVersion(v)
		if err != nil {
			return nil, fmt.Errorf("compile CRD %s version %s: %w", crd.Name, v.Name, err)
		}
		cv.namespaced = crd.Spec.Scope == apiextensionsv1.NamespaceScoped
		versions[v.Name] = cv
		compiled = append(compiled, v)
	}
	return versions, nil
}

// compileVersion builds the schema validator, the structural schema and the CEL programs the
// way kube-apiserver's CRD handler does (customresource_handler.go), once.
func compileVersion(v apiextensionsv1.CustomResourceDefinitionVersion) (*crdVersion, error) {
	internal := &apiextensionsinternal.CustomResourceValidation{}
	if err := apiextensionsv1.Convert_v1_CustomResourceValidation_To_apiextensions_CustomResourceValidation(v.Schema, internal, nil); err != nil {
		return nil, fmt.Errorf("convert schema: %w", err)
	}
	s, err := structuralschema.NewStructural(internal.OpenAPIV3Schema)
	if err != nil {
		return nil, fmt.Errorf("structural schema: %w", err)
	}
	_, openAPI, err := apiservervalidation.NewSchemaValidator(internal.OpenAPIV3Schema)
	if err != nil {
		return nil, fmt.Errorf("schema validator: %w", err)
	}
	return &crdVersion{
		status:     v.Subresources != nil && v.Subresources.Status != nil,
		structural: s,
		schema:     newSchemaValidator(openAPI),
		// PerCallLimit bounds each rule's evaluation, as in the API server.
		cel: cel.NewValidator(s, true, celconfig.PerCallLimit),
	}, nil
}

// validate runs, on a copy of obj, what kube-apiserver runs on a create with strict field
// validation: unknown fields (pruning), object metadata, the OpenAPI schema, list-type
// invariants and the x-kubernetes-validations CEL rules within the per-request cost budget.
func (cv *crdVersion) validate(ctx context.Context, obj map[string]any) []Issue {
	// A copy (pruning edits it) with whole numbers as int64, as the API server decodes JSON.
	u, _ := manifest.Normalize(obj).(map[string]any)
	if cv.status {
		delete(u, "status") // a create cannot set status: the API server drops it
	}
	var issues []Issue
	unknown := pruning.PruneWithOptions(u, cv.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	// As the API server decodes: a null where the schema allows none is dropped (the Istio CRDs
	// set no defaults, so there is nothing to default in its place).
	structuraldefaulting.PruneNonNullableNullsWithoutDefaults(u, cv.structural)
	_, _, metaUnknown, err := schemaobjectmeta.GetObjectMetaWithOptions(u, schemaobjectmeta.ObjectMetaOptions{ReturnUnknownFieldPaths: true})
	if err != nil {
		return append(issues, Issue{Path: "metadata", Message: err.Error()})
	}
	for _, p := range append(unknown, metaUnknown...) {
		// The API server's words under strict field validation (kubectl's default).
		issues = append(issues, Issue{Path: meshPath(p), Message: fmt.Sprintf("unknown field %q", p)})
	}

	meta := &unstructured.Unstructured{Object: u}
	if cv.namespaced && meta.GetNamespace() == "" {
		// The API server takes the namespace from the request; a file may leave it out.
		meta.SetNamespace("default")
	}
	var errs field.ErrorList
	errs = append(errs, apimachineryvalidation.ValidateObjectMetaAccessor(meta, cv.namespaced, apimachineryvalidation.NameIsDNSSubdomain, field.NewPath("metadata"))...)
	errs = append(errs, apiservervalidation.ValidateCustomResource(nil, u, cv.schema)...)
	errs = append(errs, schemaobjectmeta.Validate(ctx, nil, u, cv.structural, false)...)
	errs = append(errs, listtype.ValidateListSetsAndMaps(nil, cv.structural, u)...)
	if !blocking(errs) {
		// As the API server, CEL rules run only when the types are what the schema promises.
		celErrs, _ := cv.cel.Validate(ctx, nil, cv.structural, u, nil, celconfig.RuntimeCELCostBudget)
		errs = append(errs, celErrs...)
	}
	for _, e := range errs {
		issues = append(issues, Issue{Path: meshPath(e.Field), Message: e.ErrorBody()})
	}
	return issues
}

// schemaValidator is kube-openapi's schema validator as the API server runs it on a create
// (apiextensions-apiserver's RatchetingSchemaValidator.Validate: a new validate.SchemaValidator
// over the CRD's OpenAPI schema, from the root, for every object), except that the validators
// of nested fields are kept from one object to the next instead of built again for each field
// of each object, which was a quarter of lint's validation time. It uses kube-openapi's own
// hooks for this (SchemaValidatorOptions.NewValidatorForField and NewValidatorForIndex, as
// ratcheting does); the validation itself is kube-openapi's, unchanged.
//
// A field's validator is found by its path (spec.http[0].route[1].destination), which names
// one place in a structural schema (no patternProperties; properties and additionalProperties
// never together) as long as no map key on the way holds a '.' or '[': below such a key, and
// past maxCachedValidators, validators are built as kube-openapi builds them. Validators hold
// no state between calls (Validate only reads them), so one is shared by every goroutine.
type schemaValidator struct {
	root   *kubeopenapivalidate.SchemaValidator
	cached sync.Map // path -> kubeopenapivalidate.ValueValidator
	size   atomic.Int64
}

// maxCachedValidators bounds the validators kept per CRD version (about 2 KB each, so 8 MB):
// paths with list indexes and map keys come from the objects, and a file of one object with a
// million map keys must not keep a million validators. Istio's own configs and the generated
// 10,000-object mesh use a few hundred paths per kind.
const maxCachedValidators = 4096

func newSchemaValidator(openAPI *spec.Schema) *schemaValidator {
	s := &schemaValidator{}
	s.root = kubeopenapivalidate.NewSchemaValidator(openAPI, nil, "", strfmt.Default, s.reuse)
	return s
}

// Validate is apiservervalidation.SchemaCreateValidator's, for ValidateCustomResource.
func (s *schemaValidator) Validate(obj any, _ ...apiservervalidation.ValidationOption) *kubeopenapivalidate.Result {
	return s.root.Validate(obj)
}

// reuse makes a validator's children come from the cache.
func (s *schemaValidator) reuse(o *kubeopenapivalidate.SchemaValidatorOptions) {
	o.NewValidatorForField = s.field
	o.NewValidatorForIndex = s.index
}

// fresh makes a validator's children, and theirs, built anew, as kube-openapi does.
func fresh(o *kubeopenapivalidate.SchemaValidatorOptions) {
	o.NewValidatorForField, o.NewValidatorForIndex = nil, nil
}

func (s *schemaValidator) field(name string, schema *spec.Schema, root any, path string, formats strfmt.Registry, _ ...kubeopenapivalidate.Option) kubeopenapivalidate.ValueValidator {
	if strings.ContainsAny(name, ".[") {
		// The path would be ambiguous (a key "x.exact" of a map of StringMatch against field
		// exact of key "x"): this subtree is never cached.
		return kubeopenapivalidate.NewSchemaValidator(schema, root, path, formats, fresh)
	}
	return s.child(schema, root, path, formats)
}

func (s *schemaValidator) index(_ int, schema *spec.Schema, root any, path string, formats strfmt.Registry, _ ...kubeopenapivalidate.Option) kubeopenapivalidate.ValueValidator {
	return s.child(schema, root, path, formats)
}

func (s *schemaValidator) child(schema *spec.Schema, root any, path string, formats strfmt.Registry) kubeopenapivalidate.ValueValidator {
	if v, ok := s.cached.Load(path); ok {
		return v.(kubeopenapivalidate.ValueValidator)
	}
	v := kubeopenapivalidate.NewSchemaValidator(schema, root, path, formats, s.reuse)
	if s.size.Load() < maxCachedValidators {
		if _, loaded := s.cached.LoadOrStore(path, v); !loaded {
			s.size.Add(1)
		}
	}
	return v
}

// blocking mirrors hasBlockingErr in the API server's customresource strategy.
func blocking(errs field.ErrorList) bool {
	for _, e := range errs {
		switch e.Type {
		case field.ErrorTypeNotSupported, field.ErrorTypeRequired, field.ErrorTypeTooLong, field.ErrorTypeTooMany, field.ErrorTypeTypeInvalid:
			return true
		}
	}
	return false
}

// meshPath rewrites a path as the API server prints it (spec.http[0].match,
// metadata.labels[app.kubernetes.io/name]) in meshguard's notation, which quotes keys that are
// not identifiers.
func meshPath(p string) string {
	if p == "<nil>" {
		return "" // the object itself, as field.Path prints no path
	}
	out := ""
	for len(p) > 0 {
		switch p[0] {
		case '.':
			p = p[1:]
		case '[':
			end := strings.IndexByte(p, ']')
			if end < 0 {
				end = len(p)
			}
			key := p[1:end]
			if i, err := strconv.Atoi(key); err == nil && i >= 0 {
				out = manifest.JoinIndex(out, i)
			} else {
				out = manifest.JoinField(out, key)
			}
			p = p[min(end+1, len(p)):]
		default:
			end := strings.IndexAny(p, ".[")
			if end < 0 {
				end = len(p)
			}
			out = manifest.JoinField(out, p[:end])
			p = p[end:]
		}
	}
	return out
}
