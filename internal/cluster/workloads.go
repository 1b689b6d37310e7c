package cluster

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/meshguard/meshguard/internal/graph"
)

// Workloads reads the Deployments of namespaces and the ReplicaSets they own, paged, for the
// service map's team, tier and last deploy. Istio names a Deployment's pods' workload after the
// Deployment, so the Deployment's namespace and name are the workload's.
func Workloads(ctx context.Context, kube kubernetes.Interface, namespaces []string) ([]graph.Workload, error) {
	var out []graph.Workload
	for _, ns := range namespaces {
		var deps []appsv1.Deployment
		opts := metav1.ListOptions{Limit: pageSize}
		for {
			l, err := kube.AppsV1().Deployments(ns).List(ctx, opts)
			if err != nil {
				return nil, fmt.Errorf("list deployments in namespace %s: %w", ns, err)
			}
			deps = append(deps, l.Items...)
			if opts.Continue = l.Continue; opts.Continue == "" {
				break
			}
		}
		if len(deps) == 0 {
			continue
		}
		var sets []appsv1.ReplicaSet
		opts = metav1.ListOptions{Limit: pageSize}
		for {
			l, err := kube.AppsV1().ReplicaSets(ns).List(ctx, opts)
			if err != nil {
				return nil, fmt.Errorf("list replicasets in namespace %s: %w", ns, err)
			}
			sets = append(sets, l.Items...)
			if opts.Continue = l.Continue; opts.Continue == "" {
				break
			}
		}
		out = append(out, DeploymentWorkloads(deps, sets)...)
	}
	return out, nil
}

// DeploymentWorkloads describes each Deployment: its pod template's labels, then its own
// labels and annotations, and its last rollout, the creation of the newest ReplicaSet it
// controls (each rollout creates one); without one, the Deployment's own creation.
func DeploymentWorkloads(deps []appsv1.Deployment, sets []appsv1.ReplicaSet) []graph.Workload {
	newest := map[types.UID]metav1.Time{}
	for _, rs := range sets {
		owner := metav1.GetControllerOf(&rs)
		if owner == nil || owner.Kind != "Deployment" {
			continue
		}
		if t, ok := newest[owner.UID]; !ok || t.Before(&rs.CreationTimestamp) {
			newest[owner.UID] = rs.CreationTimestamp
		}
	}
	out := make([]graph.Workload, 0, len(deps))
	for _, d := range deps {
		deployed := d.CreationTimestamp
		if t, ok := newest[d.UID]; ok {
			deployed = t
		}
		out = append(out, graph.Workload{Namespace: d.Namespace, Name: d.Name,
			Metadata:   []map[string]string{d.Spec.Template.Labels, d.Labels, d.Annotations},
			LastDeploy: deployed.Time})
	}
	return out
}
