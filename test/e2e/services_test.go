package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/meshguard/meshguard/test/harness"
)

// A workload policy for the pods Istio's convention guesses (app: ledger) that accepts plaintext,
// applied before the mesh-wide STRICT one: the informer delivers one kind's events in order, so
// once the mesh-wide policy is seen, this one is too.
const svcLedgerPlaintext = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: ledger-plaintext
  namespace: store
  annotations: {exceptions.meshguard.io/MG301: "reason=old ledger pods; expires=2099-01-01"}
spec:
  selector: {matchLabels: {app: ledger}}
  mtls: {mode: DISABLE}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: api-http
  namespace: store
  annotations: {exceptions.meshguard.io/MG302: "reason=health checks without a sidecar; expires=2099-01-01"}
spec:
  selector: {matchLabels: {app: api}}
  portLevelMtls: {"8080": {mode: DISABLE}}
`

func svcPlaintextDR(name, host, tls string) string {
	return fmt.Sprintf("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: %s, namespace: store}\nspec: {host: %s, trafficPolicy: %s}\n", name, host, tls)
}

// TestServicesDecideTheWorkloadsBehindAHost runs the real `meshguard serve` and `meshguard audit`
// against a real kube-apiserver: a Service created in the cluster tells which pods are behind a
// host, and so whether a plaintext DestinationRule for it is refused (MG501).
func TestServicesDecideTheWorkloadsBehindAHost(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts kube-apiserver, etcd and meshguard serve")
	}
	cp, srv := whRegistered(t, whDenyConfig)
	bin := meshguardBinary(t) // built once per test binary; audit runs it too
	for _, ns := range []string{"istio-system", "store"} {
		cp.CreateNamespace(t, ns, nil)
	}
	kubectl := func(ctx context.Context, manifest string, args ...string) (string, error) {
		_, stderr, err := cp.Kubectl(ctx, strings.NewReader(manifest), args...)
		return stderr, err
	}
	apply := func(t *testing.T, manifest string, flags ...string) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), whKubectlTimeout)
		defer cancel()
		return kubectl(ctx, manifest, append([]string{"apply", "-f", "-"}, flags...)...)
	}
	// deniedUntil is a server-side dry run that the webhook must come to deny with want.
	deniedUntil := func(manifest string, want ...string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			stderr, err := kubectl(ctx, manifest, "apply", "--dry-run=server", "-f", "-")
			if err == nil {
				return errors.New("admitted")
			}
			for _, w := range want {
				if !strings.Contains(stderr, w) {
					return fmt.Errorf("denied without %q: %s", w, stderr)
				}
			}
			return nil
		}
	}

	stderr, err := apply(t, svcLedgerPlaintext)
	require.NoError(t, err, stderr)
	stderr, err = apply(t, whMeshStrictPA)
	require.NoError(t, err, stderr)
	// A host without a Service nor a policy of its own: once this is denied, both policies are
	// in the webhook's inventory.
	require.NoError(t, cp.WaitForWebhook(context.Background(), deniedUntil(svcPlaintextDR("probe", "web", "{tls: {mode: DISABLE}}"),
		"MG501 spec.trafficPolicy.tls.mode: ", "pods labelled app=web (Istio's convention; no Service store/web is known)")))

	t.Run("a Service whose selector is not app: ledger makes a plaintext DestinationRule for ledger a denial (MG501)", func(t *testing.T) {
		dr := svcPlaintextDR("ledger-plain", "ledger", "{tls: {mode: DISABLE}}")
		stderr, err := apply(t, dr)
		require.NoError(t, err, "by the convention the pods are app: ledger, whose policy accepts plaintext: %s", stderr)
		require.NotContains(t, stderr, "MG501")

		stderr, err = apply(t, "apiVersion: v1\nkind: Service\nmetadata: {name: ledger, namespace: store}\nspec:\n  selector: {app: ledger-v2}\n  ports: [{name: http, port: 80, targetPort: 8080}]\n")
		require.NoError(t, err, stderr)
		// The same rule under another name: an unchanged apply would not reach the webhook.
		require.NoError(t, cp.WaitForWebhook(context.Background(), deniedUntil(svcPlaintextDR("ledger-plain-2", "ledger", "{tls: {mode: DISABLE}}"),
			"MG501 spec.trafficPolicy.tls.mode: ", "pods selected by Service store/ledger require mutual TLS (mesh policy istio-system/default)")))
		require.GreaterOrEqual(t, srv.metric(t, "meshguard_webhook_inventory_objects", `kind="Service"`), 1.0)

		// audit lists the cluster's Services too, and finds the rule admitted before the Service.
		out, code := whRunAudit(t, bin, "--kubeconfig="+cp.KubeconfigPath(), "-n", "store", "-o", "json")
		require.Equal(t, 1, code, out)
		var rep struct {
			Findings []struct {
				Rule, Name, Message string
			} `json:"findings"`
			Summary struct {
				Objects int `json:"objects"`
			} `json:"summary"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
		var mg501 []string
		for _, f := range rep.Findings {
			if f.Rule == "MG501" {
				mg501 = append(mg501, f.Name+": "+f.Message)
			}
		}
		require.Equal(t, []string{"ledger-plain: tls.mode is DISABLE for ledger, but its pods selected by Service store/ledger require mutual TLS " +
			"(mesh policy istio-system/default): client sidecars' plaintext connections will be refused"}, mg501)
		require.Equal(t, 3, rep.Summary.Objects, "two PeerAuthentications and the DestinationRule; a Service is not a checked object")
	})

	t.Run("a Service whose port 80 targets the pods' plaintext port 8080 makes a port-level plaintext rule admissible", func(t *testing.T) {
		dr := svcPlaintextDR("api-http", "api", "{portLevelSettings: [{port: {number: 80}, tls: {mode: DISABLE}}]}")
		stderr, err := apply(t, dr, "--dry-run=server")
		require.Error(t, err, "without a Service, port 80 is the pods' port 80, which is STRICT")
		require.Contains(t, stderr, "MG501 spec.trafficPolicy.portLevelSettings[0].tls.mode: ")

		stderr, err = apply(t, "apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: store}\nspec:\n  selector: {app: api}\n  ports: [{name: http, port: 80, targetPort: 8080}]\n")
		require.NoError(t, err, stderr)
		require.NoError(t, cp.WaitForWebhook(context.Background(), func(ctx context.Context) error {
			stderr, err := kubectl(ctx, dr, "apply", "--dry-run=server", "-f", "-")
			if err != nil {
				return fmt.Errorf("still denied: %s", stderr)
			}
			return nil
		}))
	})

	t.Run("an audit that may not list Services says so and falls back to the app label convention", func(t *testing.T) {
		stderr, err := apply(t, svcIstioOnlyRole("istio-reader", "get, list"))
		require.NoError(t, err, stderr)
		readerKubeconfig := svcImpersonating(t, cp, "istio-reader")

		ctx, cancel := context.WithTimeout(context.Background(), whKubectlTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "audit", "--kubeconfig="+readerKubeconfig, "-n", "store", "-o", "json")
		var errOut strings.Builder
		cmd.Stderr = &errOut
		out, err := cmd.Output()
		require.NoError(t, err, "without Services the plaintext rule for ledger meets the convention's plaintext pods: %s%s", out, errOut.String())
		require.Contains(t, errOut.String(), "meshguard: may not list services")
		require.Contains(t, errOut.String(), "the workloads behind a host are those labelled app: <service> (Istio's convention)")
		require.NotContains(t, string(out), "MG501")
		var rep struct {
			Summary struct {
				Objects int `json:"objects"`
			} `json:"summary"`
		}
		require.NoError(t, json.Unmarshal(out, &rep), string(out))
		require.Equal(t, 3, rep.Summary.Objects, "the Istio objects are still read")
	})

	t.Run("a webhook that may not watch Services still becomes ready, and says what it falls back to", func(t *testing.T) {
		stderr, err := apply(t, svcIstioOnlyRole("istio-watcher", "get, list, watch"))
		require.NoError(t, err, stderr)
		limited := whStartServer(t, bin, svcImpersonating(t, cp, "istio-watcher"), whNewConfigMap(t, whDenyConfig))
		log, err := os.ReadFile(limited.proc.LogPath())
		require.NoError(t, err)
		require.Contains(t, string(log), "may not list and watch services: the workloads behind a host are those labelled app: <service> (Istio's convention)")
	})
}

// svcImpersonating writes a kubeconfig for the control plane that acts as user, whose rights
// are only what RBAC grants that user.
func svcImpersonating(t *testing.T, cp *harness.ControlPlane, user string) string {
	t.Helper()
	kc, err := clientcmd.LoadFromFile(cp.KubeconfigPath())
	require.NoError(t, err)
	for _, u := range kc.AuthInfos {
		u.Impersonate = user
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, clientcmd.WriteToFile(*kc, path))
	return path
}

// svcIstioOnlyRole grants user name the verbs on the Istio kinds meshguard reads, and nothing on
// Services.
func svcIstioOnlyRole(name, verbs string) string {
	return fmt.Sprintf(`apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: %[1]s}
rules:
- apiGroups: [networking.istio.io, security.istio.io, telemetry.istio.io]
  resources: [virtualservices, destinationrules, peerauthentications, authorizationpolicies, telemetries]
  verbs: [%[2]s]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: %[1]s}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: %[1]s}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: %[1]s}]
`, name, verbs)
}
