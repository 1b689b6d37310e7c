package cluster

import (
	"context"
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"

	"github.com/meshguard/meshguard/internal/graph"
)

// Workloads reads the Deployments, StatefulSets and DaemonSets of namespaces, with the
// ReplicaSets and ControllerRevisions that record their rollouts, paged, for the service map's
// team, tier and last deploy. Istio names the workload of their pods after them, so their
// namespace and name are the workload's. The rollout records are read as metadata only: a
// Deployment keeps up to ten old ReplicaSets, each with a whole pod template, and only their
// owners and creation times are needed.
func Workloads(ctx context.Context, kube kubernetes.Interface, meta metadata.Interface, namespaces []string) ([]graph.Workload, error) {
	apps := kube.AppsV1()
	var out []graph.Workload
	for _, ns := range namespaces {
		deps, err := listAll(ctx, apps.Deployments(ns).List, func(l *appsv1.DeploymentList) []appsv1.Deployment { return l.Items })
		if err != nil {
			return nil, fmt.Errorf("list deployments in namespace %s: %w", ns, err)
		}
		sts, err := listAll(ctx, apps.StatefulSets(ns).List, func(l *appsv1.StatefulSetList) []appsv1.StatefulSet { return l.Items })
		if err != nil {
			return nil, fmt.Errorf("list statefulsets in namespace %s: %w", ns, err)
		}
		dss, err := listAll(ctx, apps.DaemonSets(ns).List, func(l *appsv1.DaemonSetList) []appsv1.DaemonSet { return l.Items })
		if err != nil {
			return nil, fmt.Errorf("list daemonsets in namespace %s: %w", ns, err)
		}
		// The rollout records are listed only where there is something they could belong to.
		if len(deps) > 0 {
			sets, err := listAll(ctx, meta.Resource(appsv1.SchemeGroupVersion.WithResource("replicasets")).Namespace(ns).List, metadataItems)
			if err != nil {
				return nil, fmt.Errorf("list replicasets in namespace %s: %w", ns, err)
			}
			out = append(out, deploymentWorkloads(deps, sets)...)
		}
		if len(sts)+len(dss) > 0 {
			revs, err := listAll(ctx, meta.Resource(appsv1.SchemeGroupVersion.WithResource("controllerrevisions")).Namespace(ns).List, metadataItems)
			if err != nil {
				return nil, fmt.Errorf("list controllerrevisions in namespace %s: %w", ns, err)
			}
			out = append(out, revisionWorkloads(sts, dss, revs)...)
		}
	}
	return out, nil
}

// listAll reads every page of a list.
func listAll[T any, L interface{ GetContinue() string }](ctx context.Context, list func(context.Context, metav1.ListOptions) (L, error), items func(L) []T) ([]T, error) {
	var out []T
	opts := metav1.ListOptions{Limit: pageSize}
	for {
		l, err := list(ctx, opts)
		if err != nil {
			return nil, err
		}
		out = append(out, items(l)...)
		if opts.Continue = l.GetContinue(); opts.Continue == "" {
			return out, nil
		}
	}
}

func metadataItems(l *metav1.PartialObjectMetadataList) []metav1.PartialObjectMetadata {
	return l.Items
}

// deploymentWorkloads describes each Deployment; its last rollout is the creation of the
// newest ReplicaSet it controls (each rollout creates one).
func deploymentWorkloads(deps []appsv1.Deployment, sets []metav1.PartialObjectMetadata) []graph.Workload {
	newest := newestControlled(sets, "Deployment")
	out := make([]graph.Workload, 0, len(deps))
	for i := range deps {
		out = append(out, describe(&deps[i], deps[i].Spec.Template.Labels, newest))
	}
	return out
}

// revisionWorkloads describes each StatefulSet and DaemonSet; their last rollout is the
// creation of the newest ControllerRevision they control (each template change creates one).
func revisionWorkloads(sts []appsv1.StatefulSet, dss []appsv1.DaemonSet, revs []metav1.PartialObjectMetadata) []graph.Workload {
	newest := newestControlled(revs, "StatefulSet", "DaemonSet")
	out := make([]graph.Workload, 0, len(sts)+len(dss))
	for i := range sts {
		out = append(out, describe(&sts[i], sts[i].Spec.Template.Labels, newest))
	}
	for i := range dss {
		out = append(out, describe(&dss[i], dss[i].Spec.Template.Labels, newest))
	}
	return out
}

// newestControlled maps each controller of one of kinds to the creation of the newest of
// items it controls.
func newestControlled[T any, P interface {
	*T
	metav1.Object
}](items []T, kinds ...string) map[types.UID]metav1.Time {
	newest := map[types.UID]metav1.Time{}
	for i := range items {
		obj := P(&items[i])
		owner := metav1.GetControllerOfNoCopy(obj)
		if owner == nil || !slices.Contains(kinds, owner.Kind) {
			continue
		}
		created := obj.GetCreationTimestamp()
		if t, ok := newest[owner.UID]; !ok || t.Before(&created) {
			newest[owner.UID] = created
		}
	}
	return newest
}

// describe is one workload: the pod template's labels searched first (what the pods, and so
// Istio, carry), then the object's labels and annotations; its last rollout from newest, else
// its own creation.
func describe(obj metav1.Object, podLabels map[string]string, newest map[types.UID]metav1.Time) graph.Workload {
	deployed := obj.GetCreationTimestamp()
	if t, ok := newest[obj.GetUID()]; ok {
		deployed = t
	}
	return graph.Workload{Namespace: obj.GetNamespace(), Name: obj.GetName(),
		Metadata:   []map[string]string{podLabels, obj.GetLabels(), obj.GetAnnotations()},
		LastDeploy: deployed.Time}
}
