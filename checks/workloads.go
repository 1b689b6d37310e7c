package checks

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/meshguard/meshguard/internal/cluster"
	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/meshguard/meshguard/internal/mesh"
)

// DefaultMaxWorkloadLabelSets bounds the distinct workload label sets one configuration holds
// when the caller sets no limit.
const DefaultMaxWorkloadLabelSets = 20000

// workloadsFromManifests reads the pod labels of Pod manifests and of the pod templates of
// Deployments, StatefulSets and DaemonSets among objects. A manifest shows a workload before
// injection, so it counts as a mesh workload unless it opts out of the sidecar. Nil when there
// is no such manifest: the labels are then unknown, not absent.
func workloadsFromManifests(r *mesh.Resolver, objects []*manifest.Object, limit int) *mesh.Workloads {
	var ws *mesh.Workloads
	for _, o := range objects {
		var p mesh.Pod
		switch o.Kind {
		case manifest.KindPod:
			p = podOfManifest(o)
		case manifest.KindDeployment, manifest.KindStatefulSet, manifest.KindDaemonSet:
			// Istio names the workload of a controller's pods after the controller: the
			// template stands for pods named as it is.
			tmpl, _ := o.SpecMap()["template"].(map[string]any)
			meta, _ := tmpl["metadata"].(map[string]any)
			p = mesh.Pod{Namespace: o.Namespace, Name: o.Name, Labels: stringMap(meta["labels"]), Annotations: stringMap(meta["annotations"])}
		default:
			continue
		}
		if p.Namespace == "" {
			p.Namespace = mesh.DefaultNamespace
		}
		if ws == nil {
			ws = mesh.NewWorkloads(r, limit)
		}
		ws.Add(p.Namespace, mesh.WorkloadName(p), p.Labels, mesh.ManifestInMesh(p))
	}
	return ws
}

// podOfManifest reads a Pod manifest's name, labels and controller.
func podOfManifest(o *manifest.Object) mesh.Pod {
	p := mesh.Pod{Namespace: o.Namespace, Name: o.Name, Labels: o.Labels, Annotations: o.Annotations}
	meta, _ := o.Raw["metadata"].(map[string]any)
	p.GenerateName, _ = meta["generateName"].(string)
	owners, _ := meta["ownerReferences"].([]any)
	for _, ref := range owners {
		r, _ := ref.(map[string]any)
		if c, _ := r["controller"].(bool); c {
			p.OwnerKind, _ = r["kind"].(string)
			p.OwnerName, _ = r["name"].(string)
			break
		}
	}
	return p
}

func stringMap(v any) map[string]string {
	m, _ := v.(map[string]any)
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k], _ = v.(string)
	}
	return out
}

// clusterWorkloads lists the running pods of the cluster into a workload set, reading each
// pod's namespace labels for ambient enrollment. A user who may not list pods gets no set and
// the reason, so the rules fall back to telemetry's app and version labels and say why.
func (c *ClusterSource) clusterWorkloads(ctx context.Context, r *mesh.Resolver, nsLabels map[string]map[string]string) (*mesh.Workloads, string, error) {
	if c.Meta == nil {
		return nil, "the configuration source reads no pods", nil
	}
	limit := c.MaxWorkloadLabelSets
	if limit == 0 {
		limit = DefaultMaxWorkloadLabelSets
	}
	ws := mesh.NewWorkloads(r, limit)
	err := cluster.Pods(ctx, c.Meta, func(p mesh.Pod) {
		ws.Add(p.Namespace, mesh.WorkloadName(p), p.Labels, mesh.InMesh(p, nsLabels[p.Namespace]))
	})
	switch {
	case apierrors.IsForbidden(err):
		return nil, fmt.Sprintf("may not list pods in %s", c), nil
	case err != nil:
		return nil, "", fmt.Errorf("%s: %w", c, err)
	}
	return ws, "", nil
}
