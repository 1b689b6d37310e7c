package validate

import (
	"strings"

	istioconfig "istio.io/istio/pkg/config"
	istiovalidation "istio.io/istio/pkg/config/validation"

	"github.com/meshguard/meshguard/internal/manifest"
)

// istiodFuncs are the functions istiod's validating webhook runs for the kinds meshguard
// decodes (pkg/config/schema/collections maps each kind to one of them).
var istiodFuncs = map[string]istiovalidation.ValidateFunc{
	manifest.KindVirtualService:      istiovalidation.ValidateVirtualService,
	manifest.KindDestinationRule:     istiovalidation.ValidateDestinationRule,
	manifest.KindPeerAuthentication:  istiovalidation.ValidatePeerAuthentication,
	manifest.KindTelemetry:           istiovalidation.ValidateTelemetry,
	manifest.KindAuthorizationPolicy: istiovalidation.ValidateAuthorizationPolicy,
}

// istiod runs istiod's validation of o's typed spec. Istio's errors name no field, so they
// are reported at spec.
func istiod(o *manifest.Object) []Issue {
	f, ok := istiodFuncs[o.Kind]
	if !ok {
		return nil
	}
	spec, err := o.Spec()
	if err != nil {
		// Loading reports a spec that does not decode; there is nothing for istiod to judge.
		return nil
	}
	group, version, _ := strings.Cut(o.APIVersion, "/")
	ns := o.Namespace
	if ns == "" {
		ns = "default" // where kubectl would create it
	}
	warn, err := f(istioconfig.Config{
		Meta: istioconfig.Meta{
			GroupVersionKind: istioconfig.GroupVersionKind{Group: group, Version: version, Kind: o.Kind},
			Name:             o.Name, Namespace: ns, Labels: o.Labels, Annotations: o.Annotations,
		},
		Spec: spec,
	})
	var issues []Issue
	for _, e := range flatten(err) {
		issues = append(issues, Issue{Path: "spec", Source: SourceIstiod, Message: e.Error()})
	}
	for _, e := range flatten(warn) {
		issues = append(issues, Issue{Path: "spec", Source: SourceIstiod, Message: e.Error(), Warning: true})
	}
	return issues
}

// flatten splits Istio's aggregated errors (hashicorp/go-multierror, errors.Join) into one per
// reason, so each becomes its own finding.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	var list []error
	switch e := err.(type) {
	case interface{ WrappedErrors() []error }:
		list = e.WrappedErrors()
	case interface{ Unwrap() []error }:
		list = e.Unwrap()
	default:
		return []error{err}
	}
	if len(list) == 0 {
		return []error{err}
	}
	var out []error
	for _, x := range list {
		out = append(out, flatten(x)...)
	}
	return out
}
