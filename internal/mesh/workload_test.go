package mesh

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/internal/manifest"
)

// The cases follow GetDeployMetaFromPod and GetWorkloadMetaFromPod in istio/istio
// pkg/kube/util.go, which name a pod's workload in its proxy's metadata and in ztunnel.
func TestWorkloadNameIsTheNameIstioGivesThePodsWorkload(t *testing.T) {
	tests := []struct {
		name string
		pod  Pod
		want string
	}{
		{"a Deployment's pod is named after the Deployment: its ReplicaSet's pod-template-hash is cut",
			Pod{Name: "ledger-5d8f7c9b4-x2k9p", GenerateName: "ledger-5d8f7c9b4-", OwnerKind: "ReplicaSet", OwnerName: "ledger-5d8f7c9b4",
				Labels: map[string]string{"pod-template-hash": "5d8f7c9b4"}}, "ledger"},
		{"a bare ReplicaSet's pod (no pod-template-hash) is named after the ReplicaSet",
			Pod{Name: "rs-abcde", GenerateName: "rs-", OwnerKind: "ReplicaSet", OwnerName: "rs"}, "rs"},
		{"an Argo Rollout's pod is named after the Rollout",
			Pod{Name: "web-6c9d-q1", GenerateName: "web-6c9d-", OwnerKind: "ReplicaSet", OwnerName: "web-6c9d",
				Labels: map[string]string{"rollouts-pod-template-hash": "6c9d"}}, "web"},
		{"a StatefulSet's pod is named after the StatefulSet",
			Pod{Name: "db-0", GenerateName: "db-", OwnerKind: "StatefulSet", OwnerName: "db"}, "db"},
		{"a DaemonSet's pod is named after the DaemonSet",
			Pod{Name: "agent-7xk2q", GenerateName: "agent-", OwnerKind: "DaemonSet", OwnerName: "agent"}, "agent"},
		{"a CronJob's pod is named after the CronJob: its Job's timestamp suffix is cut",
			Pod{Name: "report-28950720-zz9", GenerateName: "report-28950720-", OwnerKind: "Job", OwnerName: "report-28950720"}, "report"},
		{"a plain Job's pod is named after the Job",
			Pod{Name: "migrate-abc", GenerateName: "migrate-", OwnerKind: "Job", OwnerName: "migrate"}, "migrate"},
		{"an OpenShift DeploymentConfig's pod is named after its deploymentconfig label",
			Pod{Name: "shop-3-x", GenerateName: "shop-3-", OwnerKind: "ReplicationController", OwnerName: "shop-3",
				Labels: map[string]string{"deploymentconfig": "shop"}}, "shop"},
		{"a pod without a generated name keeps its own name, whatever owns it",
			Pod{Name: "static-web", OwnerKind: "ReplicaSet", OwnerName: "static-web-5d8f", Labels: map[string]string{"pod-template-hash": "5d8f"}}, "static-web"},
		{"a pod with a generated name but no controller keeps its own name",
			Pod{Name: "debug-xyz", GenerateName: "debug-"}, "debug-xyz"},
		{"the service.istio.io/workload-name label overrides the derived name",
			Pod{Name: "ledger-5d8f7c9b4-x2k9p", GenerateName: "ledger-5d8f7c9b4-", OwnerKind: "ReplicaSet", OwnerName: "ledger-5d8f7c9b4",
				Labels: map[string]string{"pod-template-hash": "5d8f7c9b4", "service.istio.io/workload-name": "books"}}, "books"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, WorkloadName(tt.pod))
		})
	}
}

func TestInMeshTellsSidecarAndAmbientPodsFromOthers(t *testing.T) {
	ambientNS := map[string]string{LabelDataplaneMode: "ambient"}
	tests := []struct {
		name string
		pod  Pod
		ns   map[string]string
		want bool
	}{
		{"a pod the injector annotated runs a sidecar", Pod{Annotations: map[string]string{AnnotationSidecarStatus: "{}"}}, nil, true},
		{"a pod without the annotation in a plain namespace is outside the mesh", Pod{Labels: map[string]string{"app": "x"}}, nil, false},
		{"a pod of an ambient namespace is in the mesh", Pod{}, ambientNS, true},
		{"a pod that opts out of its ambient namespace is not", Pod{Labels: map[string]string{LabelDataplaneMode: "none"}}, ambientNS, false},
		{"a pod labelled for ambient is in the mesh in any namespace", Pod{Labels: map[string]string{LabelDataplaneMode: "ambient"}}, nil, true},
		{"an ingress gateway injected with the gateway template reports no inbound traffic as a destination",
			Pod{Annotations: map[string]string{AnnotationSidecarStatus: "{}", "inject.istio.io/templates": "gateway"}}, nil, false},
		{"a waypoint Istio deployed for a Gateway is not a workload of its ambient namespace",
			Pod{Labels: map[string]string{"gateway.networking.k8s.io/gateway-name": "waypoint"}}, ambientNS, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, InMesh(tt.pod, tt.ns))
		})
	}
}

func TestManifestInMeshCountsEveryWorkloadThatDoesNotOptOut(t *testing.T) {
	require.True(t, ManifestInMesh(Pod{Labels: map[string]string{"app": "x"}}), "a plain template is injected where its namespace is")
	require.False(t, ManifestInMesh(Pod{Labels: map[string]string{"sidecar.istio.io/inject": "false"}}), "the label opts out")
	require.False(t, ManifestInMesh(Pod{Annotations: map[string]string{"sidecar.istio.io/inject": "false"}}), "so does the older annotation")
	require.True(t, ManifestInMesh(Pod{Labels: map[string]string{"sidecar.istio.io/inject": "false", LabelDataplaneMode: "ambient"}}),
		"a workload out of sidecars but in ambient is still in the mesh")
	require.False(t, ManifestInMesh(Pod{Annotations: map[string]string{"inject.istio.io/templates": "gateway"}}), "a gateway is not")
}

const tierPolicies = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: billing}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: legacy-tier, namespace: billing}
spec:
  selector: {matchLabels: {tier: legacy}}
  mtls: {mode: PERMISSIVE}
`

func tierResolver(t *testing.T) *Resolver {
	t.Helper()
	objs, problems := manifest.Parse("pa.yaml", []byte(tierPolicies))
	require.Empty(t, problems)
	return NewResolver("istio-system", objs)
}

func TestSelectorsResolveAgainstThePodsKeptLabels(t *testing.T) {
	r := tierResolver(t)
	ws := NewWorkloads(r, 0)
	ws.Add("billing", "ledger", map[string]string{"app": "ledger", "tier": "legacy", "pod-template-hash": "5d8f7c9b4"}, true)
	ws.Add("billing", "payments", map[string]string{"app": "payments", "tier": "core"}, true)
	tests := []struct {
		name, workload string
		want           Mode
	}{
		{"the pod labelled tier: legacy is PERMISSIVE through the workload policy", "ledger", ModePermissive},
		{"a pod of another tier keeps the namespace's STRICT", "payments", ModeStrict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sets, ok := ws.Labels("billing", tt.workload)
			require.True(t, ok)
			require.Len(t, sets, 1)
			require.Equal(t, tt.want, r.Workload("billing", sets[0]).Mode)
		})
	}
}

func TestWorkloadsKeepOnlySelectedLabelsOncePerWorkloadWithinTheLimit(t *testing.T) {
	r := tierResolver(t)
	t.Run("labels no selector reads are dropped, app and version kept", func(t *testing.T) {
		ws := NewWorkloads(r, 0)
		ws.Add("billing", "ledger", map[string]string{"app": "ledger", "version": "v2", "tier": "legacy", "pod-template-hash": "abc", "team": "x"}, true)
		sets, _ := ws.Labels("billing", "ledger")
		require.Equal(t, []map[string]string{{"app": "ledger", "version": "v2", "tier": "legacy"}}, sets)
	})
	t.Run("replicas with the same kept labels are stored once; a rollout's new labels add a set", func(t *testing.T) {
		ws := NewWorkloads(r, 0)
		for _, hash := range []string{"a", "b", "c"} {
			ws.Add("billing", "ledger", map[string]string{"app": "ledger", "tier": "legacy", "pod-template-hash": hash}, true)
		}
		ws.Add("billing", "ledger", map[string]string{"app": "ledger", "tier": "core"}, true)
		sets, _ := ws.Labels("billing", "ledger")
		require.Len(t, sets, 2)
	})
	t.Run("label sets over the limit are counted, not kept", func(t *testing.T) {
		ws := NewWorkloads(r, 2)
		for _, name := range []string{"a", "b", "c", "d"} {
			ws.Add("billing", name, map[string]string{"app": name}, true)
		}
		require.Equal(t, 2, ws.Dropped)
		_, ok := ws.Labels("billing", "c")
		require.False(t, ok)
	})
	t.Run("only namespaces with a mesh pod run mesh pods", func(t *testing.T) {
		ws := NewWorkloads(r, 0)
		ws.Add("billing", "ledger", nil, true)
		ws.Add("plain", "web", nil, false)
		require.Equal(t, []string{"billing"}, ws.MeshNamespaces())
	})
	t.Run("a nil set knows no workload", func(t *testing.T) {
		var ws *Workloads
		_, ok := ws.Labels("billing", "ledger")
		require.False(t, ok)
		require.Empty(t, ws.MeshNamespaces())
	})
}
