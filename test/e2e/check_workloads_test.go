package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	apisecurity "istio.io/api/security/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/meshguard/meshguard/checks"
	"github.com/meshguard/meshguard/internal/alerting"
	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/test/harness"
	"github.com/meshguard/meshguard/test/meshsim"
)

// checkRunPod creates a pod as a Deployment's ReplicaSet would (generated name, controller
// reference, pod-template-hash) and marks it Running, as the kubelet would: the control plane
// of the tests runs no controllers and no nodes. injected adds the sidecar injector's status
// annotation.
func checkRunPod(t *testing.T, cp *harness.ControlPlane, ns, deployment string, labels map[string]string, injected bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const hash = "5d8f7c9b4"
	l := map[string]string{"pod-template-hash": hash}
	for k, v := range labels {
		l[k] = v
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: deployment + "-" + hash + "-x2k9p", GenerateName: deployment + "-" + hash + "-", Namespace: ns, Labels: l,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: deployment + "-" + hash,
				UID: "0b3c6a52-1d7e-4f0a-9c55-3e1f0d2b7a41", Controller: ptr.To(true)}},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/" + deployment + ":1"}}},
	}
	if injected {
		pod.Annotations = map[string]string{"sidecar.istio.io/status": `{"containers":["istio-proxy"],"initContainers":["istio-init"]}`}
	}
	created, err := cp.Kube().CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	require.NoError(t, err)
	created.Status.Phase = corev1.PodRunning
	_, err = cp.Kube().CoreV1().Pods(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{})
	require.NoError(t, err)
}

// checkStartSourceChecker runs the checker daemon in-process, reading the mesh configuration
// from src and notifying the stack's Alertmanagers.
func checkStartSourceChecker(t *testing.T, st *checkStack, src checks.ConfigSource) *checkRunner {
	t.Helper()
	cfg := config.Default()
	s := checks.SettingsFrom(cfg)
	s.Interval, s.Window, s.PrometheusURL = checkInterval, checkWindow, st.prom.URL()
	prom, err := checks.NewPrometheus(config.Endpoint{URL: st.prom.URL()}, nil)
	require.NoError(t, err)
	metrics := checks.NewMetrics(prometheus.NewRegistry())
	var eps []config.Endpoint
	for _, am := range st.ams {
		eps = append(eps, config.Endpoint{URL: am.URL()})
	}
	n, err := alerting.NewNotifier(alerting.NotifierOptions{Alertmanagers: eps, Metrics: metrics.Alerting,
		MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, Timeout: 5 * time.Second})
	require.NoError(t, err)
	c, err := checks.New(checks.Options{Settings: s, Querier: prom, Metrics: metrics, Notifier: n, Config: src})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r := &checkRunner{checker: c, notifier: n, metrics: metrics, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		c.Run(ctx)
	}()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// TestCheckWorkloadLabels judges plaintext by the labels of the destination's pods, read from a
// real kube-apiserver: a PeerAuthentication selecting a label Istio's metrics do not carry
// (tier) decides, and only namespaces running mesh pods are expected to report telemetry.
func TestCheckWorkloadLabels(t *testing.T) {
	cp := harness.StartControlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	injected := map[string]string{"istio-injection": "enabled"}
	cp.CreateNamespace(t, "istio-system", nil)
	cp.CreateNamespace(t, "billing", injected)
	cp.CreateNamespace(t, "vault", injected)                                                  // STRICT, a mesh pod, no traffic: blind
	cp.CreateNamespace(t, "empty", injected)                                                  // STRICT, no pod: idle
	cp.CreateNamespace(t, "ambient", map[string]string{"istio.io/dataplane-mode": "ambient"}) // STRICT mesh-wide, an ambient pod, no traffic: blind
	cp.CreateNamespace(t, "plain", nil)                                                       // STRICT mesh-wide, a pod outside the mesh: nothing to confirm
	pas := cp.Istio().SecurityV1()
	for _, pa := range []struct {
		ns, name string
		mode     apisecurity.PeerAuthentication_MutualTLS_Mode
		selector map[string]string
	}{
		{"istio-system", "default", apisecurity.PeerAuthentication_MutualTLS_STRICT, nil},
		{"billing", "default", apisecurity.PeerAuthentication_MutualTLS_STRICT, nil},
		{"billing", "legacy-tier", apisecurity.PeerAuthentication_MutualTLS_PERMISSIVE, map[string]string{"tier": "legacy"}},
		{"vault", "default", apisecurity.PeerAuthentication_MutualTLS_STRICT, nil},
		{"empty", "default", apisecurity.PeerAuthentication_MutualTLS_STRICT, nil},
	} {
		obj := checkPA(pa.ns, pa.name, pa.mode, pa.selector)
		if pa.selector != nil {
			obj.Annotations = map[string]string{"exceptions.meshguard.io/MG301": "reason=ledger clients move to mTLS in Q3; expires=2099-06-30"}
		}
		_, err := pas.PeerAuthentications(pa.ns).Create(ctx, obj, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	checkRunPod(t, cp, "billing", "ledger", map[string]string{"app": "ledger", "tier": "legacy"}, true)
	checkRunPod(t, cp, "billing", "payments", map[string]string{"app": "payments", "tier": "core"}, true)
	checkRunPod(t, cp, "vault", "secrets", map[string]string{"app": "secrets"}, true)
	checkRunPod(t, cp, "ambient", "cache", map[string]string{"app": "cache"}, false)
	checkRunPod(t, cp, "plain", "static", map[string]string{"app": "static"}, false)

	// Telemetry carries the Deployment's name and the app label, never tier.
	ledger := meshsim.Workload{Name: "ledger", Namespace: "billing", App: "ledger"}
	payments := meshsim.Workload{Name: "payments", Namespace: "billing", App: "payments"}
	st := checkStartStack(t, 1,
		meshsim.Flow{Source: checkLegacy, Destination: ledger, Rate: 4, Plaintext: true},
		meshsim.Flow{Source: checkLegacy, Destination: payments, Rate: 2, Plaintext: true})
	checkAwaitData(t, st.prom, `rate(istio_requests_total{destination_workload="payments"}[10s]) > 0`)
	// A Prometheus younger than a window cannot tell an idle namespace from missing data.
	time.Sleep(checkWindow + 2*checkInterval)
	src, err := checks.NewClusterSource(cp.Config(), "istio-system", "PeerAuthentication")
	require.NoError(t, err)
	r := checkStartSourceChecker(t, st, src)

	t.Run("a PERMISSIVE policy selecting tier: legacy lets plaintext into the pods labelled so, under its exception", func(t *testing.T) {
		a := checkAwaitActive(t, st.ams, checkLabels("alertname", checks.AlertPlaintextAllowed, "namespace", "billing",
			"destination_workload", "ledger"), checkFireWait)
		require.Equal(t, "billing/legacy-tier", a.Labels["peer_authentication"])
		require.Equal(t, "2099-06-30", a.Annotations["exception_expires"])
		require.NotContains(t, a.Annotations, "judged_by", "judged by the pods' own labels")
	})

	t.Run("the same cycle raises no MeshPlaintextTraffic for the excepted workload, and one for its STRICT neighbour", func(t *testing.T) {
		checkAwaitActive(t, st.ams, checkLabels("alertname", checks.AlertPlaintextTraffic, "namespace", "billing",
			"destination_workload", "payments"), checkFireWait)
		last := r.checker.Last()
		require.NotNil(t, last)
		var got []string
		for _, a := range last.Firing {
			if a.Labels["namespace"] == "billing" {
				got = append(got, a.Name()+"/"+a.Labels["destination_workload"])
			}
		}
		require.ElementsMatch(t, []string{checks.AlertPlaintextAllowed + "/ledger", checks.AlertPlaintextTraffic + "/payments"}, got)
	})

	t.Run("a STRICT namespace running injected or ambient pods without any series is MeshTelemetryBlind, one without mesh pods is not", func(t *testing.T) {
		a := checkAwaitActive(t, st.ams, checkLabels("alertname", checks.AlertTelemetryBlind, "namespace", "vault"), checkFireWait)
		require.Contains(t, a.Annotations["description"], "sidecar-injected or ambient pods")
		checkAwaitActive(t, st.ams, checkLabels("alertname", checks.AlertTelemetryBlind, "namespace", "ambient"), checkFireWait)
		last := r.checker.Last()
		var blind []string
		for _, a := range last.Firing {
			if a.Name() == checks.AlertTelemetryBlind {
				blind = append(blind, a.Labels["namespace"])
			}
		}
		require.ElementsMatch(t, []string{"ambient", "vault"}, blind, "billing reports series; empty runs no pod; plain runs none in the mesh")
	})
}

// TestCheckWorkloadManifests reads pod labels from Deployment manifests beside the
// PeerAuthentications (--config-from), as the cluster source reads them from pods.
func TestCheckWorkloadManifests(t *testing.T) {
	bin := meshguardBinary(t)
	const manifests = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: billing}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: legacy-tier
  namespace: billing
  annotations: {exceptions.meshguard.io/MG301: "reason=ledger clients move to mTLS in Q3; expires=2099-06-30"}
spec:
  selector: {matchLabels: {tier: legacy}}
  mtls: {mode: PERMISSIVE}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ledger, namespace: billing}
spec:
  selector: {matchLabels: {app: ledger}}
  template:
    metadata: {labels: {app: ledger, tier: legacy}}
    spec: {containers: [{name: ledger, image: example.com/ledger:1}]}
`
	ledger := meshsim.Workload{Name: "ledger", Namespace: "billing", App: "ledger"}
	st := checkStartStack(t, 1, meshsim.Flow{Source: checkLegacy, Destination: ledger, Rate: 4, Plaintext: true})
	checkAwaitData(t, st.prom, `rate(istio_requests_total{destination_workload="ledger"}[10s]) > 0`)
	dir := checkConfigDir(t, manifests)
	out, stderr, code := checkRunCLI(t, bin, "check", "--once", "-o", "json", "--prometheus-url", st.prom.URL(),
		"--config-from", dir, "--window", checkWindow.String(), "--interval", checkInterval.String())
	require.Equal(t, 1, code, "stderr: %s", stderr)
	var rep checks.Report
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	var got []string
	for _, a := range rep.Firing {
		if a.Labels["namespace"] == "billing" {
			got = append(got, a.Labels["alertname"]+" "+a.Labels["peer_authentication"])
		}
	}
	require.Equal(t, []string{checks.AlertPlaintextAllowed + " billing/legacy-tier"}, got, out)
}

// TestCheckClusters reads two clusters of one mesh, each through its own kubeconfig context
// (check.clusters), with different policies for the same namespace.
func TestCheckClusters(t *testing.T) {
	bin := meshguardBinary(t)
	east, west := harness.StartControlPlane(t), harness.StartControlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	injected := map[string]string{"istio-injection": "enabled"}
	for _, c := range []struct {
		cp   *harness.ControlPlane
		mode apisecurity.PeerAuthentication_MutualTLS_Mode
		db   string
	}{
		{east, apisecurity.PeerAuthentication_MutualTLS_STRICT, "east-db"},
		{west, apisecurity.PeerAuthentication_MutualTLS_PERMISSIVE, "west-db"},
	} {
		c.cp.CreateNamespace(t, "istio-system", nil)
		c.cp.CreateNamespace(t, "shop", injected)
		c.cp.CreateNamespace(t, c.db, injected)
		pa := checkPA("shop", "default", c.mode, nil)
		if c.mode == apisecurity.PeerAuthentication_MutualTLS_PERMISSIVE {
			pa.Annotations = map[string]string{"exceptions.meshguard.io/MG301": "reason=west migrates in Q2; expires=2099-03-31"}
		}
		_, err := c.cp.Istio().SecurityV1().PeerAuthentications("shop").Create(ctx, pa, metav1.CreateOptions{})
		require.NoError(t, err)
		_, err = c.cp.Istio().SecurityV1().PeerAuthentications(c.db).Create(ctx,
			checkPA(c.db, "default", apisecurity.PeerAuthentication_MutualTLS_STRICT, nil), metav1.CreateOptions{})
		require.NoError(t, err)
		checkRunPod(t, c.cp, "shop", "api", map[string]string{"app": "api"}, true)
		checkRunPod(t, c.cp, c.db, "db", map[string]string{"app": "db"}, true)
	}
	st := checkStartStack(t, 1,
		meshsim.Flow{Name: "into-east", Source: checkLegacy, Destination: meshsim.Workload{Name: "api", Namespace: "shop", App: "api", Cluster: "east"}, Rate: 3, Plaintext: true},
		meshsim.Flow{Name: "into-west", Source: checkLegacy, Destination: meshsim.Workload{Name: "api", Namespace: "shop", App: "api", Cluster: "west"}, Rate: 3, Plaintext: true})
	checkAwaitData(t, st.prom, `rate(istio_requests_total{destination_workload="api"}[10s]) > 0`)
	// A Prometheus younger than a window cannot tell an idle namespace from missing data.
	time.Sleep(checkWindow + 2*checkInterval)

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "meshguard.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(`check:
  clusters:
  - {name: east, kubeconfig: %s}
  - {name: west, kubeconfig: %s}
`, east.KubeconfigPath(), west.KubeconfigPath())), 0o644))
	out, stderr, code := checkRunCLI(t, bin, "check", "--once", "-o", "json", "--config", cfgPath, "--prometheus-url", st.prom.URL(),
		"--window", checkWindow.String(), "--interval", checkInterval.String())
	require.Equal(t, 1, code, "stderr: %s", stderr)
	var rep checks.Report
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	firing := map[string]map[string]string{}
	for _, a := range rep.Firing {
		firing[a.Labels["alertname"]+" "+a.Labels["cluster"]+"/"+a.Labels["namespace"]] = a.Labels
	}

	t.Run("each cluster's STRICT namespace running mesh pods without series is blind in that cluster", func(t *testing.T) {
		require.Contains(t, firing, checks.AlertTelemetryBlind+" east/east-db", out)
		require.Contains(t, firing, checks.AlertTelemetryBlind+" west/west-db", out)
		require.NotContains(t, firing, checks.AlertTelemetryBlind+" east/west-db", out)
		require.NotContains(t, firing, checks.AlertTelemetryBlind+" west/east-db", out)
	})

	t.Run("plaintext into each cluster is judged by that cluster's policy", func(t *testing.T) {
		if q := checks.Signals(checks.SettingsFrom(config.Default()))[0].Query; !strings.Contains(q, "destination_cluster") {
			t.Skip("the plaintext query does not keep destination_cluster: every series is judged by the default cluster")
		}
		require.Contains(t, firing, checks.AlertPlaintextTraffic+" east/shop", out)
		require.Equal(t, "shop/default", firing[checks.AlertPlaintextAllowed+" west/shop"]["peer_authentication"], out)
		require.NotContains(t, firing, checks.AlertPlaintextAllowed+" east/shop", out)
		require.NotContains(t, firing, checks.AlertPlaintextTraffic+" west/shop", out)
	})
}

// checkKubeStateMetrics is what kube-state-metrics exports of three running pods, with tier
// and app allowed by --metric-labels-allowlist: two Deployment pods with sidecars in billing,
// one in vault.
const checkKubeStateMetrics = `# TYPE kube_pod_labels gauge
kube_pod_labels{namespace="billing",pod="ledger-5d8f7c9b4-x2k9p",uid="u1",label_app="ledger",label_tier="legacy",label_pod_template_hash="5d8f7c9b4"} 1
kube_pod_labels{namespace="billing",pod="payments-6b7c8d9f5-q8w7e",uid="u2",label_app="payments",label_tier="core",label_pod_template_hash="6b7c8d9f5"} 1
kube_pod_labels{namespace="vault",pod="secrets-7c9d5f8b6-m3n4b",uid="u3",label_app="secrets",label_pod_template_hash="7c9d5f8b6"} 1
# TYPE kube_pod_owner gauge
kube_pod_owner{namespace="billing",pod="ledger-5d8f7c9b4-x2k9p",uid="u1",owner_kind="ReplicaSet",owner_name="ledger-5d8f7c9b4",owner_is_controller="true"} 1
kube_pod_owner{namespace="billing",pod="payments-6b7c8d9f5-q8w7e",uid="u2",owner_kind="ReplicaSet",owner_name="payments-6b7c8d9f5",owner_is_controller="true"} 1
kube_pod_owner{namespace="vault",pod="secrets-7c9d5f8b6-m3n4b",uid="u3",owner_kind="ReplicaSet",owner_name="secrets-7c9d5f8b6",owner_is_controller="true"} 1
# TYPE kube_pod_status_phase gauge
kube_pod_status_phase{namespace="billing",pod="ledger-5d8f7c9b4-x2k9p",uid="u1",phase="Running"} 1
kube_pod_status_phase{namespace="billing",pod="payments-6b7c8d9f5-q8w7e",uid="u2",phase="Running"} 1
kube_pod_status_phase{namespace="vault",pod="secrets-7c9d5f8b6-m3n4b",uid="u3",phase="Running"} 1
# TYPE kube_pod_container_info gauge
kube_pod_container_info{namespace="billing",pod="ledger-5d8f7c9b4-x2k9p",uid="u1",container="istio-proxy"} 1
kube_pod_container_info{namespace="billing",pod="payments-6b7c8d9f5-q8w7e",uid="u2",container="istio-proxy"} 1
kube_pod_container_info{namespace="vault",pod="secrets-7c9d5f8b6-m3n4b",uid="u3",container="istio-proxy"} 1
`

// TestCheckKubeStateMetrics reads pod labels from kube-state-metrics' kube_pod_labels in a real
// Prometheus when the checker reads manifests without workloads (no Kubernetes API access).
func TestCheckKubeStateMetrics(t *testing.T) {
	bin := meshguardBinary(t)
	exp, err := meshsim.NewExporter(meshsim.Options{},
		meshsim.Flow{Source: checkLegacy, Destination: meshsim.Workload{Name: "ledger", Namespace: "billing", App: "ledger"}, Rate: 4, Plaintext: true},
		meshsim.Flow{Source: checkLegacy, Destination: meshsim.Workload{Name: "payments", Namespace: "billing", App: "payments"}, Rate: 2, Plaintext: true})
	require.NoError(t, err)
	mesh := httptest.NewServer(exp)
	t.Cleanup(mesh.Close)
	ksm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = io.WriteString(w, checkKubeStateMetrics)
	}))
	t.Cleanup(ksm.Close)
	prom := harness.StartPrometheus(t, harness.PrometheusOptions{ScrapeTargets: []string{mesh.Listener.Addr().String(), ksm.Listener.Addr().String()}})
	checkAwaitData(t, prom, `rate(istio_requests_total{destination_workload="payments"}[10s]) > 0`)
	checkAwaitData(t, prom, `kube_pod_labels{label_tier="legacy"}`)
	// A Prometheus younger than a window cannot tell an idle namespace from missing data.
	time.Sleep(checkWindow + 2*checkInterval)

	const policies = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: billing}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: legacy-tier
  namespace: billing
  annotations: {exceptions.meshguard.io/MG301: "reason=ledger clients move to mTLS in Q3; expires=2099-06-30"}
spec:
  selector: {matchLabels: {tier: legacy}}
  mtls: {mode: PERMISSIVE}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: vault}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: empty}
spec: {mtls: {mode: STRICT}}
`
	out, stderr, code := checkRunCLI(t, bin, "check", "--once", "-o", "json", "--prometheus-url", prom.URL(),
		"--config-from", checkConfigDir(t, policies), "--window", checkWindow.String(), "--interval", checkInterval.String())
	require.Equal(t, 1, code, "stderr: %s", stderr)
	var rep checks.Report
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	var got []string
	for _, a := range rep.Firing {
		got = append(got, a.Labels["alertname"]+" "+a.Labels["namespace"]+"/"+a.Labels["destination_workload"])
	}
	require.ElementsMatch(t, []string{
		checks.AlertPlaintextAllowed + " billing/ledger",   // tier: legacy, from kube_pod_labels
		checks.AlertPlaintextTraffic + " billing/payments", // tier: core
		checks.AlertTelemetryBlind + " vault/",             // a sidecar pod, no series; empty runs no pod
	}, got, out)
}
