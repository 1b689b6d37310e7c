package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"
	apinetworking "istio.io/api/networking/v1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshguard/meshguard/test/harness"
)

// The configuration the server starts with. failurePolicy here is meshguard's answer to its own
// evaluation faults; the API server's failurePolicy (Fail/Ignore) is the webhook configuration's.
const whDenyConfig = `webhook:
  enforcement: deny
  failurePolicy: deny
  timeout: 5s
`

const whMeshStrictPA = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
`

// whStormVS is denied by MG101 (attempts 10 > 3) under the default configuration.
func whStormVS(ns, name string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: %s, namespace: %s}
spec:
  hosts: [cart]
  http:
  - route: [{destination: {host: cart}}]
    timeout: 10s
    retries: {attempts: 10, perTryTimeout: 500ms}
`, name, ns)
}

// TestWebhook runs the real `meshguard serve` against a real kube-apiserver, registered through
// a ValidatingWebhookConfiguration, and drives it with kubectl and the Go client. The subtests
// share one control plane and one server, and run in order: later ones change the server's
// configuration, the webhook's failure policy and the certificate.
func TestWebhook(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts kube-apiserver, etcd and meshguard serve")
	}
	bin := meshguardBinary(t)
	cp := harness.StartControlPlane(t)
	cm := whNewConfigMap(t, whDenyConfig)
	srv := whStartServer(t, bin, cp.KubeconfigPath(), cm)
	cp.RegisterValidatingWebhook(t, harness.WebhookOptions{
		Name: whName, URL: srv.url, CABundle: srv.caPEM,
		FailurePolicy: admissionregistrationv1.Fail, TimeoutSeconds: 10,
	})
	for _, ns := range []string{"istio-system", "shop", "payments", "legacy", "dry", "audited"} {
		cp.CreateNamespace(t, ns, nil)
	}
	istio, warned := whIstioWithWarnings(t, cp.Config())

	// apply runs kubectl apply on a manifest; extra flags go after -f -.
	apply := func(t *testing.T, manifest string, flags ...string) (stderr string, err error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), whKubectlTimeout)
		defer cancel()
		_, stderr, err = cp.Kubectl(ctx, strings.NewReader(manifest), append([]string{"apply", "-f", "-"}, flags...)...)
		return stderr, err
	}
	requireDenied := func(t *testing.T, stderr string, err error, want ...string) {
		t.Helper()
		require.Error(t, err, "must be denied")
		require.Contains(t, stderr, fmt.Sprintf("admission webhook %q denied the request: ", whName))
		for _, w := range want {
			require.Contains(t, stderr, w)
		}
	}
	// deniedProbe is a server-side dry run of an object the webhook must deny with want.
	deniedProbe := func(want string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			_, stderr, err := cp.Kubectl(ctx, strings.NewReader(whStormVS("shop", "probe")), "apply", "--dry-run=server", "-f", "-")
			if err == nil {
				return errors.New("the probe was admitted")
			}
			if !strings.Contains(stderr, want) {
				return fmt.Errorf("the probe failed without %q: %s", want, stderr)
			}
			return nil
		}
	}
	began := time.Now()
	require.NoError(t, cp.WaitForWebhook(context.Background(), deniedProbe("MG101 spec.http[0].retries.attempts")))
	t.Logf("webhook effective %s after registration", time.Since(began).Round(time.Millisecond))

	t.Run("a STRICT PeerAuthentication makes a later plaintext DestinationRule in its namespace a denial (MG501)", func(t *testing.T) {
		// No mesh-wide policy yet, so only the namespace's own policy can make it STRICT.
		dr := `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ledger-plain, namespace: payments}
spec:
  host: ledger
  trafficPolicy: {tls: {mode: DISABLE}}
`
		stderr, err := apply(t, dr, "--dry-run=server")
		require.NoError(t, err, "without a STRICT policy the plaintext rule is only a warning: %s", stderr)
		require.Contains(t, stderr, "Warning: MG204 spec.trafficPolicy.tls.mode")
		require.NotContains(t, stderr, "MG501")

		stderr, err = apply(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: payments}\nspec: {mtls: {mode: STRICT}}\n")
		require.NoError(t, err, stderr)
		require.Contains(t, stderr, "Warning: MG504", "no mesh-wide STRICT policy yet: the webhook says so")

		// The informer delivers the new policy within milliseconds; allow for a busy machine.
		require.Eventually(t, func() bool {
			stderr, err := apply(t, dr, "--dry-run=server")
			return err != nil && strings.Contains(stderr, "MG501")
		}, whEffectTimeout, whPoll)
		stderr, err = apply(t, dr)
		requireDenied(t, stderr, err, "MG501 spec.trafficPolicy.tls.mode: ")
	})

	t.Run("the mesh-wide STRICT PeerAuthentication is admitted without warnings", func(t *testing.T) {
		stderr, err := apply(t, whMeshStrictPA)
		require.NoError(t, err, stderr)
		require.NotContains(t, stderr, "Warning:")
	})

	t.Run("a *.local DestinationRule in the root namespace gives a route's host outlier detection and a retry budget (MG502, MG503)", func(t *testing.T) {
		cp.CreateNamespace(t, "wild", nil)
		vs := `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cart, namespace: wild}
spec:
  hosts: [cart]
  http:
  - route: [{destination: {host: cart}}]
    retries: {attempts: 2, perTryTimeout: 1s}
    timeout: 5s
`
		stderr, err := apply(t, vs, "--dry-run=server")
		require.NoError(t, err, stderr)
		require.Contains(t, stderr, "Warning: MG502 spec.http[0].route[0].destination.host")
		require.Contains(t, stderr, "Warning: MG503 spec.http[0].route[0].destination.host")

		meshDefault := `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: mesh-default, namespace: istio-system}
spec:
  host: "*.local"
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}
    connectionPool: {http: {maxRetries: 10}}
`
		stderr, err = apply(t, meshDefault)
		require.NoError(t, err, stderr)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), whKubectlTimeout)
			defer cancel()
			_, _, _ = cp.Kubectl(ctx, nil, "delete", "destinationrule", "mesh-default", "-n", "istio-system", "--wait=false")
		})
		// The informer delivers the new rule within milliseconds; allow for a busy machine.
		require.Eventually(t, func() bool {
			stderr, err := apply(t, vs, "--dry-run=server")
			return err == nil && !strings.Contains(stderr, "MG502") && !strings.Contains(stderr, "MG503")
		}, whEffectTimeout, whPoll)
	})

	t.Run("a bad object of each kind is denied with the rule ID and field path in kubectl's error", func(t *testing.T) {
		tests := []struct {
			name, manifest, want string
		}{
			{"VirtualService retrying 10 times", whStormVS("shop", "storm"), "MG101 spec.http[0].retries.attempts: "},
			{"DestinationRule ejecting every host (v1alpha3)", `apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: eject-all, namespace: shop}
spec:
  host: cart
  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}}
`, "MG201 spec.trafficPolicy.outlierDetection.maxEjectionPercent: "},
			{"PeerAuthentication left PERMISSIVE (v1beta1)", `apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: default, namespace: legacy}
spec: {mtls: {mode: PERMISSIVE}}
`, "MG301 spec.mtls.mode: "},
			// (Sampling over 100%, MG401, never reaches the webhook: the CRD schema refuses it.)
			{"Telemetry with an access log filter that is not CEL (v1alpha1)", `apiVersion: telemetry.istio.io/v1alpha1
kind: Telemetry
metadata: {name: logs, namespace: shop}
spec:
  accessLogging: [{filter: {expression: "response.code >= "}}]
`, "MG403 spec.accessLogging[0].filter.expression: "},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				stderr, err := apply(t, tt.manifest)
				requireDenied(t, stderr, err, "Error from server (Forbidden)", tt.want)
			})
		}
		t.Run("and through the Go client too", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), whKubectlTimeout)
			defer cancel()
			vs := whVirtualService("shop", "storm-go", 10)
			_, err := istio.NetworkingV1().VirtualServices("shop").Create(ctx, vs, metav1.CreateOptions{})
			require.Error(t, err)
			require.True(t, apierrors.IsForbidden(err), "%v", err)
			require.Contains(t, err.Error(), "MG101 spec.http[0].retries.attempts")
		})
	})

	t.Run("a good object of each kind is created", func(t *testing.T) {
		for _, m := range []string{
			`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cart, namespace: shop}
spec:
  host: cart
  trafficPolicy:
    connectionPool: {http: {maxRetries: 64}}
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}
  subsets: [{name: v1, labels: {version: v1}}]
`,
			`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cart, namespace: shop}
spec:
  hosts: [cart]
  http:
  - route: [{destination: {host: cart, subset: v1}}]
    timeout: 3s
    retries: {attempts: 2, perTryTimeout: 1s, retryOn: "connect-failure,refused-stream"}
`,
			"apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: shop}\nspec: {mtls: {mode: STRICT}}\n",
			"apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: tracing, namespace: shop}\nspec:\n  tracing: [{randomSamplingPercentage: 1}]\n",
		} {
			stderr, err := apply(t, m)
			require.NoError(t, err, stderr)
			require.NotContains(t, stderr, "Warning:", "a clean object draws no warning")
		}
		ctx, cancel := context.WithTimeout(context.Background(), whKubectlTimeout)
		defer cancel()
		_, err := istio.NetworkingV1().VirtualServices("shop").Get(ctx, "cart", metav1.GetOptions{})
		require.NoError(t, err)
	})

	t.Run("a warning-only object is created and kubectl prints the warning", func(t *testing.T) {
		stderr, err := apply(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: no-timeout, namespace: shop}
spec:
  hosts: [cart]
  http:
  - route: [{destination: {host: cart, subset: v1}}]
    retries: {attempts: 2, perTryTimeout: 1s, retryOn: connect-failure}
`)
		require.NoError(t, err, stderr)
		require.Contains(t, stderr, "Warning: MG103 spec.http[0]")

		// The Go client sees the same warning header.
		warned.take()
		ctx, cancel := context.WithTimeout(context.Background(), whKubectlTimeout)
		defer cancel()
		vs := whVirtualService("shop", "no-timeout-go", 2)
		vs.Spec.Http[0].Timeout = nil
		_, err = istio.NetworkingV1().VirtualServices("shop").Create(ctx, vs, metav1.CreateOptions{})
		require.NoError(t, err)
		require.Contains(t, strings.Join(warned.take(), "\n"), "MG103 spec.http[0]")
	})

	t.Run("an object with a valid exception annotation is admitted and an expired one is denied (MG009)", func(t *testing.T) {
		pa := `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: legacy
  annotations:
    exceptions.meshguard.io/MG301: "reason=legacy clients until the migration; expires=%s"
spec: {mtls: {mode: PERMISSIVE}}
`
		stderr, err := apply(t, fmt.Sprintf(pa, "2020-01-31"))
		requireDenied(t, stderr, err, `MG009 metadata.annotations["exceptions.meshguard.io/MG301"]: `, "MG301 spec.mtls.mode")
		stderr, err = apply(t, fmt.Sprintf(pa, time.Now().AddDate(1, 0, 0).Format("2006-01-02")))
		require.NoError(t, err, stderr)
	})

	t.Run("--dry-run=server is reviewed the same way and persists nothing", func(t *testing.T) {
		stderr, err := apply(t, whStormVS("dry", "storm"), "--dry-run=server")
		requireDenied(t, stderr, err, "MG101 spec.http[0].retries.attempts: ")
		stdout, err := apply(t, "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: t, namespace: dry}\nspec: {tracing: [{randomSamplingPercentage: 1}]}\n", "--dry-run=server")
		require.NoError(t, err, stdout)
		ctx, cancel := context.WithTimeout(context.Background(), whKubectlTimeout)
		defer cancel()
		_, err = istio.TelemetryV1().Telemetries("dry").Get(ctx, "t", metav1.GetOptions{})
		require.True(t, apierrors.IsNotFound(err), "a dry run must store nothing: %v", err)
	})

	t.Run("an update that introduces a violation is denied and the stored object is unchanged", func(t *testing.T) {
		good := whStormVS("shop", "upd")
		good = strings.Replace(good, "attempts: 10", "attempts: 2", 1)
		good = strings.Replace(good, "host: cart}}", "host: cart, subset: v1}}", 1)
		stderr, err := apply(t, good)
		require.NoError(t, err, stderr)
		stderr, err = apply(t, strings.Replace(good, "attempts: 2", "attempts: 7", 1))
		requireDenied(t, stderr, err, "MG101 spec.http[0].retries.attempts: ")

		ctx, cancel := context.WithTimeout(context.Background(), whKubectlTimeout)
		defer cancel()
		vs, err := istio.NetworkingV1().VirtualServices("shop").Get(ctx, "upd", metav1.GetOptions{})
		require.NoError(t, err)
		require.EqualValues(t, 2, vs.Spec.Http[0].Retries.Attempts)
		vs.Spec.Http[0].Retries.Attempts = 9
		_, err = istio.NetworkingV1().VirtualServices("shop").Update(ctx, vs, metav1.UpdateOptions{})
		require.Error(t, err, "an update through the Go client is reviewed too")
		require.Contains(t, err.Error(), "MG101")
	})

	t.Run("deleting the mesh-wide STRICT PeerAuthentication is allowed with an MG504 warning", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), whKubectlTimeout)
		defer cancel()
		_, stderr, err := cp.Kubectl(ctx, nil, "delete", "peerauthentication", "default", "-n", "istio-system", "--wait=false")
		require.NoError(t, err, stderr)
		require.Contains(t, stderr, "Warning: MG504")
		stderr, err = apply(t, whMeshStrictPA)
		require.NoError(t, err, stderr)
	})

	t.Run("the metrics count requests, findings and latency", func(t *testing.T) {
		require.Positive(t, srv.metric(t, "meshguard_webhook_requests_total", `kind="VirtualService"`, `operation="CREATE"`, `result="denied"`))
		require.Positive(t, srv.metric(t, "meshguard_webhook_requests_total", `kind="PeerAuthentication"`, `operation="DELETE"`, `result="warned"`))
		require.Positive(t, srv.metric(t, "meshguard_webhook_findings_total", `rule="MG101"`, `severity="error"`))
		require.Positive(t, srv.metric(t, "meshguard_webhook_request_duration_seconds_count"))
		_, buckets := srv.series(t, "meshguard_webhook_request_duration_seconds_bucket", `le="0.0005"`)
		require.Positive(t, buckets, "the histogram starts at 0.5 ms")
		_, buckets = srv.series(t, "meshguard_webhook_request_duration_seconds_bucket", `le="10"`)
		require.Positive(t, buckets, "and ends at 10 s")
		require.Zero(t, srv.metric(t, "meshguard_webhook_evaluation_errors_total"))
		require.Positive(t, srv.metric(t, "meshguard_webhook_inventory_objects", `kind="VirtualService"`))
	})

	t.Run("a configuration change takes effect without a restart", func(t *testing.T) {
		pid := srv.proc.Pid()
		cm.update("webhook: {enforcement: warn, failurePolicy: deny, timeout: 5s}\n")
		require.Eventually(t, func() bool {
			stderr, err := apply(t, whStormVS("shop", "probe"), "--dry-run=server")
			return err == nil && strings.Contains(stderr, "Warning: MG101 spec.http[0].retries.attempts")
		}, whEffectTimeout, whPoll, "under warn the error becomes a warning")
		require.Equal(t, pid, srv.proc.Pid(), "no restart")

		cm.update("webhook: {enforcement: [not, a, mode]}\n")
		require.Eventually(t, func() bool { return srv.proc.LogContains("new configuration refused") }, whEffectTimeout, whPoll)
		stderr, err := apply(t, whStormVS("shop", "probe"), "--dry-run=server")
		require.NoError(t, err, "a bad configuration keeps the one in force (warn): %s", stderr)

		cm.update(whDenyConfig)
		require.NoError(t, cp.WaitForWebhook(context.Background(), deniedProbe("MG101")))
	})

	t.Run("objects admitted under audit enforcement are reported by meshguard audit", func(t *testing.T) {
		cm.update("webhook: {enforcement: audit}\n")
		require.Eventually(t, func() bool {
			_, err := apply(t, whStormVS("audited", "probe"), "--dry-run=server")
			return err == nil
		}, whEffectTimeout, whPoll)
		stderr, err := apply(t, whStormVS("audited", "storm"))
		require.NoError(t, err, stderr)
		require.NotContains(t, stderr, "Warning:", "audit only logs and counts")
		require.Eventually(t, func() bool { return srv.proc.LogContains(`"rules":["MG101"`) }, whEffectTimeout, whPoll,
			"the audited finding is logged")

		out, code := whRunAudit(t, bin, "--kubeconfig="+cp.KubeconfigPath(), "-n", "audited", "-o", "json")
		require.Equal(t, 1, code, out)
		var rep struct {
			Findings []struct {
				Rule, Namespace, Name, Path, File string
			} `json:"findings"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
		require.NotEmpty(t, rep.Findings)
		var found bool
		for _, f := range rep.Findings {
			require.Equal(t, "audited", f.Namespace, "-n narrows the report")
			if f.Rule == "MG101" && f.Name == "storm" {
				found = true
				require.Equal(t, "spec.http[0].retries.attempts", f.Path)
				require.Equal(t, "/apis/networking.istio.io/v1/namespaces/audited/virtualservices/storm", f.File)
			}
		}
		require.True(t, found, out)

		out, code = whRunAudit(t, bin, "--kubeconfig="+cp.KubeconfigPath(), "--fail-on=none")
		require.Equal(t, 0, code, out)
		require.Contains(t, out, "VirtualService audited/storm")
		require.Contains(t, out, "MG101")

		cm.update(whDenyConfig)
		require.NoError(t, cp.WaitForWebhook(context.Background(), deniedProbe("MG101")))
	})

	t.Run("a serving certificate rotation keeps the webhook serving", func(t *testing.T) {
		before := srv.servedSerial(t)
		harness.RotateServingCert(t, srv.certDir)
		require.Eventually(t, func() bool { return srv.servedSerial(t) != before }, whEffectTimeout, whPoll,
			"the new certificate is served without a restart")
		ctx, cancel := context.WithTimeout(context.Background(), whEffectTimeout)
		defer cancel()
		require.NoError(t, deniedProbe("MG101")(ctx))
	})

	t.Run("with the server killed, failurePolicy Fail refuses and Ignore admits", func(t *testing.T) {
		good := "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: while-down, namespace: payments}\nspec: {tracing: [{randomSamplingPercentage: 1}]}\n"
		pid := srv.proc.Pid()
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		select {
		case <-srv.proc.Exited():
		case <-time.After(whEffectTimeout):
			t.Fatal("the server survived SIGKILL")
		}

		stderr, err := apply(t, good)
		require.Error(t, err, "Fail: a webhook that cannot be called refuses the request")
		require.Contains(t, stderr, fmt.Sprintf("failed calling webhook %q", whName))

		whSetFailurePolicy(t, cp, admissionregistrationv1.Ignore)
		require.Eventually(t, func() bool { _, err := apply(t, good); return err == nil }, whEffectTimeout, whPoll,
			"Ignore: the request is admitted without the webhook")

		whSetFailurePolicy(t, cp, admissionregistrationv1.Fail)
		_ = srv.proc.Stop() // reaps the killed run; its error is the SIGKILL we sent
		require.NoError(t, srv.proc.Start())
		srv.waitReady(t)
		require.NoError(t, cp.WaitForWebhook(context.Background(), deniedProbe("MG101")))
	})
}

func whRunAudit(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), whKubectlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"audit"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return string(out) + stderr.String(), exitErr.ExitCode()
	}
	require.NoError(t, err, stderr.String())
	return string(out), 0
}

func whSetFailurePolicy(t *testing.T, cp *harness.ControlPlane, p admissionregistrationv1.FailurePolicyType) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), whKubectlTimeout)
	defer cancel()
	client := cp.Kube().AdmissionregistrationV1().ValidatingWebhookConfigurations()
	vwc, err := client.Get(ctx, whName, metav1.GetOptions{})
	require.NoError(t, err)
	for i := range vwc.Webhooks {
		vwc.Webhooks[i].FailurePolicy = &p
	}
	_, err = client.Update(ctx, vwc, metav1.UpdateOptions{})
	require.NoError(t, err)
}

// whVirtualService is a VirtualService for cart with a 3s timeout and attempts retries.
func whVirtualService(ns, name string, attempts int32) *networkingv1.VirtualService {
	return &networkingv1.VirtualService{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: apinetworking.VirtualService{
			Hosts: []string{"cart"},
			Http: []*apinetworking.HTTPRoute{{
				Route:   []*apinetworking.HTTPRouteDestination{{Destination: &apinetworking.Destination{Host: "cart", Subset: "v1"}}},
				Timeout: durationpb.New(3 * time.Second),
				Retries: &apinetworking.HTTPRetry{Attempts: attempts, PerTryTimeout: durationpb.New(time.Second), RetryOn: "connect-failure"},
			}},
		},
	}
}
