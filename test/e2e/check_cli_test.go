package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/checks"
	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/internal/graph"
	"github.com/meshguard/meshguard/test/harness"
	"github.com/meshguard/meshguard/test/meshsim"
)

// checkRunCLI runs the meshguard binary to completion and returns stdout, stderr and the exit code.
func checkRunCLI(t *testing.T, bin string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return out.String(), errb.String(), code
}

// checkAwaitData waits until Prometheus has enough samples for a rate over the window.
func checkAwaitData(t *testing.T, prom *harness.Prometheus, query string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), checkFireWait)
	defer cancel()
	_, err := prom.AwaitQuery(ctx, query, func(v model.Value) bool {
		vec, ok := v.(model.Vector)
		return ok && len(vec) > 0
	})
	require.NoError(t, err)
}

// TestCheckCLI runs `meshguard check` and `meshguard graph` as a user would, against a live
// synthetic mesh.
func TestCheckCLI(t *testing.T) {
	bin := meshguardBinary(t)
	plain := meshsim.Flow{Source: checkLegacy, Destination: meshsim.Workload{Name: "api-v1", Namespace: "strict", App: "api"}, Rate: 5, Plaintext: true}
	secure := meshsim.Flow{Source: checkFrontend, Destination: checkBackend, Rate: 10}
	st := checkStartStack(t, 1, plain, secure)
	dir := checkConfigDir(t, checkMeshStrictPA)
	checkAwaitData(t, st.prom, `rate(istio_requests_total{destination_workload="api-v1"}[10s]) > 0`)
	common := []string{"--prometheus-url", st.prom.URL(), "--config-from", dir, "--window", checkWindow.String()}

	t.Run("check --once -o json lists each firing alert with labels, annotations and figure, and exits 1", func(t *testing.T) {
		out, stderr, code := checkRunCLI(t, bin, append([]string{"check", "--once", "-o", "json"}, common...)...)
		require.Equal(t, 1, code, "stderr: %s", stderr)
		var rep checks.Report
		require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
		require.Len(t, rep.Firing, 1, out)
		a := rep.Firing[0]
		require.Equal(t, checks.AlertPlaintextTraffic, a.Labels["alertname"])
		require.Equal(t, "api-v1", a.Labels["destination_workload"])
		require.Greater(t, a.Figure, 0.0)
		require.NotEmpty(t, a.Annotations["description"])
		require.True(t, strings.HasPrefix(a.GeneratorURL, st.prom.URL()+"/graph?g0.expr="))
		require.Len(t, rep.Queries, len(checks.Signals(checks.SettingsFrom(config.Default()))), "one query per signal")
	})

	t.Run("check --once prints a table and exits 0 when nothing fires", func(t *testing.T) {
		args := []string{"check", "--once", "--prometheus-url", st.prom.URL(), "--config-from", checkConfigDir(t, `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: storm}
spec: {mtls: {mode: STRICT}}
`), "--window", checkWindow.String()}
		out, stderr, code := checkRunCLI(t, bin, args...)
		require.Equal(t, 0, code, "stdout: %s stderr: %s", out, stderr)
		require.Contains(t, out, "No alerts")
	})

	t.Run("check --once with an unreachable Prometheus exits 2 and says so", func(t *testing.T) {
		_, stderr, code := checkRunCLI(t, bin, "check", "--once", "--prometheus-url", "http://127.0.0.1:1", "--config-from", dir)
		require.Equal(t, 2, code)
		require.Contains(t, stderr, "cannot check: Prometheus at http://127.0.0.1:1")
	})

	usage := []struct {
		name string
		args []string
		want string
	}{
		{name: "no Prometheus URL", args: []string{"check", "--once", "--config-from", dir}, want: "--prometheus-url"},
		{name: "an unknown output format", args: append([]string{"check", "--once", "-o", "yaml"}, common...), want: `unknown output format "yaml"`},
		{name: "files and a cluster at once", args: append([]string{"check", "--once", "--kubeconfig", "/nonexistent"}, common...), want: "not both"},
		{name: "a missing manifest directory", args: []string{"check", "--once", "--prometheus-url", st.prom.URL(), "--config-from", "/nonexistent"}, want: "/nonexistent"},
		{name: "a window below a second", args: []string{"check", "--once", "--prometheus-url", st.prom.URL(), "--config-from", dir, "--window", "500ms"}, want: "window"},
		{name: "an unknown graph format", args: []string{"graph", "--prometheus-url", st.prom.URL(), "-o", "svg"}, want: `"svg"`},
	}
	for _, tc := range usage {
		t.Run("usage error: "+tc.name+" exits 2", func(t *testing.T) {
			_, stderr, code := checkRunCLI(t, bin, tc.args...)
			require.Equal(t, 2, code, stderr)
			require.Contains(t, stderr, tc.want)
		})
	}

	t.Run("graph prints the observed graph as JSON and as Graphviz dot", func(t *testing.T) {
		out, stderr, code := checkRunCLI(t, bin, "graph", "--prometheus-url", st.prom.URL(), "--config-from", dir, "--window", "10s", "-o", "json")
		require.Equal(t, 0, code, stderr)
		var g graph.Graph
		require.NoError(t, json.Unmarshal([]byte(out), &g))
		edges := map[string]graph.Edge{}
		for _, e := range g.Edges {
			edges[e.ID] = e
		}
		e := edges["workload:Kubernetes/legacy/batch -> service:Kubernetes/api.strict.svc.cluster.local"]
		require.Equal(t, 0.0, *e.MTLSShare, "plaintext")
		require.Greater(t, e.RequestRate, 0.0)
		require.NotNil(t, e.P99Ms)
		require.Equal(t, 1.0, *edges["workload:Kubernetes/storm/frontend -> service:Kubernetes/backend.storm.svc.cluster.local"].MTLSShare)

		out, stderr, code = checkRunCLI(t, bin, "graph", "--prometheus-url", st.prom.URL(), "--config-from", dir, "--window", "10s", "-o", "dot")
		require.Equal(t, 0, code, stderr)
		require.Contains(t, out, "digraph mesh {")
		require.Contains(t, out, `"workload:Kubernetes/legacy/batch" -> "service:Kubernetes/api.strict.svc.cluster.local"`)
		if dot, err := exec.LookPath("dot"); err == nil {
			cmd := exec.Command(dot, "-Tsvg")
			cmd.Stdin = strings.NewReader(out)
			require.NoError(t, cmd.Run(), "Graphviz accepts the output")
		}
	})

	t.Run("the daemon serves /metrics, /healthz and /readyz, and flushes queued alerts on SIGTERM", func(t *testing.T) {
		am := st.ams[0]
		port := harness.FreePort(t)
		base := "http://127.0.0.1:" + strconv.Itoa(port)
		p := harness.StartProcess(t, "meshguard-check", bin, append([]string{"check", "--alertmanager-url", am.URL(),
			"--interval", "1s", "--listen-address", "127.0.0.1:" + strconv.Itoa(port), "--checker-namespace", "meshguard-system"}, common...)...)
		require.NoError(t, p.WaitHTTP(context.Background(), base+"/readyz"))
		require.NoError(t, p.WaitHTTP(context.Background(), base+"/healthz"))
		labels := checkLabels("alertname", checks.AlertPlaintextTraffic, "destination_workload", "api-v1")
		st.receiver.WaitForAlert(t, harness.AlertFiring, labels, checkFireWait)
		metrics := checkGet(t, base+"/metrics")
		for _, want := range []string{"meshguard_check_cycle_duration_seconds_count", `meshguard_check_queries_total{result="success",signal="plaintext_requests"}`,
			`meshguard_check_alerts_firing{alertname="MeshPlaintextTraffic"} 1`, `meshguard_check_alertmanager_alerts_sent_total{alertmanager="` + am.URL() + `"}`} {
			require.Contains(t, metrics, want)
		}

		// Alertmanager goes down; a new alert fires and waits in the queue; SIGTERM comes as
		// Alertmanager comes back: the daemon delivers before it exits.
		require.NoError(t, am.Stop())
		require.NoError(t, st.exporter.Set(meshsim.Flow{Source: checkLegacy, Destination: meshsim.Workload{Name: "late-v1", Namespace: "strict", App: "late"}, Rate: 5, Plaintext: true}))
		require.Eventually(t, func() bool {
			return strings.Contains(checkGet(t, base+"/metrics"), `meshguard_check_alerts_firing{alertname="MeshPlaintextTraffic"} 2`)
		}, checkFireWait, checkPoll)
		require.Eventually(t, func() bool {
			return strings.Contains(checkGet(t, base+"/metrics"), "meshguard_check_alertmanager_send_errors_total{alertmanager=")
		}, checkFireWait, checkPoll)
		require.NoError(t, am.Start())
		stopped := time.Now()
		require.NoError(t, p.Stop(), "a clean exit after SIGTERM")
		t.Logf("daemon stopped %s after SIGTERM", time.Since(stopped).Round(time.Millisecond))
		require.True(t, p.LogContains("delivering queued alerts"), p.LogTail(20))
		st.receiver.WaitForAlert(t, harness.AlertFiring, checkLabels("alertname", checks.AlertPlaintextTraffic, "destination_workload", "late-v1"), checkFireWait)
	})
}

func checkGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	return string(b)
}
