// This file runs the Helm chart's webhook for real without a kubelet: the chart is rendered with
// the real helm binary, its objects are applied to the test control plane, and `meshguard serve`
// runs on loopback the way the chart's Deployment runs it (the same arguments, the Secret's
// certificate, the ConfigMap's config). The API server reaches it through the chart's own
// ValidatingWebhookConfiguration and Service (see RouteService), so the caBundle, the Service
// name in the certificate and the webhook rules are all the chart's.
package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

const (
	chartHelmTimeout  = 2 * time.Minute
	chartReadyTimeout = 90 * time.Second // process start, informer sync, policy compilation
)

// HelmBinary is the helm the Makefile builds: $HELM_BIN, else `test/tools/install.sh path helm`.
func HelmBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("HELM_BIN"); p != "" {
		return p
	}
	root, err := cpModuleRoot()
	if err != nil {
		t.Fatalf("helm: %v", err)
	}
	path, err := cpBinary(root, "helm")
	if err != nil {
		t.Fatalf("helm: %v", err)
	}
	return path
}

// Chart is one `helm template` of charts/meshguard.
type Chart struct {
	Release, Namespace string
	Manifest           []byte
	Objects            []*unstructured.Unstructured
}

// RenderChart runs `helm template RELEASE charts/meshguard --namespace NAMESPACE [--set ...]`
// with a private helm home, so the user's repositories and plugins never matter.
func RenderChart(t testing.TB, release, namespace string, set ...string) *Chart {
	t.Helper()
	root, err := cpModuleRoot()
	if err != nil {
		t.Fatalf("render chart: %v", err)
	}
	home := t.TempDir()
	args := []string{"template", release, filepath.Join(root, "charts", "meshguard"), "--namespace", namespace}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), chartHelmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, HelmBinary(t), args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home+"/cache", "HELM_CONFIG_HOME="+home+"/config",
		"HELM_DATA_HOME="+home+"/data", "KUBECONFIG="+home+"/none")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	objs, err := DecodeManifest(stdout.Bytes())
	if err != nil {
		t.Fatalf("render chart: %v", err)
	}
	return &Chart{Release: release, Namespace: namespace, Manifest: stdout.Bytes(), Objects: objs}
}

// DecodeManifest splits a multi-document manifest (helm's output) and decodes each object,
// leaving out documents that rendered empty.
func DecodeManifest(data []byte) ([]*unstructured.Unstructured, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []*unstructured.Unstructured
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, fmt.Errorf("decode rendered document: %w", err)
		}
		if len(m) > 0 {
			objs = append(objs, &unstructured.Unstructured{Object: m})
		}
	}
}

// Object returns the rendered object of kind named name, or fails the test.
func (c *Chart) Object(t testing.TB, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range c.Objects {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("the rendered chart has no %s %s", kind, name)
	return nil
}

// Without returns the manifest of every rendered object except those of the given kinds.
func (c *Chart) Without(t testing.TB, kinds ...string) []byte {
	t.Helper()
	return c.manifest(t, func(kind string) bool { return !slices.Contains(kinds, kind) })
}

// Only returns the manifest of the rendered objects of the given kinds.
func (c *Chart) Only(t testing.TB, kinds ...string) []byte {
	t.Helper()
	return c.manifest(t, func(kind string) bool { return slices.Contains(kinds, kind) })
}

func (c *Chart) manifest(t testing.TB, keep func(kind string) bool) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, o := range c.Objects {
		if !keep(o.GetKind()) {
			continue
		}
		data, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatalf("marshal %s %s: %v", o.GetKind(), o.GetName(), err)
		}
		b.WriteString("---\n")
		b.Write(data)
	}
	return b.Bytes()
}

func chartTyped[T any](t testing.TB, u *unstructured.Unstructured) *T {
	t.Helper()
	var out T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &out); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return &out
}

// ChartWebhook is `meshguard serve` running as the chart's webhook Deployment would run it.
type ChartWebhook struct {
	Process              *Process
	Port, ProbePort      int
	MetricsPort          int
	CertDir, ConfigPath  string
	ServiceName, Webhook string // the Service the webhook configuration names, and the configuration
}

// InstallChartWebhook applies every rendered object but the ValidatingWebhookConfiguration, starts
// bin with the webhook Deployment's arguments (paths and ports moved to loopback and temporary
// directories, --kubeconfig added), waits until it is ready, routes the webhook Service to it and
// only then applies the ValidatingWebhookConfiguration, as the chart's failurePolicy Fail needs.
func (cp *ControlPlane) InstallChartWebhook(t testing.TB, bin string, c *Chart) *ChartWebhook {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), chartReadyTimeout)
	defer cancel()
	if _, stderr, err := cp.Kubectl(ctx, nil, "create", "namespace", c.Namespace); err != nil && !strings.Contains(stderr, "AlreadyExists") {
		t.Fatalf("create namespace %s: %v\n%s", c.Namespace, err, stderr)
	}
	if _, stderr, err := cp.Kubectl(ctx, bytes.NewReader(c.Without(t, "ValidatingWebhookConfiguration")), "apply", "-f", "-"); err != nil {
		t.Fatalf("apply the rendered chart: %v\n%s", err, stderr)
	}

	// The chart names its objects after the release; find them by role rather than by name.
	var dep *appsv1.Deployment
	var vwcName string
	for _, o := range c.Objects {
		switch o.GetKind() {
		case "Deployment":
			if d := chartTyped[appsv1.Deployment](t, o); len(d.Spec.Template.Spec.Containers) > 0 &&
				len(d.Spec.Template.Spec.Containers[0].Args) > 0 && d.Spec.Template.Spec.Containers[0].Args[0] == "serve" {
				dep = d
			}
		case "ValidatingWebhookConfiguration":
			vwcName = o.GetName()
		}
	}
	if dep == nil || vwcName == "" {
		t.Fatalf("the rendered chart has no `serve` Deployment or no ValidatingWebhookConfiguration")
	}
	vwc := c.Object(t, "ValidatingWebhookConfiguration", vwcName)
	webhooks, _, _ := unstructured.NestedSlice(vwc.Object, "webhooks")
	if len(webhooks) == 0 {
		t.Fatalf("ValidatingWebhookConfiguration %s has no webhooks", vwcName)
	}
	svcName, _, _ := unstructured.NestedString(webhooks[0].(map[string]any), "clientConfig", "service", "name")

	pod := dep.Spec.Template.Spec
	w := &ChartWebhook{Port: FreePort(t), ProbePort: FreePort(t), MetricsPort: FreePort(t),
		CertDir: t.TempDir(), ServiceName: svcName, Webhook: vwcName}
	mounts := map[string]string{} // mount path -> directory holding the volume's files
	for _, m := range pod.Containers[0].VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name != m.Name {
				continue
			}
			switch {
			case v.Secret != nil:
				secret := chartTyped[corev1.Secret](t, c.Object(t, "Secret", v.Secret.SecretName))
				writeFiles(t, w.CertDir, secret.Data)
				mounts[m.MountPath] = w.CertDir
			case v.ConfigMap != nil:
				cm := chartTyped[corev1.ConfigMap](t, c.Object(t, "ConfigMap", v.ConfigMap.Name))
				dir := t.TempDir()
				data := map[string][]byte{}
				for k, v := range cm.Data {
					data[k] = []byte(v)
				}
				writeFiles(t, dir, data)
				mounts[m.MountPath] = dir
			}
		}
	}

	var args []string
	for _, a := range pod.Containers[0].Args {
		name, value, _ := strings.Cut(a, "=")
		switch name {
		case "--port":
			value = strconv.Itoa(w.Port)
		case "--metrics-bind-address":
			value = "127.0.0.1:" + strconv.Itoa(w.MetricsPort)
		case "--health-probe-bind-address":
			value = "127.0.0.1:" + strconv.Itoa(w.ProbePort)
		default:
			for path, dir := range mounts {
				if value == path || strings.HasPrefix(value, path+"/") {
					value = dir + strings.TrimPrefix(value, path)
				}
			}
		}
		if name == "--config" {
			w.ConfigPath = value
		}
		if value != "" || strings.Contains(a, "=") {
			a = name + "=" + value
		}
		args = append(args, a)
	}
	args = append(args, "--kubeconfig="+cp.KubeconfigPath())
	w.Process = NewProcess(t, "meshguard-serve", bin, args...)
	if err := w.Process.Start(); err != nil {
		t.Fatalf("start meshguard serve: %v", err)
	}
	if err := w.Process.WaitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", w.ProbePort)); err != nil {
		t.Fatalf("meshguard serve %s: not ready: %v", strings.Join(args, " "), err)
	}

	cp.RouteService(t, c.Namespace, svcName, "127.0.0.1:"+strconv.Itoa(w.Port))
	if _, stderr, err := cp.Kubectl(ctx, bytes.NewReader(c.Only(t, "ValidatingWebhookConfiguration")), "apply", "-f", "-"); err != nil {
		t.Fatalf("apply ValidatingWebhookConfiguration %s: %v\n%s", vwcName, err, stderr)
	}
	// Remove the configuration before the server stops (cleanups run last-in first-out), so a
	// failurePolicy Fail webhook never outlives its server.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if !cp.Stopped() {
			_, _, _ = cp.Kubectl(ctx, nil, "delete", "validatingwebhookconfiguration", vwcName, "--ignore-not-found")
		}
	})
	return w
}

func writeFiles(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatalf("write %s: %v", name, err)
		}
	}
}
