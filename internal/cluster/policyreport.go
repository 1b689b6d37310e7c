package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/meshguard/meshguard/internal/report"
)

var (
	policyReports        = schema.GroupVersionResource{Group: "wgpolicyk8s.io", Version: "v1alpha2", Resource: "policyreports"}
	clusterPolicyReports = schema.GroupVersionResource{Group: "wgpolicyk8s.io", Version: "v1alpha2", Resource: "clusterpolicyreports"}
)

// WritePolicyReports applies reports (server-side apply, field manager meshguard) and deletes
// the reports meshguard wrote earlier that have no findings now, so that what stays in the
// cluster is the last audit. With namespace set, only that namespace's report is written or
// removed (the audit saw only its findings).
func WritePolicyReports(ctx context.Context, cfg *rest.Config, reports []report.PolicyReportObject, namespace string) error {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("write policy reports: %w", err)
	}
	keep := map[string]bool{}
	for _, r := range reports {
		data, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("write %s: %w", r.Kind, err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(data); err != nil {
			return fmt.Errorf("write %s: %w", r.Kind, err)
		}
		var ri dynamic.ResourceInterface = dyn.Resource(clusterPolicyReports)
		if r.Kind == "PolicyReport" {
			ri = dyn.Resource(policyReports).Namespace(r.Metadata.Namespace)
		}
		if _, err := ri.Apply(ctx, r.Metadata.Name, u, metav1.ApplyOptions{FieldManager: "meshguard", Force: true}); err != nil {
			if apierrors.IsNotFound(err) {
				err = fmt.Errorf("%w (are the wgpolicyk8s.io CRDs installed, and the namespace there?)", err)
			}
			return fmt.Errorf("write %s %s/%s: %w", r.Kind, r.Metadata.Namespace, r.Metadata.Name, err)
		}
		keep[r.Kind+"/"+r.Metadata.Namespace+"/"+r.Metadata.Name] = true
	}
	var errs []error
	prune := func(kind string, ri dynamic.ResourceInterface) {
		list, err := ri.List(ctx, metav1.ListOptions{LabelSelector: report.ManagedByLabel + "=meshguard"})
		if err != nil {
			errs = append(errs, fmt.Errorf("list %ss: %w", kind, err))
			return
		}
		for _, it := range list.Items {
			if keep[kind+"/"+it.GetNamespace()+"/"+it.GetName()] {
				continue
			}
			target := ri
			if nri, ok := ri.(dynamic.NamespaceableResourceInterface); ok && it.GetNamespace() != "" {
				target = nri.Namespace(it.GetNamespace())
			}
			if err := target.Delete(ctx, it.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("delete stale %s %s/%s: %w", kind, it.GetNamespace(), it.GetName(), err))
			}
		}
	}
	if namespace != "" {
		prune("PolicyReport", dyn.Resource(policyReports).Namespace(namespace))
	} else {
		prune("PolicyReport", dyn.Resource(policyReports))
		prune("ClusterPolicyReport", dyn.Resource(clusterPolicyReports))
	}
	return errors.Join(errs...)
}
