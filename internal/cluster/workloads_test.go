package cluster

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/meshguard/meshguard/internal/graph"
)

func TestDeploymentWorkloadsTakeTheNewestRolloutOfEachDeployment(t *testing.T) {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(days int) metav1.Time { return metav1.NewTime(created.AddDate(0, 0, days)) }
	dep := func(name string) appsv1.Deployment {
		return appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, UID: types.UID(name + "-uid"), CreationTimestamp: at(0)}}
	}
	rs := func(owner string, days int, controller bool) metav1.PartialObjectMetadata {
		return metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: owner + "-rs", CreationTimestamp: at(days),
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: owner, UID: types.UID(owner + "-uid"), Controller: &controller}}}}
	}
	tests := []struct {
		name string
		sets []metav1.PartialObjectMetadata
		want time.Time
	}{
		{"the newest of the Deployment's ReplicaSets is its last rollout", []metav1.PartialObjectMetadata{rs("web", 3, true), rs("web", 9, true), rs("web", 5, true)}, at(9).Time},
		{"without a ReplicaSet the Deployment's own creation is its rollout", nil, at(0).Time},
		{"another Deployment's ReplicaSet does not count", []metav1.PartialObjectMetadata{rs("web", 2, true), rs("api", 7, true)}, at(2).Time},
		{"a ReplicaSet the Deployment owns but does not control does not count", []metav1.PartialObjectMetadata{rs("web", 2, true), rs("web", 7, false)}, at(2).Time},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := deploymentWorkloads([]appsv1.Deployment{dep("web")}, tt.sets)
			require.Len(t, ws, 1)
			require.Equal(t, "shop", ws[0].Namespace)
			require.Equal(t, "web", ws[0].Name)
			require.True(t, tt.want.Equal(ws[0].LastDeploy), "last deploy %s, want %s", ws[0].LastDeploy, tt.want)
		})
	}
}

func TestDeploymentWorkloadsSearchThePodTemplateFirst(t *testing.T) {
	d := appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web",
		Labels: map[string]string{"team": "object-label"}, Annotations: map[string]string{"tier": "object-annotation"}},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"team": "pods"}}}}}
	ws := deploymentWorkloads([]appsv1.Deployment{d}, nil)
	require.Equal(t, []map[string]string{{"team": "pods"}, {"team": "object-label"}, {"tier": "object-annotation"}}, ws[0].Metadata)
}

func TestStatefulSetsAndDaemonSetsTakeTheirNewestControllerRevision(t *testing.T) {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(days int) metav1.Time { return metav1.NewTime(created.AddDate(0, 0, days)) }
	controller := true
	rev := func(kind, owner string, days int) metav1.PartialObjectMetadata {
		return metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: owner + "-rev", CreationTimestamp: at(days),
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: owner, UID: types.UID(owner + "-uid"), Controller: &controller}}}}
	}
	sts := appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db", UID: "db-uid", CreationTimestamp: at(0)},
		Spec: appsv1.StatefulSetSpec{Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"team": "data"}}}}}
	ds := appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "agent", UID: "agent-uid", CreationTimestamp: at(1)}}
	ws := revisionWorkloads([]appsv1.StatefulSet{sts}, []appsv1.DaemonSet{ds},
		[]metav1.PartialObjectMetadata{rev("StatefulSet", "db", 4), rev("StatefulSet", "db", 6), rev("Deployment", "agent", 9)})
	require.Len(t, ws, 2)
	tests := []struct {
		name string
		got  graph.Workload
		want time.Time
	}{
		{"a StatefulSet's newest revision is its last rollout", ws[0], at(6).Time},
		{"a DaemonSet without a revision of its own falls back to its creation", ws[1], at(1).Time},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.True(t, tt.want.Equal(tt.got.LastDeploy), "last deploy %s, want %s", tt.got.LastDeploy, tt.want)
		})
	}
	require.Equal(t, "data", ws[0].Metadata[0]["team"], "the pod template's labels come first")
}
