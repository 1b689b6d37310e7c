package checks

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/common/model"

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

// Queries of kube-state-metrics, for a checker without access to the Kubernetes API.
const (
	// kubePodLabelsQuery gives each running pod's labels (label_<name>, as far as
	// kube-state-metrics' --metric-labels-allowlist exposes them) and its controller.
	kubePodLabelsQuery = `(
  kube_pod_labels
  * on (namespace, pod) group_left (owner_kind, owner_name)
  max by (namespace, pod, owner_kind, owner_name) (kube_pod_owner{owner_is_controller="true"})
  or on (namespace, pod) kube_pod_labels
)
and on (namespace, pod) (kube_pod_status_phase{phase="Running"} == 1)`
	// kubeMeshPodsQuery finds the pods running Istio's sidecar (a container, or a native
	// sidecar init container, named istio-proxy).
	kubeMeshPodsQuery   = `count by (namespace, pod) (kube_pod_container_info{container="istio-proxy"} or kube_pod_init_container_info{container="istio-proxy"})`
	signalKubePodLabels = "kube_pod_labels"
	signalKubeMeshPods  = "kube_mesh_pods"
)

// KubeStateSource adds pod labels from kube-state-metrics to a configuration that has none
// (manifests without workloads, or a user who may not list pods). Its two queries run only
// then, so a checker reading pods from the API server runs no more queries per cycle.
type KubeStateSource struct {
	Base    ConfigSource
	Querier Querier
	// Timeout bounds each query (0: 30s); MaxWorkloadLabelSets bounds the pods read (0: the
	// default).
	Timeout              time.Duration
	MaxWorkloadLabelSets int
}

func (k KubeStateSource) String() string {
	return k.Base.String() + " with kube-state-metrics' pod labels"
}

// Load reads the base configuration and, where it has no pods, their labels from
// kube_pod_labels. A failed or empty answer leaves the labels unknown, with the reason.
func (k KubeStateSource) Load(ctx context.Context) (*MeshConfig, error) {
	m, err := k.Base.Load(ctx)
	if err != nil || m.Workloads != nil {
		return m, err
	}
	limit := k.MaxWorkloadLabelSets
	if limit == 0 {
		limit = DefaultMaxWorkloadLabelSets
	}
	timeout := k.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	now := time.Now()
	labels := runQuery(ctx, k.Querier, Signal{Name: signalKubePodLabels, Query: kubePodLabelsQuery}, now, timeout, limit)
	meshPods := runQuery(ctx, k.Querier, Signal{Name: signalKubeMeshPods, Query: kubeMeshPodsQuery}, now, timeout, limit)
	switch {
	case labels.Err != nil:
		m.WorkloadsUnknown += fmt.Sprintf("; kube_pod_labels could not be read: %v", labels.Err)
		return m, nil
	case labels.Series == 0:
		m.WorkloadsUnknown += "; kube_pod_labels has no running pod (is kube-state-metrics scraped?)"
		return m, nil
	}
	// A failed sidecar query leaves every pod outside the mesh: TelemetryBlind then says
	// nothing rather than something false.
	ws := workloadsFromKubeState(m.Resolver(), labels.Vector, meshPods.Vector, limit)
	ws.Dropped += labels.Dropped
	out := *m
	out.Workloads, out.WorkloadsUnknown = ws, ""
	return &out, nil
}

// workloadsFromKubeState reads kube_pod_labels rows (with their controller where known) into
// a workload set; meshPods are the pods running a sidecar.
func workloadsFromKubeState(r *mesh.Resolver, labels, meshPods model.Vector, limit int) *mesh.Workloads {
	ws := mesh.NewWorkloads(r, limit)
	// kube-state-metrics renames pod labels: the selector keys are renamed the same way to
	// find them again.
	original := map[string]string{}
	for _, key := range append(ws.KeptLabels(), mesh.IdentityLabels()...) {
		original[kubeStateLabelName(key)] = key
	}
	sidecar := map[string]bool{}
	for _, s := range meshPods {
		sidecar[labelValue(s.Metric, "namespace")+"/"+labelValue(s.Metric, "pod")] = true
	}
	for _, s := range labels {
		p := mesh.Pod{Namespace: labelValue(s.Metric, "namespace"), Name: labelValue(s.Metric, "pod"),
			OwnerKind: labelValue(s.Metric, "owner_kind"), OwnerName: labelValue(s.Metric, "owner_name"), Labels: map[string]string{}}
		if p.OwnerName != "" {
			// kube-state-metrics does not export generateName; a controller's pods have one.
			p.GenerateName = p.OwnerName + "-"
		}
		for name, value := range s.Metric {
			if key, ok := original[string(name)]; ok {
				p.Labels[key] = string(value)
			}
		}
		ws.Add(p.Namespace, mesh.WorkloadName(p), p.Labels, sidecar[p.Namespace+"/"+p.Name] || mesh.InMesh(p, nil))
	}
	return ws
}

var (
	kubeStateInvalid = regexp.MustCompile(`[^a-zA-Z0-9_]`)
	kubeStateCaps    = regexp.MustCompile(`([a-z0-9])([A-Z])`)
)

// kubeStateLabelName is the name kube-state-metrics gives pod label key in kube_pod_labels:
// "label_", then the key with every character outside [a-zA-Z0-9_] replaced by "_", in
// snake case (internal/store/utils.go of kubernetes/kube-state-metrics).
func kubeStateLabelName(key string) string {
	return "label_" + strings.ToLower(kubeStateCaps.ReplaceAllString(kubeStateInvalid.ReplaceAllString(key, "_"), "${1}_${2}"))
}
