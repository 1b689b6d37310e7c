package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/meshguard/meshguard/checks"
	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/internal/graph"
	"github.com/meshguard/meshguard/test/harness"
	"github.com/meshguard/meshguard/test/meshsim"
)

// TestGraphWorkloadsFromTheCluster builds the service map of traffic backfilled into a real
// Prometheus and describes its workloads from Deployments, ReplicaSets, a StatefulSet and its
// ControllerRevision in a real kube-apiserver, as `meshguard graph --kubeconfig` and the
// checker's /graph do. No controller runs there, so the ReplicaSets and revisions are the
// test's own, with the owner references the controllers would write.
func TestGraphWorkloadsFromTheCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kube-apiserver, etcd and Prometheus")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	at := start.Add(10 * time.Minute)
	web := meshsim.Workload{Name: "web", Namespace: "shop"}
	api := meshsim.Workload{Name: "api-v1", Namespace: "shop", App: "api"}
	db := meshsim.Workload{Name: "db", Namespace: "shop"}
	batch := meshsim.Workload{Name: "batch", Namespace: "jobs"} // a workload with no controller object
	om, err := meshsim.RenderOpenMetrics([]meshsim.Flow{
		{Source: web, Destination: api, Rate: 10},
		{Source: api, Destination: db, Rate: 10, Protocol: meshsim.TCP},
		{Source: batch, Destination: api, Rate: 1},
	}, meshsim.Span{Start: start, End: at, Step: 10 * time.Second}, meshsim.Options{})
	require.NoError(t, err)
	prom := harness.StartPrometheus(t, harness.PrometheusOptions{DataDir: harness.Backfill(t, om)})
	querier, err := checks.NewPrometheus(config.Endpoint{URL: prom.URL()}, nil)
	require.NoError(t, err)

	cp := harness.StartControlPlane(t)
	cp.CreateNamespace(t, "istio-system", nil)
	cp.CreateNamespace(t, "shop", map[string]string{"istio-injection": "enabled"})
	cp.CreateNamespace(t, "jobs", map[string]string{"istio-injection": "enabled"})
	apps := cp.Kube().AppsV1()
	deploy := func(name string, podLabels, labels, annotations map[string]string) *appsv1.Deployment {
		t.Helper()
		selector := map[string]string{"app": name}
		for k, v := range selector {
			podLabels[k] = v
		}
		d, err := apps.Deployments("shop").Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: selector},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1"}}},
				},
			},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
		return d
	}
	replicaSet := func(d *appsv1.Deployment, name string) *appsv1.ReplicaSet {
		t.Helper()
		rs, err := apps.ReplicaSets("shop").Create(ctx, &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: name, OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))}},
			Spec:       appsv1.ReplicaSetSpec{Selector: d.Spec.Selector, Template: d.Spec.Template},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
		return rs
	}
	// web: team and tier on the pods, an older team on the object that the pods' label overrides.
	webDep := deploy("web", map[string]string{"team": "storefront", "tier": "edge"}, map[string]string{"team": "former-owner"}, nil)
	// api-v1: team from the second key, tier from an annotation, and two rollouts.
	apiDep := deploy("api-v1", map[string]string{}, map[string]string{"app.kubernetes.io/part-of": "payments"}, map[string]string{"tier": "backend"})
	first, second := replicaSet(apiDep, "api-v1-1"), replicaSet(apiDep, "api-v1-2")
	newest := first.CreationTimestamp
	if newest.Before(&second.CreationTimestamp) {
		newest = second.CreationTimestamp
	}
	// db: a StatefulSet, whose rollouts are ControllerRevisions.
	dbPods := map[string]string{"app": "db", "team": "data", "tier": "storage"}
	sts, err := apps.StatefulSets("shop").Create(ctx, &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: appsv1.StatefulSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: dbPods},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: "example.com/db:1"}}},
			},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	rev, err := apps.ControllerRevisions("shop").Create(ctx, &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{Name: "db-1", OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(sts, appsv1.SchemeGroupVersion.WithKind("StatefulSet"))}},
		Data:       runtime.RawExtension{Raw: []byte(`{}`)}, Revision: 1,
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	src, err := checks.NewClusterSource(cp.Config(), "istio-system")
	require.NoError(t, err)
	keys := graph.MetadataKeys{Team: []string{"team", "app.kubernetes.io/part-of"}, Tier: []string{"tier"}}
	g, err := checks.BuildGraph(ctx, checks.GraphOptions{Querier: querier, Window: 5 * time.Minute, At: at,
		MeshDomain: "cluster.local", RootNamespace: "istio-system", Thresholds: graph.DefaultThresholds()})
	require.NoError(t, err)
	require.NoError(t, checks.DescribeWorkloads(ctx, g, src, keys))

	tests := []struct {
		name, node, team, tier string
		lastDeploy             *metav1.Time
	}{
		{"a workload's pod template labels give its team and tier, over the Deployment's own labels", "workload:Kubernetes/shop/web",
			"storefront", "edge", &webDep.CreationTimestamp},
		{"the second key and an annotation are read, and the newest ReplicaSet is the last deploy", "workload:Kubernetes/shop/api-v1",
			"payments", "backend", &newest},
		{"a service takes the team and tier of the workload behind it, and its last deploy", "service:Kubernetes/api.shop.svc.cluster.local",
			"payments", "backend", &newest},
		{"a StatefulSet's newest ControllerRevision is its last deploy", "workload:Kubernetes/shop/db",
			"data", "storage", &rev.CreationTimestamp},
		{"a workload without a controller object keeps the fields empty", "workload:Kubernetes/jobs/batch", "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := g.Node(tt.node)
			require.NotNil(t, n, "the map has %s", tt.node)
			require.Equal(t, tt.team, n.Team)
			require.Equal(t, tt.tier, n.Tier)
			if tt.lastDeploy == nil {
				require.Nil(t, n.LastDeploy)
				return
			}
			require.NotNil(t, n.LastDeploy)
			require.True(t, tt.lastDeploy.Time.Equal(*n.LastDeploy), "last deploy %s, want %s", n.LastDeploy, tt.lastDeploy.Time)
		})
	}

	t.Run("every page of a namespace is read", func(t *testing.T) {
		// One more than internal/cluster's page of 500.
		const n = 501
		cp.CreateNamespace(t, "many", nil)
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = apps.Deployments("many").Create(ctx, &appsv1.Deployment{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("wl-%03d", i)},
					Spec: appsv1.DeploymentSpec{
						Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "wl"}},
						Template: corev1.PodTemplateSpec{
							ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "wl"}},
							Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1"}}},
						},
					},
				}, metav1.CreateOptions{})
			}()
		}
		wg.Wait()
		require.NoError(t, errors.Join(errs...))
		page, err := apps.Deployments("many").List(ctx, metav1.ListOptions{Limit: n - 1})
		require.NoError(t, err)
		require.NotEmpty(t, page.Continue, "the API server pages the list: a reader of one page would miss one")
		ws, err := src.Workloads(ctx, []string{"many"})
		require.NoError(t, err)
		require.Len(t, ws, n)
	})

	t.Run("the checker's page carries them", func(t *testing.T) {
		s := checks.SettingsFrom(config.Default())
		s.Window, s.Interval, s.PrometheusURL, s.Graph, s.GraphKeys = 5*time.Minute, 30*time.Second, prom.URL(), true, keys
		c, err := checks.New(checks.Options{Settings: s, Querier: querier, Config: src, Clock: func() time.Time { return at }})
		require.NoError(t, err)
		c.Cycle(ctx)
		require.Contains(t, string(c.Page()), `"team":"payments","tier":"backend","lastDeploy":"`+newest.UTC().Format(time.RFC3339)+`"`)
	})
}
