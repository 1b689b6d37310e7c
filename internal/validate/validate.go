// Package validate judges Istio objects as a cluster does before it stores them: kube-apiserver
// with the Istio CRDs (structural schema, strict fields, x-kubernetes-validations CEL rules) and
// istiod's validating webhook (istio.io/istio/pkg/config/validation). A kind's schema and CEL
// programs are compiled once, when an object of that kind is first validated; each object then
// costs only its evaluation.
package validate

import (
	"context"
	"fmt"
	"strings"
	"sync"

	istiolog "istio.io/istio/pkg/log"

	"github.com/meshguard/meshguard/internal/manifest"
)

// Issue is one reason the cluster refuses an object, or one warning istiod returns with it.
type Issue struct {
	// Path is the field at fault in meshguard's notation (spec.http[0].timeout); "spec" for
	// istiod's findings, which name no field.
	Path    string
	Message string
	// Source is who refuses: SourceAPIServer or SourceIstiod.
	Source  string
	Warning bool
}

// Who refuses an object.
const (
	SourceAPIServer = "CRD schema"
	SourceIstiod    = "istiod"
)

// Validator holds the compiled Istio CRDs. It is immutable and safe for concurrent use.
type Validator struct {
	crds map[groupKind]*crdKind
}

// New indexes the Istio CRDs embedded in the binary; each is decoded and compiled when an object
// of its kind is first validated.
func New() (*Validator, error) {
	// istiod's validation also logs each warning it returns; meshguard reports them as findings.
	if s := istiolog.FindScope("validation"); s != nil {
		s.SetOutputLevel(istiolog.NoneLevel)
	}
	crds, err := indexCRDs(crdFile)
	if err != nil {
		return nil, err
	}
	return &Validator{crds: crds}, nil
}

// Schema validates a generic Istio object as kube-apiserver does on create with strict field
// validation. Objects of a group and kind the Istio CRDs do not define are not judged (nil);
// an Istio kind under a version its CRD does not serve is refused.
func (v *Validator) Schema(ctx context.Context, obj map[string]any) []Issue {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	group, version, ok := strings.Cut(apiVersion, "/")
	if !ok {
		return nil
	}
	crd, ok := v.crds[groupKind{group, kind}]
	if !ok {
		return nil
	}
	versions, err := crd.compiled()
	if err != nil {
		// The embedded CRDs compile (a test compiles every one): this is meshguard's fault, and
		// the object is not passed unchecked.
		return []Issue{{Source: SourceAPIServer, Message: fmt.Sprintf("meshguard cannot check %s: %v", kind, err)}}
	}
	cv, ok := versions[version]
	if !ok {
		return []Issue{{Path: "apiVersion", Source: SourceAPIServer,
			Message: fmt.Sprintf("no matches for kind %q in version %q", kind, apiVersion)}}
	}
	issues := cv.validate(ctx, obj)
	for i := range issues {
		issues[i].Source = SourceAPIServer
	}
	return issues
}

// Object validates an object meshguard decoded: the API server's checks on its generic form,
// then istiod's on its typed spec. Istio's warnings come back as issues with Warning set.
// With schemaChecked, the API server has already validated the object against the schema (it
// does before it calls any validating webhook), and only istiod's checks are left.
func (v *Validator) Object(ctx context.Context, o *manifest.Object, schemaChecked bool) []Issue {
	if !schemaChecked {
		if issues := v.Schema(ctx, o.Raw); len(issues) > 0 {
			// The API server refuses before it calls any validating webhook, so istiod never
			// sees it.
			return issues
		}
	}
	return istiod(o)
}

// Validate judges o and returns what the cluster refuses as Problems (MG001 findings) and what
// istiod warns about as Problems with Warning set (MG003 findings). It implements
// engine.Validator.
func (v *Validator) Validate(ctx context.Context, o *manifest.Object, schemaChecked bool) []*manifest.Problem {
	issues := v.Object(ctx, o, schemaChecked)
	if len(issues) == 0 {
		return nil
	}
	out := make([]*manifest.Problem, 0, len(issues))
	for _, is := range issues {
		out = append(out, &manifest.Problem{
			File: o.File, Line: o.FieldLine(is.Path), Path: is.Path,
			Message:    is.Source + ": " + is.Message,
			Warning:    is.Warning,
			APIVersion: o.APIVersion, Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, Annotations: o.Annotations,
		})
	}
	return out
}

// Default is the Validator of the embedded CRDs, compiled on first use and shared by every
// engine the process builds (a configuration reload builds a new engine, not new CRDs).
var Default = sync.OnceValues(New)
