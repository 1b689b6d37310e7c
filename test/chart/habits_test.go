package chart

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/meshguard/meshguard/checks"
	"github.com/meshguard/meshguard/test/harness"
	"github.com/meshguard/meshguard/webhook"
)

// TestChartMetadataServesArtifactHub checks what Helm and Artifact Hub read from Chart.yaml.
func TestChartMetadataServesArtifactHub(t *testing.T) {
	var chart struct {
		KubeVersion string            `json:"kubeVersion"`
		Icon        string            `json:"icon"`
		AppVersion  string            `json:"appVersion"`
		Annotations map[string]string `json:"annotations"`
	}
	data, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(data, &chart))

	require.NotEmpty(t, chart.KubeVersion)
	require.Regexp(t, `^https://`, chart.Icon)
	_, err = os.Stat(filepath.Join(moduleRoot, "docs", "icon.svg"))
	require.NoError(t, err, "the icon the chart links to is in the repository")
	for _, key := range []string{"artifacthub.io/category", "artifacthub.io/images", "artifacthub.io/links", "artifacthub.io/changes"} {
		require.NotEmpty(t, chart.Annotations[key], key)
	}
	var images []struct{ Image string }
	require.NoError(t, yaml.Unmarshal([]byte(chart.Annotations["artifacthub.io/images"]), &images))
	require.Equal(t, "ghcr.io/meshguard/meshguard:"+chart.AppVersion, images[0].Image, "the image Artifact Hub lists is the chart's default")

	t.Run("helm refuses a cluster older than kubeVersion", func(t *testing.T) {
		out, err := runHelm(t, "template", releaseName, chartDir, "--namespace", releaseNamespace, "--kube-version", "v1.26.0")
		require.Error(t, err)
		require.Contains(t, out, "incompatible with Kubernetes v1.26.0")
	})
}

// TestGrafanaDashboard checks the dashboard ConfigMap: off by default, labelled for Grafana's
// sidecar, valid JSON, and every metric it queries is one meshguard exports.
func TestGrafanaDashboard(t *testing.T) {
	require.Empty(t, render(t, "default.yaml").all("ConfigMap")[1:], "only the config ConfigMap by default")

	r := renderValues(t, releaseName, releaseNamespace, "grafanaDashboard:\n  enabled: true\n  namespace: monitoring\n  annotations: {grafana_folder: Istio}\n")
	cm := r.one(t, "ConfigMap", "meshguard-dashboard")
	require.Equal(t, "1", cm.GetLabels()["grafana_dashboard"], "kube-prometheus-stack's sidecar selects this label")
	require.Equal(t, "monitoring", cm.GetNamespace())
	require.Equal(t, "Istio", cm.GetAnnotations()["grafana_folder"])
	body := nested[string](t, cm, "data", "meshguard.json")
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &dash))
	require.Equal(t, "meshguard", dash.UID)

	exported := exportedMetrics(t)
	metricRE := regexp.MustCompile(`meshguard_[a-z_]+`)
	queried := map[string]bool{}
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			for _, name := range metricRE.FindAllString(target.Expr, -1) {
				queried[name] = true
				base := strings.TrimSuffix(name, "_bucket")
				require.True(t, exported[base], "panel %q queries %s, which meshguard does not export", p.Title, name)
			}
		}
	}
	for _, want := range []string{"meshguard_build_info", "meshguard_webhook_requests_total", "meshguard_check_cycles_total"} {
		require.True(t, queried[want], "the dashboard shows %s", want)
	}
}

// exportedMetrics names every metric the webhook and the checker register.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	reg := prometheus.NewRegistry()
	_, err := webhook.NewMetrics(reg)
	require.NoError(t, err)
	checks.NewMetrics(reg)
	descs := make(chan *prometheus.Desc, 256)
	go func() {
		reg.Describe(descs)
		close(descs)
	}()
	names := map[string]bool{"meshguard_build_info": true} // registered by cmd/meshguard (version.go)
	nameRE := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range descs {
		if m := nameRE.FindStringSubmatch(d.String()); m != nil {
			names[m[1]] = true
		}
	}
	return names
}

// TestLintMapsHelmOutputBackToTheChart pipes real `helm template` output into meshguard lint:
// findings point at the chart's template (helm's # Source: comment), and the chart directory
// linted as files gives one note instead of a false MG001 per template.
func TestLintMapsHelmOutputBackToTheChart(t *testing.T) {
	chart := filepath.Join(t.TempDir(), "app")
	require.NoError(t, os.MkdirAll(filepath.Join(chart, "templates"), 0o755))
	files := map[string]string{
		"Chart.yaml":        "apiVersion: v2\nname: app\nversion: 0.1.0\n",
		"values.yaml":       "attempts: 10\n",
		"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n",
		"templates/vs.yaml": `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: {{ .Release.Name }}-storm
  namespace: shop
spec:
  hosts: [cart]
  http:
  - route: [{destination: {host: cart}}]
    timeout: 10s
    retries:
      attempts: {{ .Values.attempts }}
      perTryTimeout: 500ms
`,
	}
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(chart, name), []byte(content), 0o644))
	}
	rendered, err := runHelm(t, "template", "rel", chart)
	require.NoError(t, err, rendered)
	require.Contains(t, rendered, "# Source: app/templates/vs.yaml")
	bin := harness.MeshguardBinary(t)

	cmd := exec.Command(bin, "lint", "-o", "github", "-")
	cmd.Stdin = strings.NewReader(rendered)
	out, err := cmd.Output()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "the retry storm fails the lint")
	require.Equal(t, 1, ee.ExitCode())
	require.Contains(t, string(out), "::error title=MG101 VirtualService shop/rel-storm,file=app/templates/vs.yaml,line=12::")
	require.NotContains(t, string(out), "<stdin>")

	cmd = exec.Command(bin, "lint", chart)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	require.NoError(t, err, "no false MG001 for the templates:\n%s", out)
	require.NotContains(t, string(out), "MG001")
	require.Equal(t, 1, strings.Count(stderr.String(), "is a Helm chart"), stderr.String())
}
