// Package chart tests the Helm chart in charts/meshguard with the real helm binary: lint, the
// rendered objects (webhook rules, TLS, RBAC, pod security, config), the values schema, and a
// real kube-apiserver accepting every object and a real `helm install` and `helm upgrade`.
package chart

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/meshguard/meshguard/policies"
	"github.com/meshguard/meshguard/test/harness"
)

const (
	// The release the install command creates.
	releaseName      = "meshguard"
	releaseNamespace = "meshguard"

	// helmTimeout bounds one helm run (lint and template take well under a second; install and
	// upgrade against the test API server a few seconds).
	helmTimeout = 2 * time.Minute
	// toolTimeout bounds promtool and the tool-path lookups.
	toolTimeout = time.Minute
	// kubeTimeout bounds one kubectl or API call against the test control plane.
	kubeTimeout = time.Minute
)

// optionSets are the values files under testdata/values, one per option the chart offers.
// Every test that loops over them covers each option turned on.
var optionSets = []struct {
	name string
	file string
}{
	{"default values", "default.yaml"},
	{"cert-manager issues the certificate from the chart's CA", "cert-manager.yaml"},
	{"cert-manager issues the certificate from an existing ClusterIssuer", "cert-manager-issuer.yaml"},
	{"ServiceMonitors are enabled", "service-monitor.yaml"},
	{"the PrometheusRule is enabled", "prometheus-rule.yaml"},
	{"NetworkPolicies restrict ingress and egress", "network-policy.yaml"},
	{"the checker is disabled", "checker-disabled.yaml"},
	{"one checker without leader election", "checker-single.yaml"},
	{"the API server fails open with failurePolicy Ignore", "failure-policy-ignore.yaml"},
	{"extra config rules and checker endpoints are set", "extra-config.yaml"},
	{"every option is on with a full name override", "everything.yaml"},
}

var (
	moduleRoot string
	chartDir   string
	helmBin    string
	helmHome   string // HELM_*_HOME of every helm run, so the user's repositories and plugins never matter
	appVersion string
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	var err error
	if moduleRoot, err = findModuleRoot(); err != nil {
		fmt.Fprintln(os.Stderr, "chart tests:", err)
		return 1
	}
	chartDir = filepath.Join(moduleRoot, "charts", "meshguard")
	if helmBin, err = toolPath("HELM_BIN", "helm"); err != nil {
		fmt.Fprintln(os.Stderr, "chart tests:", err)
		return 1
	}
	if helmHome, err = os.MkdirTemp("", "meshguard-chart-helm-"); err != nil {
		fmt.Fprintln(os.Stderr, "chart tests:", err)
		return 1
	}
	defer os.RemoveAll(helmHome)
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	data, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err == nil {
		err = yaml.Unmarshal(data, &chart)
	}
	if err != nil || chart.AppVersion == "" {
		fmt.Fprintf(os.Stderr, "chart tests: reading appVersion from Chart.yaml: %v\n", err)
		return 1
	}
	appVersion = chart.AppVersion
	return m.Run()
}

// TestChartLints runs `helm lint --strict` with each option set.
func TestChartLints(t *testing.T) {
	for _, set := range optionSets {
		t.Run(set.name, func(t *testing.T) {
			out, err := runHelm(t, "lint", "--strict", chartDir, "--namespace", releaseNamespace, "-f", valuesFile(set.file))
			require.NoError(t, err, out)
			require.Contains(t, out, "0 chart(s) failed")
		})
	}
}

// TestWebhookConfiguration checks the ValidatingWebhookConfiguration and the Service behind it.
func TestWebhookConfiguration(t *testing.T) {
	t.Run("the default webhook reviews every served version of the Istio kinds meshguard checks", func(t *testing.T) {
		r := render(t, "default.yaml")
		vwc := typed[admissionregistrationv1.ValidatingWebhookConfiguration](t, r.one(t, "ValidatingWebhookConfiguration", releaseName))
		require.Len(t, vwc.Webhooks, 1)
		wh := vwc.Webhooks[0]

		require.Equal(t, "validate.meshguard.io", wh.Name)
		require.Equal(t, harness.IstioWebhookRules(), wh.Rules, "the chart and the test harness must agree on the rules")
		// The rules must also cover exactly what meshguard itself decodes (internal/manifest).
		covered := map[string][]string{}
		for _, rule := range wh.Rules {
			require.Equal(t, []admissionregistrationv1.OperationType{"CREATE", "UPDATE", "DELETE"}, rule.Operations)
			require.Len(t, rule.APIGroups, 1)
			for _, res := range rule.Resources {
				covered[res] = append([]string{rule.APIGroups[0]}, rule.APIVersions...)
			}
		}
		plural := map[string]string{
			manifest.KindVirtualService: "virtualservices", manifest.KindDestinationRule: "destinationrules",
			manifest.KindPeerAuthentication: "peerauthentications", manifest.KindTelemetry: "telemetries",
			manifest.KindAuthorizationPolicy: "authorizationpolicies",
		}
		for _, kind := range manifest.Kinds() {
			group, versions := manifest.GroupVersions(kind)
			require.Contains(t, plural, kind, "a kind meshguard checks has no webhook rule")
			require.ElementsMatch(t, append([]string{group}, versions...), covered[plural[kind]], "%s: group and versions", kind)
		}
		require.Len(t, covered, len(manifest.Kinds()))

		require.Equal(t, admissionregistrationv1.SideEffectClassNone, *wh.SideEffects)
		require.Equal(t, admissionregistrationv1.Fail, *wh.FailurePolicy)
		require.EqualValues(t, 10, *wh.TimeoutSeconds)
		require.Equal(t, admissionregistrationv1.Equivalent, *wh.MatchPolicy)
		require.Equal(t, []string{"v1"}, wh.AdmissionReviewVersions)
		require.Nil(t, wh.ObjectSelector)
		require.Equal(t, &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
			Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"kube-system", releaseNamespace},
		}}}, wh.NamespaceSelector)

		// clientConfig → Service port 443 → the container's webhook port 9443.
		svcRef := wh.ClientConfig.Service
		require.NotNil(t, svcRef)
		require.Nil(t, wh.ClientConfig.URL)
		require.Equal(t, releaseNamespace, svcRef.Namespace)
		require.Equal(t, "/validate", *svcRef.Path)
		require.EqualValues(t, 443, *svcRef.Port)
		svc := typed[corev1.Service](t, r.one(t, "Service", svcRef.Name))
		require.Len(t, svc.Spec.Ports, 1)
		require.EqualValues(t, 443, svc.Spec.Ports[0].Port)
		dep := typed[appsv1.Deployment](t, r.one(t, "Deployment", "meshguard-webhook"))
		require.True(t, selects(svc.Spec.Selector, dep.Spec.Template.Labels), "the webhook Service must select the webhook pods")
		require.EqualValues(t, 9443, containerPort(t, dep.Spec.Template.Spec.Containers[0], svc.Spec.Ports[0].TargetPort))
	})

	t.Run("failurePolicy, timeoutSeconds and extra excluded namespaces come from values", func(t *testing.T) {
		r := render(t, "failure-policy-ignore.yaml")
		vwc := typed[admissionregistrationv1.ValidatingWebhookConfiguration](t, r.one(t, "ValidatingWebhookConfiguration", releaseName))
		wh := vwc.Webhooks[0]
		require.Equal(t, admissionregistrationv1.Ignore, *wh.FailurePolicy)
		require.EqualValues(t, 5, *wh.TimeoutSeconds)
		require.Equal(t, []string{"kube-system", releaseNamespace, "istio-gateways"}, wh.NamespaceSelector.MatchExpressions[0].Values,
			"kube-system listed again in values must appear once")
		// The evaluation deadline follows the API server's, two seconds shorter.
		cfg := renderedConfig(t, r)
		require.Equal(t, 3*time.Second, cfg.Webhook.Timeout.Duration)
	})

	t.Run("a release in another namespace leaves that namespace out", func(t *testing.T) {
		r := renderWith(t, "guard", "platform", "default.yaml")
		vwc := typed[admissionregistrationv1.ValidatingWebhookConfiguration](t, r.one(t, "ValidatingWebhookConfiguration", "guard-meshguard"))
		wh := vwc.Webhooks[0]
		require.Equal(t, []string{"kube-system", "platform"}, wh.NamespaceSelector.MatchExpressions[0].Values)
		require.Equal(t, "platform", wh.ClientConfig.Service.Namespace)
		require.Equal(t, "guard-meshguard-webhook", wh.ClientConfig.Service.Name)
	})
}

// TestSelfSignedCertificate checks the chart-generated CA and serving certificate: the Secret the
// pods mount holds tls.crt, tls.key and ca.crt, the webhook's caBundle is ca.crt, and the serving
// certificate verifies against it for the Service's DNS names.
func TestSelfSignedCertificate(t *testing.T) {
	cases := []struct {
		name, release, namespace, file, service string
	}{
		{"the default release", releaseName, releaseNamespace, "default.yaml", "meshguard-webhook"},
		{"a release named differently in another namespace", "guard", "platform", "default.yaml", "guard-meshguard-webhook"},
		{"a release with only the checker turned off", releaseName, releaseNamespace, "checker-disabled.yaml", "meshguard-webhook"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := renderWith(t, tc.release, tc.namespace, tc.file)
			vwc := typed[admissionregistrationv1.ValidatingWebhookConfiguration](t, r.one(t, "ValidatingWebhookConfiguration", ""))
			dep := typed[appsv1.Deployment](t, r.one(t, "Deployment", tc.service))
			secretName := volumeSecret(t, dep.Spec.Template.Spec, "tls")
			secret := typed[corev1.Secret](t, r.one(t, "Secret", secretName))

			require.Equal(t, corev1.SecretTypeTLS, secret.Type)
			for _, key := range []string{"tls.crt", "tls.key", "ca.crt"} {
				require.NotEmpty(t, secret.Data[key], key)
			}
			require.Equal(t, secret.Data["ca.crt"], vwc.Webhooks[0].ClientConfig.CABundle, "caBundle must be the Secret's ca.crt")
			verifyServingCert(t, secret.Data, tc.service, tc.namespace)
		})
	}

	t.Run("each render generates a new CA when no Secret exists yet", func(t *testing.T) {
		a := typed[corev1.Secret](t, renderFile(t, releaseName, releaseNamespace, valuesFile("default.yaml")).one(t, "Secret", "meshguard-webhook-tls"))
		b := typed[corev1.Secret](t, renderFile(t, releaseName, releaseNamespace, valuesFile("default.yaml")).one(t, "Secret", "meshguard-webhook-tls"))
		require.NotEqual(t, a.Data["ca.crt"], b.Data["ca.crt"])
	})
}

// verifyServingCert parses the PEMs and verifies the serving certificate against the CA for each
// of the Service's DNS names, as the API server does when it calls the webhook.
func verifyServingCert(t *testing.T, data map[string][]byte, service, namespace string) {
	t.Helper()
	caCert := parseCert(t, data["ca.crt"])
	require.True(t, caCert.IsCA, "ca.crt must be a CA")
	leaf := parseCert(t, data["tls.crt"])
	_, err := tls.X509KeyPair(data["tls.crt"], data["tls.key"])
	require.NoError(t, err, "tls.key must be the key of tls.crt")

	names := []string{
		service,
		service + "." + namespace,
		service + "." + namespace + ".svc",
		service + "." + namespace + ".svc.cluster.local",
	}
	require.ElementsMatch(t, names, leaf.DNSNames)
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	for _, name := range names {
		_, err := leaf.Verify(x509.VerifyOptions{
			DNSName:   name,
			Roots:     roots,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		require.NoError(t, err, "serving certificate for %s", name)
	}
	_, err = leaf.Verify(x509.VerifyOptions{DNSName: "evil." + namespace + ".svc", Roots: roots})
	require.Error(t, err, "the certificate must not be valid for other names")
	// validityDays (3650) from now, give or take the render time.
	require.WithinDuration(t, time.Now().Add(3650*24*time.Hour), leaf.NotAfter, time.Hour)
}

func parseCert(t *testing.T, pemData []byte) *x509.Certificate {
	t.Helper()
	block, rest := pem.Decode(pemData)
	require.NotNil(t, block, "not PEM")
	require.Equal(t, "CERTIFICATE", block.Type)
	require.Empty(t, bytes.TrimSpace(rest), "one certificate expected")
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	return cert
}

// TestCertManager checks the cert-manager objects and how the webhook and its pods find them.
func TestCertManager(t *testing.T) {
	t.Run("the chart's own CA issues the serving certificate and the CA injector fills the caBundle", func(t *testing.T) {
		r := render(t, "cert-manager.yaml")
		require.Empty(t, r.all("Secret"), "cert-manager writes the Secret; the chart must not")
		vwc := typed[admissionregistrationv1.ValidatingWebhookConfiguration](t, r.one(t, "ValidatingWebhookConfiguration", releaseName))
		require.Empty(t, vwc.Webhooks[0].ClientConfig.CABundle)
		require.Equal(t, releaseNamespace+"/meshguard-webhook", vwc.Annotations["cert-manager.io/inject-ca-from"])

		cert := r.one(t, "Certificate", "meshguard-webhook")
		dep := typed[appsv1.Deployment](t, r.one(t, "Deployment", "meshguard-webhook"))
		require.Equal(t, volumeSecret(t, dep.Spec.Template.Spec, "tls"), nested[string](t, cert, "spec", "secretName"))
		require.Equal(t, []any{"meshguard-webhook", "meshguard-webhook.meshguard", "meshguard-webhook.meshguard.svc",
			"meshguard-webhook.meshguard.svc.cluster.local"}, nested[[]any](t, cert, "spec", "dnsNames"))
		require.Equal(t, "meshguard-webhook-ca", nested[string](t, cert, "spec", "issuerRef", "name"))

		// The chain: a self-signed Issuer signs the CA Certificate, whose Secret backs the CA Issuer.
		caIssuer := r.one(t, "Issuer", "meshguard-webhook-ca")
		caCert := r.one(t, "Certificate", "meshguard-webhook-ca")
		require.True(t, nested[bool](t, caCert, "spec", "isCA"))
		require.Equal(t, nested[string](t, caCert, "spec", "secretName"), nested[string](t, caIssuer, "spec", "ca", "secretName"))
		selfSigned := r.one(t, "Issuer", nested[string](t, caCert, "spec", "issuerRef", "name"))
		_, found, _ := unstructured.NestedMap(selfSigned.Object, "spec", "selfSigned")
		require.True(t, found)
	})

	t.Run("an existing ClusterIssuer replaces the chart's CA", func(t *testing.T) {
		r := render(t, "cert-manager-issuer.yaml")
		require.Empty(t, r.all("Issuer"))
		require.Len(t, r.all("Certificate"), 1)
		cert := r.one(t, "Certificate", "meshguard-webhook")
		require.Equal(t, map[string]any{"name": "platform-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"},
			nested[map[string]any](t, cert, "spec", "issuerRef"))
		require.Equal(t, "720h", nested[string](t, cert, "spec", "duration"))
	})
}

// TestPods checks what every pod of every option set must have: the restricted security context,
// no Istio sidecar, resources, probes, and the container contract of `meshguard serve` and check.
func TestPods(t *testing.T) {
	for _, set := range optionSets {
		t.Run(set.name, func(t *testing.T) {
			r := render(t, set.file)
			deps := r.all("Deployment")
			require.NotEmpty(t, deps)
			for _, u := range deps {
				dep := typed[appsv1.Deployment](t, u)
				t.Run(dep.Name+" is restricted and kept out of the mesh", func(t *testing.T) {
					requireRestrictedPod(t, dep.Spec.Template.Spec)
					require.True(t, selects(dep.Spec.Selector.MatchLabels, dep.Spec.Template.Labels))
					for _, m := range []map[string]string{dep.Spec.Template.Labels, dep.Spec.Template.Annotations} {
						require.Equal(t, "false", m["sidecar.istio.io/inject"], "label and annotation sidecar.istio.io/inject")
					}
					require.Equal(t, "none", dep.Spec.Template.Labels["istio.io/dataplane-mode"], "ambient mode opt-out")
					for _, key := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
						"app.kubernetes.io/managed-by", "app.kubernetes.io/component", "helm.sh/chart"} {
						require.NotEmpty(t, dep.Labels[key], key)
					}
				})
			}
		})
	}

	t.Run("the webhook runs two spread replicas under a PodDisruptionBudget with the serve contract", func(t *testing.T) {
		r := render(t, "default.yaml")
		dep := typed[appsv1.Deployment](t, r.one(t, "Deployment", "meshguard-webhook"))
		require.EqualValues(t, 2, *dep.Spec.Replicas)
		require.Equal(t, intstr.FromInt32(0), *dep.Spec.Strategy.RollingUpdate.MaxUnavailable)
		pod := dep.Spec.Template.Spec
		anti := pod.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution
		require.Len(t, anti, 1)
		require.Equal(t, "kubernetes.io/hostname", anti[0].PodAffinityTerm.TopologyKey)
		require.True(t, selects(anti[0].PodAffinityTerm.LabelSelector.MatchLabels, dep.Spec.Template.Labels))

		pdb := typed[policyv1.PodDisruptionBudget](t, r.one(t, "PodDisruptionBudget", "meshguard-webhook"))
		require.True(t, selects(pdb.Spec.Selector.MatchLabels, dep.Spec.Template.Labels))
		require.Equal(t, intstr.FromInt32(1), *pdb.Spec.MaxUnavailable)
		require.Nil(t, pdb.Spec.MinAvailable)

		c := pod.Containers[0]
		require.Equal(t, "ghcr.io/meshguard/meshguard:"+appVersion, c.Image)
		require.Equal(t, []string{"serve", "--cert-dir=/tls", "--config=/etc/meshguard/config.yaml", "--port=9443",
			"--metrics-bind-address=:8080", "--health-probe-bind-address=:8081", "--log-format=json", "--v=0"}, c.Args)
		require.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
		require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
		require.EqualValues(t, 8081, containerPort(t, c, c.ReadinessProbe.HTTPGet.Port))
		require.EqualValues(t, 8081, containerPort(t, c, c.LivenessProbe.HTTPGet.Port))
		require.EqualValues(t, 9443, containerPort(t, c, intstr.FromString("webhook")))
		require.EqualValues(t, 8080, containerPort(t, c, intstr.FromString("http-metrics")))
		requireMount(t, pod, c, "/tls", volumeSecret(t, pod, "tls"))
		requireMount(t, pod, c, "/etc/meshguard", "meshguard-config")
		require.Equal(t, "meshguard-webhook", pod.ServiceAccountName)
	})

	t.Run("the checker runs two spread replicas electing a leader, under a PodDisruptionBudget, with the check contract", func(t *testing.T) {
		r := render(t, "default.yaml")
		dep := typed[appsv1.Deployment](t, r.one(t, "Deployment", "meshguard-checker"))
		require.EqualValues(t, 2, *dep.Spec.Replicas)
		require.Equal(t, appsv1.RollingUpdateDeploymentStrategyType, dep.Spec.Strategy.Type, "the Lease keeps one sender")
		require.Equal(t, intstr.FromInt32(0), *dep.Spec.Strategy.RollingUpdate.MaxUnavailable)
		pod := dep.Spec.Template.Spec
		c := pod.Containers[0]
		env := map[string]string{}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
				env[e.Name] = e.ValueFrom.FieldRef.FieldPath
			}
		}
		require.Equal(t, map[string]string{"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}, env,
			"the identity in the election and the Lease's namespace")
		spread := pod.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution
		require.Len(t, spread, 1)
		require.True(t, selects(spread[0].PodAffinityTerm.LabelSelector.MatchLabels, dep.Spec.Template.Labels))
		pdb := typed[policyv1.PodDisruptionBudget](t, r.one(t, "PodDisruptionBudget", "meshguard-checker"))
		require.Equal(t, intstr.FromInt32(1), *pdb.Spec.MaxUnavailable)
		require.True(t, selects(pdb.Spec.Selector.MatchLabels, dep.Spec.Template.Labels))
		require.Equal(t, config.LeaderElection{Enabled: true, LeaseName: "meshguard-checker", LeaseNamespace: releaseNamespace,
			LeaseDuration: config.Duration{Duration: 15 * time.Second}, RenewDeadline: config.Duration{Duration: 10 * time.Second},
			RetryPeriod: config.Duration{Duration: 2 * time.Second}}, renderedConfig(t, r).Check.LeaderElection)
		require.Equal(t, []string{"check", "--config=/etc/meshguard/config.yaml", "--listen-address=:8080", "--log-level=info"}, c.Args)
		require.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
		require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
		require.EqualValues(t, 8080, containerPort(t, c, c.ReadinessProbe.HTTPGet.Port))
		requireMount(t, pod, c, "/etc/meshguard", "meshguard-config")
		require.Equal(t, "meshguard-checker", pod.ServiceAccountName)
		require.NotEmpty(t, dep.Spec.Template.Annotations["checksum/config"], "the checker reads its config once: roll it on change")

		svc := typed[corev1.Service](t, r.one(t, "Service", "meshguard-checker"))
		require.True(t, selects(svc.Spec.Selector, dep.Spec.Template.Labels))
		require.True(t, svc.Spec.PublishNotReadyAddresses, "a degraded (not ready) checker must stay scrapeable")
		require.EqualValues(t, 8080, containerPort(t, c, svc.Spec.Ports[0].TargetPort))
	})

	t.Run("one checker without leader election is recreated, never two at once", func(t *testing.T) {
		r := render(t, "checker-single.yaml")
		dep := typed[appsv1.Deployment](t, r.one(t, "Deployment", "meshguard-checker"))
		require.EqualValues(t, 1, *dep.Spec.Replicas)
		require.Equal(t, appsv1.RecreateDeploymentStrategyType, dep.Spec.Strategy.Type)
		require.Nil(t, dep.Spec.Template.Spec.Affinity)
		require.Len(t, r.all("PodDisruptionBudget"), 1, "the webhook's only")
		require.False(t, renderedConfig(t, r).Check.LeaderElection.Enabled)
	})

	t.Run("several checkers without leader election are refused", func(t *testing.T) {
		out, err := runHelm(t, "template", releaseName, chartDir, "--namespace", releaseNamespace, "-f",
			writeValues(t, "checker:\n  replicas: 2\n  leaderElection:\n    enabled: false\n"))
		require.Error(t, err)
		require.Contains(t, out, "checker.replicas > 1 needs checker.leaderElection.enabled")
	})

	t.Run("overrides reach the pods", func(t *testing.T) {
		r := render(t, "everything.yaml")
		dep := typed[appsv1.Deployment](t, r.one(t, "Deployment", "guard-webhook"))
		pod := dep.Spec.Template.Spec
		require.EqualValues(t, 3, *dep.Spec.Replicas)
		require.Equal(t, "ghcr.io/meshguard/meshguard@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", pod.Containers[0].Image)
		require.Len(t, pod.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution, 1)
		require.Len(t, pod.TopologySpreadConstraints, 1)
		require.True(t, selects(pod.TopologySpreadConstraints[0].LabelSelector.MatchLabels, dep.Spec.Template.Labels),
			"a spread constraint without a selector gets the pods' own")
		require.Equal(t, "system-cluster-critical", pod.PriorityClassName)
		require.Equal(t, []corev1.LocalObjectReference{{Name: "ghcr"}}, pod.ImagePullSecrets)
		require.Contains(t, pod.Containers[0].Args, "--v=1")
		require.Contains(t, pod.Containers[0].Args, "--log-format=text")
		require.Equal(t, "platform", dep.Labels["cost-center"])
		pdb := typed[policyv1.PodDisruptionBudget](t, r.one(t, "PodDisruptionBudget", "guard-webhook"))
		require.Equal(t, intstr.FromInt32(2), *pdb.Spec.MinAvailable)
		require.Nil(t, pdb.Spec.MaxUnavailable)
		checkers := typed[appsv1.Deployment](t, r.one(t, "Deployment", "guard-checker"))
		require.EqualValues(t, 3, *checkers.Spec.Replicas)
		spread := checkers.Spec.Template.Spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution
		require.Len(t, spread, 1)
		require.True(t, selects(spread[0].LabelSelector.MatchLabels, checkers.Spec.Template.Labels))
		require.Equal(t, intstr.FromInt32(2), *typed[policyv1.PodDisruptionBudget](t, r.one(t, "PodDisruptionBudget", "guard-checker")).Spec.MaxUnavailable)
		require.Equal(t, "guard-checker", renderedConfig(t, r).Check.LeaderElection.LeaseName)

		r = render(t, "extra-config.yaml")
		checker := typed[appsv1.Deployment](t, r.one(t, "Deployment", "meshguard-checker"))
		c := checker.Spec.Template.Spec.Containers[0]
		requireMount(t, checker.Spec.Template.Spec, c, "/var/run/secrets/alertmanager", "alertmanager-token")
	})
}

func requireRestrictedPod(t *testing.T, pod corev1.PodSpec) {
	t.Helper()
	psc := pod.SecurityContext
	require.NotNil(t, psc)
	require.True(t, *psc.RunAsNonRoot)
	require.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, psc.SeccompProfile.Type)
	require.False(t, pod.HostNetwork)
	require.NotNil(t, pod.AutomountServiceAccountToken)
	for _, c := range slices.Concat(pod.InitContainers, pod.Containers) {
		sc := c.SecurityContext
		require.NotNil(t, sc, c.Name)
		require.True(t, *sc.RunAsNonRoot, c.Name)
		require.True(t, *sc.ReadOnlyRootFilesystem, c.Name)
		require.False(t, *sc.AllowPrivilegeEscalation, c.Name)
		require.False(t, *sc.Privileged, c.Name)
		require.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop, c.Name)
		require.Empty(t, sc.Capabilities.Add, c.Name)
		require.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, sc.SeccompProfile.Type, c.Name)
		require.False(t, c.Resources.Requests.Cpu().IsZero(), "%s: CPU request", c.Name)
		require.False(t, c.Resources.Requests.Memory().IsZero(), "%s: memory request", c.Name)
		require.False(t, c.Resources.Limits.Memory().IsZero(), "%s: memory limit", c.Name)
		require.NotNil(t, c.LivenessProbe, c.Name)
		require.NotNil(t, c.ReadinessProbe, c.Name)
	}
}

// TestRBAC checks that each component may only get, list and watch what it reads.
func TestRBAC(t *testing.T) {
	want := map[string]map[string][]string{ // component → API group → resources
		"webhook": {
			"networking.istio.io": {"destinationrules", "virtualservices"},
			"security.istio.io":   {"authorizationpolicies", "peerauthentications"},
			"telemetry.istio.io":  {"telemetries"},
			"":                    {"namespaces", "services"},
			// istiod's validating webhook, to know where its checks are left to it.
			"admissionregistration.k8s.io": {"validatingwebhookconfigurations"},
		},
		"checker": {
			"apps":                {"controllerrevisions", "daemonsets", "deployments", "replicasets", "statefulsets"},
			"networking.istio.io": {"destinationrules", "virtualservices"},
			"security.istio.io":   {"peerauthentications"},
			"":                    {"namespaces", "pods"},
		},
	}
	for _, set := range optionSets {
		t.Run(set.name, func(t *testing.T) {
			r := render(t, set.file)
			requireLeaseRole(t, r)
			for _, u := range r.all("ClusterRole") {
				role := typed[rbacv1.ClusterRole](t, u)
				require.Empty(t, role.AggregationRule)
				got := map[string][]string{}
				for _, rule := range role.Rules {
					require.Equal(t, []string{"get", "list", "watch"}, rule.Verbs, "%s: verbs", role.Name)
					require.Empty(t, rule.ResourceNames)
					require.Empty(t, rule.NonResourceURLs)
					for _, g := range rule.APIGroups {
						for _, res := range rule.Resources {
							require.NotContains(t, res, "*")
							got[g] = append(got[g], res)
						}
					}
				}
				for g := range got {
					sort.Strings(got[g])
				}
				component := role.Labels["app.kubernetes.io/component"]
				require.Contains(t, want, component, "ClusterRole %s of an unknown component", role.Name)
				require.Equal(t, want[component], got, "%s: resources", role.Name)
			}

			// Every ClusterRole is bound to the ServiceAccount of exactly the Deployment that needs it.
			roles := map[string]bool{}
			for _, u := range r.all("ClusterRole") {
				roles[u.GetName()] = true
			}
			saOfDeployment := map[string]string{}
			for _, u := range r.all("Deployment") {
				dep := typed[appsv1.Deployment](t, u)
				saOfDeployment[dep.Name] = dep.Spec.Template.Spec.ServiceAccountName
			}
			require.Len(t, r.all("ClusterRoleBinding"), len(roles))
			for _, u := range r.all("ClusterRoleBinding") {
				b := typed[rbacv1.ClusterRoleBinding](t, u)
				require.True(t, roles[b.RoleRef.Name], "binding %s refers to a role the chart does not render", b.Name)
				require.Len(t, b.Subjects, 1)
				require.Equal(t, "ServiceAccount", b.Subjects[0].Kind)
				require.Equal(t, releaseNamespace, b.Subjects[0].Namespace)
				require.Equal(t, saOfDeployment[b.RoleRef.Name], b.Subjects[0].Name, "%s is bound to its Deployment's ServiceAccount", b.RoleRef.Name)
				r.one(t, "ServiceAccount", b.Subjects[0].Name)
			}
		})
	}

	t.Run("turning the checker off removes every checker object", func(t *testing.T) {
		r := render(t, "checker-disabled.yaml")
		for _, u := range r.objs {
			require.NotEqual(t, "checker", u.GetLabels()["app.kubernetes.io/component"], "%s %s", u.GetKind(), u.GetName())
		}
		require.Len(t, r.all("Deployment"), 1)
	})
}

// requireLeaseRole checks the only namespaced RBAC: the checker's Lease, in the release
// namespace, when it elects a leader.
func requireLeaseRole(t *testing.T, r rendered) {
	t.Helper()
	var checker *appsv1.Deployment
	for _, u := range r.all("Deployment") {
		if u.GetLabels()["app.kubernetes.io/component"] == "checker" {
			d := typed[appsv1.Deployment](t, u)
			checker = &d
		}
	}
	if checker == nil || !renderedConfig(t, r).Check.LeaderElection.Enabled {
		require.Empty(t, r.all("Role"))
		require.Empty(t, r.all("RoleBinding"))
		return
	}
	lease := renderedConfig(t, r).Check.LeaderElection.LeaseName
	require.Len(t, r.all("Role"), 1)
	role := typed[rbacv1.Role](t, r.all("Role")[0])
	require.Equal(t, releaseNamespace, role.Namespace)
	require.Equal(t, []rbacv1.PolicyRule{
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"create"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, ResourceNames: []string{lease}, Verbs: []string{"get", "update"}},
	}, role.Rules)
	require.Len(t, r.all("RoleBinding"), 1)
	b := typed[rbacv1.RoleBinding](t, r.all("RoleBinding")[0])
	require.Equal(t, releaseNamespace, b.Namespace)
	require.Equal(t, rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name}, b.RoleRef)
	require.Equal(t, []rbacv1.Subject{{Kind: "ServiceAccount", Name: checker.Spec.Template.Spec.ServiceAccountName, Namespace: releaseNamespace}}, b.Subjects)
}

// TestConfig parses the rendered config.yaml exactly as meshguard does and builds the rule
// engine `meshguard serve` builds from it.
func TestConfig(t *testing.T) {
	t.Run("the chart's defaults are meshguard's own apart from the Prometheus URL", func(t *testing.T) {
		got := renderedConfig(t, render(t, "default.yaml"))
		want := config.Default()
		want.Check.Prometheus.URL = "http://prometheus.istio-system.svc:9090"
		want.Check.LeaderElection.Enabled, want.Check.LeaderElection.LeaseNamespace = true, releaseNamespace
		require.Equal(t, want, got)
	})

	t.Run("config values are merged over the defaults", func(t *testing.T) {
		got := renderedConfig(t, render(t, "extra-config.yaml"))
		require.Equal(t, config.EnforceWarn, got.Webhook.Enforcement)
		require.Equal(t, "allow", got.Webhook.FailurePolicy, "untouched defaults stay")
		require.Equal(t, 8*time.Second, got.Webhook.Timeout.Duration)
		require.Equal(t, config.EnforceWarn, got.EnforcementFor("MG301"))
		require.Equal(t, config.EnforceWarn, got.EnforcementFor("MG101"))
		require.EqualValues(t, 5, got.Rules["MG101"].Params["maxRetryAttempts"])
		require.False(t, *got.Rules["MG203"].Enabled)
		require.Equal(t, "error", got.Rules["MG102"].Severity)
		require.Equal(t, "http://kube-prometheus-stack-prometheus.monitoring.svc:9090", got.Check.Prometheus.URL)
		require.Equal(t, []config.Endpoint{{URL: "http://alertmanager-operated.monitoring.svc:9093",
			BearerTokenFile: "/var/run/secrets/alertmanager/token"}}, got.Check.Alertmanagers)
		require.Equal(t, 0.1, got.Check.Thresholds.RetryRatio)
		require.Equal(t, 0.01, got.Check.Thresholds.UpstreamTimeoutRatio, "sibling defaults stay")
		require.Equal(t, map[string]string{"cluster": "prod-eu-1"}, got.Check.ExtraLabels)
		require.Equal(t, 5*time.Minute, got.Check.Window.Duration)
	})

	t.Run("an explicit evaluation timeout wins over the derived one", func(t *testing.T) {
		got := renderedConfig(t, renderValues(t, releaseName, releaseNamespace, "config:\n  webhook:\n    timeout: 4s\nwebhook:\n  timeoutSeconds: 20\n"))
		require.Equal(t, 4*time.Second, got.Webhook.Timeout.Duration)
		got = renderedConfig(t, renderValues(t, releaseName, releaseNamespace, "webhook:\n  timeoutSeconds: 20\n"))
		require.Equal(t, 18*time.Second, got.Webhook.Timeout.Duration)
		got = renderedConfig(t, renderValues(t, releaseName, releaseNamespace, "webhook:\n  timeoutSeconds: 1\n"))
		require.Equal(t, time.Second, got.Webhook.Timeout.Duration, "never zero")
	})

	t.Run("clusterDomain sets the meshDomain and the certificate's SANs", func(t *testing.T) {
		r := renderValues(t, releaseName, releaseNamespace, "clusterDomain: corp.example\n")
		require.Equal(t, "corp.example", renderedConfig(t, r).MeshDomain)
		secret := typed[corev1.Secret](t, r.one(t, "Secret", "meshguard-webhook-tls"))
		require.Contains(t, parseCert(t, secret.Data["tls.crt"]).DNSNames, "meshguard-webhook.meshguard.svc.corp.example")
	})

	for _, set := range optionSets {
		t.Run("the rule engine compiles with "+set.name, func(t *testing.T) {
			cfg := renderedConfig(t, render(t, set.file))
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err := policies.Engine(ctx, cfg, nil, nil)
			require.NoError(t, err)
		})
	}

	t.Run("an unknown rule parameter is refused by the engine the webhook builds", func(t *testing.T) {
		cfg := renderedConfig(t, renderValues(t, releaseName, releaseNamespace, "config:\n  rules:\n    MG101:\n      params:\n        maxRetryAttempt: 5\n"))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := policies.Engine(ctx, cfg, nil, nil)
		require.Error(t, err, "the schema cannot know rule parameters; the webhook refuses them at start")
	})
}

// renderedConfig parses the ConfigMap's config.yaml with config.Parse over config.Default(), as
// `meshguard serve --config` and `meshguard check --config` do.
func renderedConfig(t *testing.T, r rendered) *config.Config {
	t.Helper()
	var cms []*unstructured.Unstructured
	for _, u := range r.all("ConfigMap") {
		if !strings.HasSuffix(u.GetName(), "-dashboard") { // the Grafana dashboard's, grafanaDashboard.enabled
			cms = append(cms, u)
		}
	}
	require.Len(t, cms, 1)
	cm := typed[corev1.ConfigMap](t, cms[0])
	require.Len(t, cm.Data, 1)
	data, ok := cm.Data["config.yaml"]
	require.True(t, ok, "the ConfigMap must hold config.yaml")
	cfg := config.Default()
	require.NoError(t, config.Parse([]byte(data), cfg), "config.yaml:\n%s", data)
	return cfg
}

// TestMonitoring checks the ServiceMonitors and the PrometheusRule, the latter with promtool.
func TestMonitoring(t *testing.T) {
	t.Run("ServiceMonitors, the PrometheusRule and NetworkPolicies are off by default", func(t *testing.T) {
		r := render(t, "default.yaml")
		require.Empty(t, r.all("ServiceMonitor"))
		require.Empty(t, r.all("PrometheusRule"))
		require.Empty(t, r.all("NetworkPolicy"))
	})

	t.Run("each ServiceMonitor selects exactly its component's metrics Service", func(t *testing.T) {
		cases := []struct {
			name     string
			r        rendered
			monitors int
		}{
			{"with both components", render(t, "service-monitor.yaml"), 2},
			{"without the checker", renderValues(t, releaseName, releaseNamespace, "checker:\n  enabled: false\nserviceMonitor:\n  enabled: true\n"), 1},
		}
		for _, tc := range cases {
			monitors := tc.r.all("ServiceMonitor")
			require.Len(t, monitors, tc.monitors, tc.name)
			for _, sm := range monitors {
				selector := nestedStringMap(t, sm, "spec", "selector", "matchLabels")
				var matched []corev1.Service
				for _, u := range tc.r.all("Service") {
					if svc := typed[corev1.Service](t, u); selects(selector, svc.Labels) {
						matched = append(matched, svc)
					}
				}
				require.Len(t, matched, 1, "%s: %s selects one Service", tc.name, sm.GetName())
				endpoints := nested[[]any](t, sm, "spec", "endpoints")
				require.Len(t, endpoints, 1)
				require.Equal(t, "http-metrics", endpoints[0].(map[string]any)["port"])
				require.Equal(t, "http-metrics", matched[0].Spec.Ports[0].Name)
				require.Equal(t, []any{releaseNamespace}, nested[[]any](t, sm, "spec", "namespaceSelector", "matchNames"))
			}
		}
		sm := render(t, "service-monitor.yaml").one(t, "ServiceMonitor", "meshguard-webhook")
		require.Equal(t, "kube-prometheus-stack", sm.GetLabels()["release"])
		endpoint := nested[[]any](t, sm, "spec", "endpoints")[0].(map[string]any)
		require.Equal(t, "15s", endpoint["interval"])
		require.Len(t, endpoint["metricRelabelings"], 1)
	})

	t.Run("the PrometheusRule passes promtool and its alerts fire on meshguard's own metrics", func(t *testing.T) {
		promtool, err := toolPath("PROMTOOL_BIN", "promtool")
		require.NoError(t, err)
		r := render(t, "prometheus-rule.yaml")
		rule := r.one(t, "PrometheusRule", releaseName)
		require.Equal(t, "kube-prometheus-stack", rule.GetLabels()["release"])
		groups := nested[[]any](t, rule, "spec", "groups")
		var alerts []string
		for _, g := range groups {
			for _, rr := range g.(map[string]any)["rules"].([]any) {
				m := rr.(map[string]any)
				alerts = append(alerts, m["alert"].(string))
				if m["alert"] != "MeshguardWebhookSlow" {
					require.Equal(t, "platform", m["labels"].(map[string]any)["team"], "alertLabels on %s", m["alert"])
				}
			}
		}
		require.ElementsMatch(t, []string{
			"MeshguardWebhookDown", "MeshguardWebhookErrorRate", "MeshguardWebhookEvaluationErrors", "MeshguardWebhookPanics",
			"MeshguardWebhookConfigReloadFailing", "MeshguardCheckerDown", "MeshguardCheckerDegraded",
			"MeshguardCheckerAlertmanagerSendErrors", "MeshguardCheckerAlertsDropped", "MeshguardWebhookSlow", "MeshguardCheckerNoLeader",
		}, alerts)

		dir := t.TempDir()
		rulesYAML, err := yaml.Marshal(map[string]any{"groups": groups})
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "rules.yaml"), rulesYAML, 0o644))
		out, err := runTool(t, promtool, "check", "rules", filepath.Join(dir, "rules.yaml"))
		require.NoError(t, err, out)

		// promtool's rule unit tests: series as the ServiceMonitors would scrape them.
		tests, err := os.ReadFile(filepath.Join("testdata", "prometheusrule_test.yaml"))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "rules_test.yaml"), tests, 0o644))
		out, err = runTool(t, promtool, "test", "rules", filepath.Join(dir, "rules_test.yaml"))
		require.NoError(t, err, out)
	})

	t.Run("without ServiceMonitors the rule leaves out the alerts that need their job label", func(t *testing.T) {
		r := renderValues(t, releaseName, releaseNamespace, "prometheusRule:\n  enabled: true\nchecker:\n  enabled: false\n")
		var alerts []string
		for _, g := range nested[[]any](t, r.one(t, "PrometheusRule", releaseName), "spec", "groups") {
			for _, rr := range g.(map[string]any)["rules"].([]any) {
				m := rr.(map[string]any)
				alerts = append(alerts, m["alert"].(string))
				require.Contains(t, m["expr"], `namespace="meshguard"`)
				require.NotContains(t, m["expr"], "job=")
			}
		}
		require.ElementsMatch(t, []string{"MeshguardWebhookErrorRate", "MeshguardWebhookEvaluationErrors",
			"MeshguardWebhookPanics", "MeshguardWebhookConfigReloadFailing"}, alerts)
	})
}

// TestNetworkPolicy checks that the policies select the pods and open the ports they serve.
func TestNetworkPolicy(t *testing.T) {
	r := render(t, "network-policy.yaml")
	policies := r.all("NetworkPolicy")
	require.Len(t, policies, 2)
	for _, u := range policies {
		np := typed[networkingv1.NetworkPolicy](t, u)
		t.Run(np.Name+" opens exactly the ports its pods serve", func(t *testing.T) {
			var dep *appsv1.Deployment
			for _, d := range r.all("Deployment") {
				d := typed[appsv1.Deployment](t, d)
				if selects(np.Spec.PodSelector.MatchLabels, d.Spec.Template.Labels) {
					require.Nil(t, dep, "one Deployment per policy")
					dep = &d
				}
			}
			require.NotNil(t, dep, "the policy selects no pods")
			c := dep.Spec.Template.Spec.Containers[0]
			var opened []int32
			for _, rule := range np.Spec.Ingress {
				for _, p := range rule.Ports {
					opened = append(opened, containerPort(t, c, *p.Port))
				}
			}
			var served []int32
			for _, p := range c.Ports {
				served = append(served, p.ContainerPort)
			}
			require.ElementsMatch(t, served, opened)
			require.Equal(t, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}, np.Spec.PolicyTypes)
			require.NotEmpty(t, np.Spec.Egress)
			require.Equal(t, "10.0.0.0/8", np.Spec.Egress[len(np.Spec.Egress)-1].To[0].IPBlock.CIDR, "extraRules come last")
		})
	}
}

// TestValuesSchema checks that the schema refuses bad values and covers every value.
func TestValuesSchema(t *testing.T) {
	bad := []struct {
		name   string
		values string
		want   string // in helm's error output
	}{
		{"webhook replicas written as a word", "webhook:\n  replicas: two\n", "/webhook/replicas"},
		{"zero webhook replicas", "webhook:\n  replicas: 0\n", "/webhook/replicas"},
		{"an unknown failure policy", "webhook:\n  failurePolicy: Maybe\n", "/webhook/failurePolicy"},
		{"a timeout above the API server's limit of 30 seconds", "webhook:\n  timeoutSeconds: 31\n", "/webhook/timeoutSeconds"},
		{"a webhook name with too few segments", "webhook:\n  name: meshguard.io\n", "/webhook/name"},
		{"an unknown anti-affinity preset", "webhook:\n  podAntiAffinity: sometimes\n", "/webhook/podAntiAffinity"},
		{"a misspelt top-level value", "webhok:\n  replicas: 2\n", "webhok"},
		{"a misspelt nested value", "checker:\n  enable: false\n", "enable"},
		{"an image digest that is a tag", "image:\n  digest: latest\n", "/image/digest"},
		{"an unknown enforcement in config", "config:\n  webhook:\n    enforcement: block\n", "/config/webhook/enforcement"},
		{"a config key meshguard does not know", "config:\n  webhook:\n    timeoutSeconds: 5\n", "timeoutSeconds"},
		{"a config duration that is not a duration", "config:\n  check:\n    interval: 30\n", "/config/check/interval"},
		{"an unknown rule severity in config", "config:\n  rules:\n    MG101:\n      severity: fatal\n", "/config/rules/MG101/severity"},
		{"a ServiceMonitor interval Prometheus cannot parse", "serviceMonitor:\n  interval: 30 seconds\n", "/serviceMonitor/interval"},
		{"an error ratio above one", "prometheusRule:\n  webhookErrorRatio: 5\n", "/prometheusRule/webhookErrorRatio"},
		{"a PodDisruptionBudget given as a fraction", "webhook:\n  podDisruptionBudget:\n    maxUnavailable: 0.5\n", "/webhook/podDisruptionBudget/maxUnavailable"},
	}
	for _, tc := range bad {
		t.Run("helm template refuses "+tc.name, func(t *testing.T) {
			out, err := runHelm(t, "template", releaseName, chartDir, "--namespace", releaseNamespace, "-f", writeValues(t, tc.values))
			require.Error(t, err, "rendered although the values are invalid:\n%s", tc.values)
			require.Contains(t, out, "values don't meet the specifications of the schema")
			require.Contains(t, out, tc.want)
		})
	}

	schema := loadSchema(t)
	t.Run("the config schema has exactly the fields of meshguard's Config type", func(t *testing.T) {
		requireSchemaMatchesType(t, "config", schema, schema.prop(t, "config"), reflect.TypeFor[config.Config]())
	})

	t.Run("every value in values.yaml is in the schema and in the README's values table", func(t *testing.T) {
		var values map[string]any
		data, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
		require.NoError(t, err)
		require.NoError(t, yaml.Unmarshal(data, &values))
		var documented []string
		walkValues(t, schema, "", values, schema.root, &documented)

		readme, err := os.ReadFile(filepath.Join(chartDir, "README.md"))
		require.NoError(t, err)
		tableKeys := func(heading string) map[string]bool {
			_, body, found := strings.Cut(string(readme), "\n## "+heading+"\n")
			require.True(t, found, "README.md has no section %q", heading)
			body, _, _ = strings.Cut(body, "\n## ")
			keys := map[string]bool{}
			for _, m := range regexp.MustCompile("(?m)^\\| `([^`]+)` \\|").FindAllStringSubmatch(body, -1) {
				keys[m[1]] = true
			}
			return keys
		}
		rows, configRows := tableKeys("Values"), tableKeys("Policy configuration")
		for _, path := range documented {
			require.True(t, rows[path], "README.md's values table has no row for %s", path)
			delete(rows, path)
		}
		require.Empty(t, rows, "README.md documents values that values.yaml does not have")

		// The config table: one row per key of the config schema.
		var keys []string
		schemaLeaves(t, schema, "config", schema.prop(t, "config"), &keys)
		for _, key := range keys {
			require.True(t, configRows[key], "README.md's config table has no row for %s", key)
			delete(configRows, key)
		}
		require.Empty(t, configRows, "README.md documents config keys the schema does not have")
	})
}

// schemaLeaves collects the paths of the keys a schema node describes; the entries of a map of
// structured values (config.rules) are written <ID>.
func schemaLeaves(t *testing.T, s schemaDoc, path string, node map[string]any, leaves *[]string) {
	t.Helper()
	node = s.resolve(t, node)
	if props, ok := node["properties"].(map[string]any); ok {
		for k, child := range props {
			schemaLeaves(t, s, path+"."+k, child.(map[string]any), leaves)
		}
		return
	}
	if additional, ok := node["additionalProperties"].(map[string]any); ok {
		if additional = s.resolve(t, additional); additional["properties"] != nil {
			schemaLeaves(t, s, path+".<ID>", additional, leaves)
			return
		}
	}
	*leaves = append(*leaves, path)
}

// schemaDoc is values.schema.json with $ref resolution.
type schemaDoc struct {
	root map[string]any
}

func loadSchema(t *testing.T) schemaDoc {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	require.NoError(t, err)
	var root map[string]any
	require.NoError(t, json.Unmarshal(data, &root))
	return schemaDoc{root: root}
}

// resolve follows a local $ref.
func (s schemaDoc) resolve(t *testing.T, node map[string]any) map[string]any {
	t.Helper()
	for {
		ref, ok := node["$ref"].(string)
		if !ok {
			return node
		}
		name, ok := strings.CutPrefix(ref, "#/definitions/")
		require.True(t, ok, "unsupported $ref %s", ref)
		node, ok = s.root["definitions"].(map[string]any)[name].(map[string]any)
		require.True(t, ok, "undefined $ref %s", ref)
	}
}

func (s schemaDoc) prop(t *testing.T, name string) map[string]any {
	t.Helper()
	p, ok := s.root["properties"].(map[string]any)[name].(map[string]any)
	require.True(t, ok, "schema has no property %s", name)
	return p
}

// walkValues checks that the schema describes every key of values and collects the paths a
// reader configures as a whole: scalars, lists, and maps the schema leaves free-form.
func walkValues(t *testing.T, s schemaDoc, path string, value any, node map[string]any, leaves *[]string) {
	t.Helper()
	described := node["description"] != nil // beside a $ref, or in the definition it refers to
	node = s.resolve(t, node)
	require.True(t, described || node["description"] != nil, "%s: the schema must describe it", path)
	props, structured := node["properties"].(map[string]any)
	m, isMap := value.(map[string]any)
	if !isMap || !structured || len(m) == 0 {
		*leaves = append(*leaves, path)
		return
	}
	require.Equal(t, false, node["additionalProperties"], "%s: a structured value must refuse unknown keys", path)
	for k, v := range m {
		child, ok := props[k].(map[string]any)
		require.True(t, ok, "values.yaml has %s.%s, the schema does not", path, k)
		walkValues(t, s, strings.TrimPrefix(path+"."+k, "."), v, child, leaves)
	}
}

// requireSchemaMatchesType checks that a schema node accepts the fields of a Go type exactly,
// following its json tags, so config.yaml keys the chart accepts are the keys meshguard reads.
func requireSchemaMatchesType(t *testing.T, path string, s schemaDoc, node map[string]any, typ reflect.Type) {
	t.Helper()
	node = s.resolve(t, node)
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	if typ == reflect.TypeFor[config.Duration]() {
		require.Equal(t, "string", node["type"], "%s is a duration string", path)
		require.NotEmpty(t, node["pattern"], "%s must be checked as a duration", path)
		return
	}
	switch typ.Kind() {
	case reflect.Struct:
		require.Equal(t, "object", node["type"], path)
		require.Equal(t, false, node["additionalProperties"], "%s must refuse unknown keys, as config.Parse does", path)
		props := node["properties"].(map[string]any)
		var fields []string
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			fields = append(fields, name)
			child, ok := props[name].(map[string]any)
			require.True(t, ok, "%s.%s is in %s but not in the schema", path, name, typ)
			requireSchemaMatchesType(t, path+"."+name, s, child, f.Type)
		}
		var keys []string
		for k := range props {
			keys = append(keys, k)
		}
		require.ElementsMatch(t, fields, keys, "%s: schema properties against %s's fields", path, typ)
	case reflect.Map:
		require.Equal(t, "object", node["type"], path)
		if typ.Elem().Kind() == reflect.Interface {
			return
		}
		additional, ok := node["additionalProperties"].(map[string]any)
		require.True(t, ok, "%s: a map needs an additionalProperties schema", path)
		requireSchemaMatchesType(t, path+".*", s, additional, typ.Elem())
	case reflect.Slice:
		require.Equal(t, "array", node["type"], path)
		requireSchemaMatchesType(t, path+"[]", s, node["items"].(map[string]any), typ.Elem())
	case reflect.String:
		require.Equal(t, "string", node["type"], path)
	case reflect.Bool:
		require.Equal(t, "boolean", node["type"], path)
	case reflect.Int, reflect.Int32, reflect.Int64:
		require.Equal(t, "integer", node["type"], path)
	case reflect.Float64:
		require.Equal(t, "number", node["type"], path)
	default:
		t.Fatalf("%s: no schema check for %s", path, typ)
	}
}

// TestKubeAPIServerAcceptsChart runs the rendered objects of every option set through a real
// kube-apiserver (server-side dry-run with strict field validation, so an unknown or misplaced
// field fails), then installs and upgrades the chart for real with helm.
func TestKubeAPIServerAcceptsChart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kube-apiserver and etcd")
	}
	cp := harness.StartControlPlane(t)

	// The Certificate, Issuer, ServiceMonitor and PrometheusRule CRDs, copied from cert-manager and
	// the Prometheus Operator (the Issuer schema trimmed to the issuer types the chart uses).
	ctx, cancel := context.WithTimeout(context.Background(), kubeTimeout)
	defer cancel()
	_, _, err := cp.Kubectl(ctx, nil, "apply", "--server-side", "-f", filepath.Join("testdata", "crds"))
	require.NoError(t, err)
	_, _, err = cp.Kubectl(ctx, nil, "wait", "--for=condition=Established", "--timeout=60s",
		"crd/certificates.cert-manager.io", "crd/issuers.cert-manager.io",
		"crd/servicemonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com")
	require.NoError(t, err)
	cp.CreateNamespace(t, releaseNamespace, nil)

	for _, set := range optionSets {
		t.Run("the API server accepts every object when "+set.name, func(t *testing.T) {
			r := render(t, set.file)
			ctx, cancel := context.WithTimeout(context.Background(), kubeTimeout)
			defer cancel()
			stdout, _, err := cp.Kubectl(ctx, bytes.NewReader(r.raw), "apply", "--dry-run=server", "--validate=strict", "-o", "name", "-f", "-")
			require.NoError(t, err)
			var want []string
			for _, u := range r.objs {
				want = append(want, strings.ToLower(u.GetKind())+"/"+u.GetName())
			}
			var got []string
			for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
				kind, name, _ := strings.Cut(line, "/") // e.g. deployment.apps/meshguard-webhook
				kind, _, _ = strings.Cut(kind, ".")
				got = append(got, kind+"/"+name)
			}
			require.ElementsMatch(t, want, got, "every rendered object must be accepted")
		})
	}

	t.Run("helm install and upgrade keep the generated certificate and its caBundle in step", func(t *testing.T) {
		const ns = "meshguard-live"
		kube := cp.Kube()
		out, err := runHelm(t, "install", releaseName, chartDir, "--namespace", ns, "--create-namespace",
			"--kubeconfig", cp.KubeconfigPath())
		require.NoError(t, err, out)
		require.Contains(t, out, "STATUS: deployed")
		require.Contains(t, out, `Admission webhook "validate.meshguard.io" (2 replicas, failurePolicy Fail, enforcement deny)`, "NOTES")
		require.Contains(t, out, "2 replicas check; the one holding the Lease meshguard-checker sends", "NOTES")

		ctx, cancel := context.WithTimeout(context.Background(), kubeTimeout)
		defer cancel()
		secret, err := kube.CoreV1().Secrets(ns).Get(ctx, "meshguard-webhook-tls", metav1.GetOptions{})
		require.NoError(t, err)
		vwc, err := kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, releaseName, metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, secret.Data["ca.crt"], vwc.Webhooks[0].ClientConfig.CABundle)
		require.Equal(t, []string{"kube-system", ns}, vwc.Webhooks[0].NamespaceSelector.MatchExpressions[0].Values)
		verifyServingCert(t, secret.Data, "meshguard-webhook", ns)

		out, err = runHelm(t, "upgrade", releaseName, chartDir, "--namespace", ns, "--kubeconfig", cp.KubeconfigPath(),
			"--set", "webhook.replicas=3")
		require.NoError(t, err, out)
		upgraded, err := kube.CoreV1().Secrets(ns).Get(ctx, "meshguard-webhook-tls", metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, secret.Data, upgraded.Data, "an upgrade must not replace the certificate the pods serve")
		vwc, err = kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, releaseName, metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, secret.Data["ca.crt"], vwc.Webhooks[0].ClientConfig.CABundle, "an upgrade must keep the caBundle")
		dep, err := kube.AppsV1().Deployments(ns).Get(ctx, "meshguard-webhook", metav1.GetOptions{})
		require.NoError(t, err)
		require.EqualValues(t, 3, *dep.Spec.Replicas)

		out, err = runHelm(t, "uninstall", releaseName, "--namespace", ns, "--kubeconfig", cp.KubeconfigPath())
		require.NoError(t, err, out)
		_, err = kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, releaseName, metav1.GetOptions{})
		require.True(t, apierrors.IsNotFound(err), "uninstall must remove the cluster-scoped webhook configuration: %v", err)
		roles, err := kube.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + releaseName})
		require.NoError(t, err)
		require.Empty(t, roles.Items)
	})
}

// rendered is the output of one `helm template`.
type rendered struct {
	raw  []byte
	objs []*unstructured.Unstructured
}

func (r rendered) all(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range r.objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// one returns the only object of kind named name (any name when name is empty).
func (r rendered) one(t *testing.T, kind, name string) *unstructured.Unstructured {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, o := range r.all(kind) {
		if name == "" || o.GetName() == name {
			found = append(found, o)
		}
	}
	require.Len(t, found, 1, "%s %q in the rendered chart", kind, name)
	return found[0]
}

func render(t *testing.T, file string) rendered {
	t.Helper()
	return renderWith(t, releaseName, releaseNamespace, file)
}

func renderValues(t *testing.T, release, namespace, values string) rendered {
	t.Helper()
	return renderFile(t, release, namespace, writeValues(t, values))
}

// renderCache holds the renders of the testdata values files: helm runs take most of these tests'
// time, and the output of one set of values is read by several tests (none modifies it).
var renderCache = struct {
	sync.Mutex
	m map[string]rendered
}{m: map[string]rendered{}}

func renderWith(t *testing.T, release, namespace, file string) rendered {
	t.Helper()
	key := release + "/" + namespace + "/" + file
	renderCache.Lock()
	defer renderCache.Unlock()
	r, ok := renderCache.m[key]
	if !ok {
		r = renderFile(t, release, namespace, valuesFile(file))
		renderCache.m[key] = r
	}
	return r
}

func renderFile(t *testing.T, release, namespace, valuesPath string) rendered {
	t.Helper()
	var stdout bytes.Buffer
	out, err := runHelmTo(t, &stdout, "template", release, chartDir, "--namespace", namespace, "-f", valuesPath)
	require.NoError(t, err, out)
	objs, err := harness.DecodeManifest(stdout.Bytes())
	require.NoError(t, err)
	require.NotEmpty(t, objs)
	for _, o := range objs {
		require.NotEmpty(t, o.GetName(), "%s without a name", o.GetKind())
		require.NotEmpty(t, o.GetLabels()["app.kubernetes.io/instance"], "%s %s: standard labels", o.GetKind(), o.GetName())
	}
	return rendered{raw: stdout.Bytes(), objs: objs}
}

// typed converts a rendered object to its API type, failing on fields the type does not have.
func typed[T any](t *testing.T, u *unstructured.Unstructured) T {
	t.Helper()
	var out T
	require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, &out, true),
		"%s %s", u.GetKind(), u.GetName())
	return out
}

func nested[T any](t *testing.T, u *unstructured.Unstructured, fields ...string) T {
	t.Helper()
	v, found, err := unstructured.NestedFieldNoCopy(u.Object, fields...)
	require.NoError(t, err)
	require.True(t, found, "%s %s has no %s", u.GetKind(), u.GetName(), strings.Join(fields, "."))
	out, ok := v.(T)
	require.True(t, ok, "%s %s: %s is %T", u.GetKind(), u.GetName(), strings.Join(fields, "."), v)
	return out
}

func nestedStringMap(t *testing.T, u *unstructured.Unstructured, fields ...string) map[string]string {
	t.Helper()
	m, found, err := unstructured.NestedStringMap(u.Object, fields...)
	require.NoError(t, err)
	require.True(t, found, "%s %s has no %s", u.GetKind(), u.GetName(), strings.Join(fields, "."))
	return m
}

// selects reports whether a non-empty label selector matches labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// containerPort resolves a port reference (number or name) against a container's ports.
func containerPort(t *testing.T, c corev1.Container, port intstr.IntOrString) int32 {
	t.Helper()
	if port.Type == intstr.Int {
		return port.IntVal
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s has no port named %s", c.Name, port.StrVal)
	return 0
}

// volumeSecret returns the Secret behind the pod's volume name.
func volumeSecret(t *testing.T, pod corev1.PodSpec, volume string) string {
	t.Helper()
	for _, v := range pod.Volumes {
		if v.Name == volume {
			require.NotNil(t, v.Secret, "volume %s is not a Secret", volume)
			return v.Secret.SecretName
		}
	}
	t.Fatalf("pod has no volume %s", volume)
	return ""
}

// requireMount checks that the container mounts, read-only at path, the volume backed by source
// (a Secret or ConfigMap name).
func requireMount(t *testing.T, pod corev1.PodSpec, c corev1.Container, path, source string) {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.MountPath != path {
			continue
		}
		require.True(t, m.ReadOnly, "%s must be mounted read-only", path)
		require.Empty(t, m.SubPath, "%s: a subPath mount never sees updates", path)
		for _, v := range pod.Volumes {
			if v.Name != m.Name {
				continue
			}
			switch {
			case v.Secret != nil:
				require.Equal(t, source, v.Secret.SecretName)
			case v.ConfigMap != nil:
				require.Equal(t, source, v.ConfigMap.Name)
			default:
				t.Fatalf("volume %s is neither a Secret nor a ConfigMap", v.Name)
			}
			return
		}
		t.Fatalf("mount %s refers to no volume", path)
	}
	t.Fatalf("container %s mounts nothing at %s", c.Name, path)
}

func valuesFile(name string) string {
	return filepath.Join("testdata", "values", name)
}

func writeValues(t *testing.T, values string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "values.yaml")
	require.NoError(t, os.WriteFile(path, []byte(values), 0o644))
	return path
}

// runHelm runs helm and returns its combined output.
func runHelm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	combined, err := runHelmTo(t, &out, args...)
	return out.String() + combined, err
}

// runHelmTo runs helm with stdout into w and returns stderr.
func runHelmTo(t *testing.T, w io.Writer, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), helmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, helmBin, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(helmHome, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(helmHome, "config"),
		"HELM_DATA_HOME="+filepath.Join(helmHome, "data"),
		"KUBECONFIG="+filepath.Join(helmHome, "no-kubeconfig"), // only --kubeconfig reaches a cluster
	)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = w, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("helm %s: %w (%w)", strings.Join(args, " "), err, ctx.Err())
	}
	return stderr.String(), err
}

func runTool(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}

// toolPath finds a binary the way the Makefile does: the environment variable, else
// `test/tools/install.sh path NAME`.
func toolPath(envVar, name string) (string, error) {
	path := os.Getenv(envVar)
	if path == "" {
		ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, "bash", filepath.Join(moduleRoot, "test", "tools", "install.sh"), "path", name).Output()
		if err != nil {
			return "", fmt.Errorf("asking test/tools/install.sh for the %s path: %w", name, err)
		}
		path = strings.TrimSpace(string(out))
	}
	info, err := os.Stat(path)
	if err != nil || info.IsDir() || info.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("%s not found or not executable at %s: run `make tools` (test/tools/install.sh %s), or set %s",
			name, path, name, envVar)
	}
	return path, nil
}

func findModuleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("no go.mod in %s or any parent", wd)
		}
	}
}

// TestChartWebhookDeniesThroughTheCluster uses the rendered ValidatingWebhookConfiguration for
// real: its caBundle, its Service reference and rules, the generated certificate from the
// chart's Secret, the config from its ConfigMap and the serve arguments of its Deployment. The
// API server calls `meshguard serve` through the chart's Service (routed to loopback, see
// harness.RouteService) and a bad VirtualService is denied.
func TestChartWebhookDeniesThroughTheCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kube-apiserver, etcd and meshguard serve")
	}
	bin := harness.MeshguardBinary(t)
	cp := harness.StartControlPlane(t)
	chart := harness.RenderChart(t, releaseName, releaseNamespace)
	wh := cp.InstallChartWebhook(t, bin, chart)
	require.FileExists(t, filepath.Join(wh.CertDir, "tls.crt"))
	require.FileExists(t, wh.ConfigPath)
	cp.CreateNamespace(t, "shop", nil)

	apply := func(t *testing.T, manifest string) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), kubeTimeout)
		defer cancel()
		stdout, stderr, err := cp.Kubectl(ctx, strings.NewReader(manifest), "apply", "-f", "-")
		return stdout + stderr, err
	}
	vs := func(attempts int) string {
		return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: checkout, namespace: shop}
spec:
  hosts: [checkout]
  http:
  - route: [{destination: {host: checkout}}]
    timeout: 10s
    retries: {attempts: %d, perTryTimeout: 2s}
`, attempts)
	}

	t.Run("a VirtualService retrying 10 times is denied by the chart's webhook with the rule and field", func(t *testing.T) {
		out, err := apply(t, vs(10))
		require.Error(t, err, out)
		require.Contains(t, out, `admission webhook "validate.meshguard.io" denied the request`)
		require.Contains(t, out, "MG101")
		require.Contains(t, out, "spec.http[0].retries.attempts")
		require.Greater(t, webhookRequests(t, wh), 0.0, "the denial must come from the chart's server")
	})

	t.Run("the same VirtualService within the retry budget is created", func(t *testing.T) {
		out, err := apply(t, vs(2))
		require.NoError(t, err, out)
		require.Contains(t, out, "virtualservice.networking.istio.io/checkout created")
	})

	t.Run("the release namespace is left out by the namespaceSelector", func(t *testing.T) {
		out, err := apply(t, strings.ReplaceAll(vs(10), "namespace: shop", "namespace: "+releaseNamespace))
		require.NoError(t, err, out)
	})
}

// webhookRequests sums meshguard serve's admission request counter from its /metrics.
func webhookRequests(t *testing.T, wh *harness.ChartWebhook) float64 {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", wh.MetricsPort))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "meshguard_webhook_requests_total{") {
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			require.NoError(t, err, line)
			sum += v
		}
	}
	return sum
}
