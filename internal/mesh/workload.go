package mesh

import (
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Pod is what the model needs of a pod (or of a pod template, or of a kube-state-metrics
// record) to name its workload and match PeerAuthentication selectors against it.
type Pod struct {
	Namespace, Name string
	// GenerateName is set on pods a controller created; Istio only looks at the owner then.
	GenerateName string
	// OwnerKind and OwnerName are the pod's controller reference, if any.
	OwnerKind, OwnerName string
	Labels               map[string]string
	Annotations          map[string]string
}

// Labels and annotations Istio reads off pods.
const (
	// labelWorkloadName overrides the derived workload name (service.istio.io/workload-name).
	labelWorkloadName = "service.istio.io/workload-name"
	// labelInject opts a pod in or out of sidecar injection.
	labelInject = "sidecar.istio.io/inject"
	// AnnotationSidecarStatus is written by the sidecar injector on every pod it injected.
	AnnotationSidecarStatus = "sidecar.istio.io/status"
	// LabelDataplaneMode enrolls a namespace or pod in ambient ("ambient"), or a pod out ("none").
	LabelDataplaneMode = "istio.io/dataplane-mode"
)

// isGateway tells an Istio gateway or waypoint pod: injected with the gateway template
// (inject.istio.io/templates: gateway), or deployed by Istio for a Gateway API Gateway (waypoints
// included), which labels it with the Gateway's name.
func isGateway(p Pod) bool {
	_, managed := p.Labels["gateway.networking.k8s.io/gateway-name"]
	return managed || p.Annotations["inject.istio.io/templates"] == "gateway"
}

// IdentityLabels are the pod labels WorkloadName and InMesh read, for sources that must name
// the labels they fetch.
func IdentityLabels() []string {
	return []string{labelWorkloadName, "pod-template-hash", "rollouts-pod-template-hash", "deploymentconfig", LabelDataplaneMode,
		"gateway.networking.k8s.io/gateway-name"}
}

// cronJobName matches the "-<8 to 10 digit timestamp>" suffix a CronJob gives its Jobs.
var cronJobName = regexp.MustCompile(`^(.+)-\d{8,10}$`)

// WorkloadName is the workload name Istio's telemetry reports for a pod (destination_workload,
// source_workload). It follows GetWorkloadMetaFromPod and GetDeployMetaFromPod
// (istio/istio pkg/kube/util.go), which set the proxy's ISTIO_META_WORKLOAD_NAME at injection
// and name ztunnel's workloads in ambient: the service.istio.io/workload-name label if set;
// for a pod with a generated name, its controller's name, with a ReplicaSet's pod-template-hash
// (or Argo Rollouts' rollouts-pod-template-hash) suffix removed, an OpenShift
// ReplicationController replaced by its deploymentconfig label, and a CronJob's Job timestamp
// suffix removed; otherwise the pod's own name.
func WorkloadName(p Pod) string {
	if n, ok := p.Labels[labelWorkloadName]; ok {
		return n
	}
	if p.GenerateName == "" || p.OwnerName == "" {
		return p.Name
	}
	name := p.OwnerName
	switch p.OwnerKind {
	case "ReplicaSet":
		for _, label := range []string{"pod-template-hash", "rollouts-pod-template-hash"} {
			if h := p.Labels[label]; h != "" && strings.HasSuffix(name, h) {
				return strings.TrimSuffix(name, "-"+h)
			}
		}
	case "ReplicationController":
		if dc := p.Labels["deploymentconfig"]; dc != "" {
			return dc
		}
	case "Job":
		if m := cronJobName.FindStringSubmatch(name); m != nil {
			return m[1]
		}
	}
	return name
}

// InMesh tells whether a pod is a mesh workload whose inbound traffic Istio reports: injected
// with a sidecar (the injector's status annotation), or enrolled in ambient by its own label
// or, unless it opts out with istio.io/dataplane-mode=none, by its namespace's. Gateways and
// waypoints are proxies themselves, not workloads served through one: they report as the
// source or as a waypoint, never as a destination.
func InMesh(p Pod, namespaceLabels map[string]string) bool {
	if isGateway(p) {
		return false
	}
	if _, ok := p.Annotations[AnnotationSidecarStatus]; ok {
		return true
	}
	switch p.Labels[LabelDataplaneMode] {
	case "ambient":
		return true
	case "none":
		return false
	}
	return namespaceLabels[LabelDataplaneMode] == "ambient"
}

// ManifestInMesh tells whether a pod manifest (or pod template) describes a mesh workload. A
// manifest is read before injection, so it counts unless it opts out of the sidecar
// (sidecar.istio.io/inject: "false", as a label or, in older meshes, an annotation) without
// enrolling in ambient.
func ManifestInMesh(p Pod) bool {
	if isGateway(p) {
		return false
	}
	if p.Labels[LabelDataplaneMode] == "ambient" {
		return true
	}
	return p.Labels[labelInject] != "false" && p.Annotations[labelInject] != "false"
}

// Workloads holds the label sets of the workloads of one cluster, by the name Istio's
// telemetry gives them, and which namespaces run mesh pods. Only the labels some
// PeerAuthentication selector reads (and app and version, which telemetry reports) are kept,
// and pods with the same kept labels are stored once, so a Deployment of a thousand replicas
// costs one entry.
type Workloads struct {
	keep    map[string]bool
	limit   int
	entries int
	// Dropped counts the label sets not kept because the limit was reached.
	Dropped int
	byName  map[string][]map[string]string // namespace + "/" + workload
	meshNS  map[string]bool
}

// NewWorkloads starts an empty set that keeps the labels the resolver's workload policies
// select on, and at most limit distinct label sets (0: no limit).
func NewWorkloads(r *Resolver, limit int) *Workloads {
	keep := map[string]bool{"app": true, "version": true}
	for _, ps := range r.workloads {
		for _, p := range ps {
			for k := range p.Selector {
				keep[k] = true
			}
		}
	}
	return &Workloads{keep: keep, limit: limit, byName: map[string][]map[string]string{}, meshNS: map[string]bool{}}
}

// Add records a pod of workload in namespace ns with labels; inMesh marks its namespace as one
// running mesh workloads.
func (w *Workloads) Add(ns, workload string, labels map[string]string, inMesh bool) {
	if inMesh {
		w.meshNS[ns] = true
	}
	kept := map[string]string{}
	for k, v := range labels {
		if w.keep[k] {
			kept[k] = v
		}
	}
	key := ns + "/" + workload
	for _, l := range w.byName[key] {
		if maps.Equal(l, kept) {
			return
		}
	}
	if w.limit > 0 && w.entries >= w.limit {
		w.Dropped++
		return
	}
	w.entries++
	w.byName[key] = append(w.byName[key], kept)
}

// KeptLabels lists the label keys the set keeps, sorted.
func (w *Workloads) KeptLabels() []string {
	out := slices.Collect(maps.Keys(w.keep))
	sort.Strings(out)
	return out
}

// Labels returns the distinct label sets of a workload's pods; ok is false when none is known.
func (w *Workloads) Labels(ns, workload string) (sets []map[string]string, ok bool) {
	if w == nil {
		return nil, false
	}
	sets, ok = w.byName[ns+"/"+workload]
	return sets, ok
}

// MeshNamespaces lists the namespaces running mesh pods, sorted.
func (w *Workloads) MeshNamespaces() []string {
	if w == nil {
		return nil
	}
	out := slices.Collect(maps.Keys(w.meshNS))
	sort.Strings(out)
	return out
}
