package e2e

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	apinetworking "istio.io/api/networking/v1alpha3"
	apisecurity "istio.io/api/security/v1beta1"
	apitype "istio.io/api/type/v1beta1"
	clientnetworking "istio.io/client-go/pkg/apis/networking/v1"
	clientsecurity "istio.io/client-go/pkg/apis/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshguard/meshguard/checks"
	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/internal/graph"
	"github.com/meshguard/meshguard/test/harness"
	"github.com/meshguard/meshguard/test/meshsim"
)

func checkPA(ns, name string, mode apisecurity.PeerAuthentication_MutualTLS_Mode, selector map[string]string) *clientsecurity.PeerAuthentication {
	pa := &clientsecurity.PeerAuthentication{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       apisecurity.PeerAuthentication{Mtls: &apisecurity.PeerAuthentication_MutualTLS{Mode: mode}},
	}
	if selector != nil {
		pa.Spec.Selector = &apitype.WorkloadSelector{MatchLabels: selector}
	}
	return pa
}

// TestCheckCluster reads the STRICT/PERMISSIVE picture (and, for the graph, the routing) from a
// real kube-apiserver through istio.io/client-go, as the checker does in a cluster.
func TestCheckCluster(t *testing.T) {
	bin := meshguardBinary(t)
	cp := harness.StartControlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	injected := map[string]string{"istio-injection": "enabled"}
	cp.CreateNamespace(t, "istio-system", nil)
	cp.CreateNamespace(t, "strict", injected)
	cp.CreateNamespace(t, "quiet", injected) // in the mesh, STRICT through the mesh-wide policy, no traffic
	checkRunPod(t, cp, "quiet", "idle", map[string]string{"app": "idle"}, true)
	cp.CreateNamespace(t, "legacy", nil)
	pas := cp.Istio().SecurityV1()
	_, err := pas.PeerAuthentications("istio-system").Create(ctx, checkPA("istio-system", "default", apisecurity.PeerAuthentication_MutualTLS_STRICT, nil), metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cp.Istio().NetworkingV1().VirtualServices("strict").Create(ctx, &clientnetworking.VirtualService{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "strict"},
		Spec: apinetworking.VirtualService{Hosts: []string{"api"}, Http: []*apinetworking.HTTPRoute{{
			Name: "api", Retries: &apinetworking.HTTPRetry{Attempts: 4, RetryOn: "5xx"},
			Route: []*apinetworking.HTTPRouteDestination{{Destination: &apinetworking.Destination{Host: "api"}}},
		}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	// The Deployment behind api-v1, for the graph's team and tier.
	_, err = cp.Kube().AppsV1().Deployments("strict").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "api-v1", Annotations: map[string]string{"tier": "backend"}},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "api", "team": "payments"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "api", Image: "example.com/api:1"}}},
			},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	plain := meshsim.Flow{Source: checkLegacy, Destination: meshsim.Workload{Name: "api-v1", Namespace: "strict", App: "api"}, Rate: 5, Plaintext: true}
	st := checkStartStack(t, 1, plain)
	checkAwaitData(t, st.prom, `rate(istio_requests_total{destination_workload="api-v1"}[10s]) > 0`)
	// A Prometheus younger than a window cannot tell an idle namespace from missing data.
	time.Sleep(checkWindow + 2*checkInterval)

	t.Run("check --once --kubeconfig judges traffic by the cluster's PeerAuthentications and namespaces", func(t *testing.T) {
		out, stderr, code := checkRunCLI(t, bin, "check", "--once", "-o", "json", "--prometheus-url", st.prom.URL(),
			"--kubeconfig", cp.KubeconfigPath(), "--window", checkWindow.String(), "--interval", checkInterval.String())
		require.Equal(t, 1, code, "stderr: %s", stderr)
		var rep checks.Report
		require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
		got := map[string]map[string]string{}
		for _, a := range rep.Firing {
			got[a.Labels["alertname"]+"/"+a.Labels["namespace"]] = a.Annotations
		}
		require.Len(t, got, 2, out)
		require.Equal(t, "istio-system/default", got[checks.AlertPlaintextTraffic+"/strict"]["peer_authentication"])
		require.Contains(t, got, checks.AlertTelemetryBlind+"/quiet", "a namespace running injected pods with no traffic")
	})

	t.Run("a policy changed in the cluster is seen at the next cycle", func(t *testing.T) {
		api, err := checks.NewPrometheus(config.Endpoint{URL: st.prom.URL()}, nil)
		require.NoError(t, err)
		src, err := checks.NewClusterSource(cp.Config(), "istio-system")
		require.NoError(t, err)
		s := checks.SettingsFrom(config.Default())
		s.Window, s.Interval, s.PrometheusURL = checkWindow, checkInterval, st.prom.URL()
		c, err := checks.New(checks.Options{Settings: s, Querier: api, Config: src})
		require.NoError(t, err)
		names := func() map[string]bool {
			res := c.Cycle(ctx)
			require.False(t, res.Degraded(), "%v", res.Errors())
			out := map[string]bool{}
			for _, a := range res.Firing {
				out[a.Name()+"/"+a.Labels["namespace"]] = true
			}
			return out
		}
		require.True(t, names()[checks.AlertPlaintextTraffic+"/strict"])

		pa := checkPA("strict", "api-migration", apisecurity.PeerAuthentication_MutualTLS_PERMISSIVE, map[string]string{"app": "api"})
		pa.Annotations = map[string]string{"exceptions.meshguard.io/MG301": "reason=legacy batch; expires=2099-01-31"}
		_, err = pas.PeerAuthentications("strict").Create(ctx, pa, metav1.CreateOptions{})
		require.NoError(t, err)
		got := names()
		require.True(t, got[checks.AlertPlaintextAllowed+"/strict"], "%v", got)
		require.False(t, got[checks.AlertPlaintextTraffic+"/strict"], "%v", got)
	})

	t.Run("graph --kubeconfig joins the cluster's VirtualServices and workloads", func(t *testing.T) {
		out, stderr, code := checkRunCLI(t, bin, "graph", "-o", "json", "--prometheus-url", st.prom.URL(),
			"--kubeconfig", cp.KubeconfigPath(), "--window", checkWindow.String())
		require.Equal(t, 0, code, stderr)
		var g graph.Graph
		require.NoError(t, json.Unmarshal([]byte(out), &g))
		var calls []graph.Edge
		for _, e := range g.Edges {
			if e.Kind == graph.EdgeCall {
				calls = append(calls, e)
			}
		}
		require.Len(t, calls, 1)
		require.Equal(t, "strict/api", calls[0].Policy.VirtualService)
		require.Equal(t, int64(4), calls[0].Policy.Routes[0].Retries.Attempts)
		api := g.Node("workload:Kubernetes/strict/api-v1")
		require.NotNil(t, api, out)
		require.Equal(t, "payments", api.Team)
		require.Equal(t, "backend", api.Tier)
		require.NotNil(t, api.LastDeploy, "the Deployment's creation, without a ReplicaSet")
	})
}
