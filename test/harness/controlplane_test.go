package harness

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	securityv1beta1 "istio.io/api/security/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

const (
	cpTestWebhookName = "validate.meshguard.io"
	cpTestDenyLabel   = "meshguard.io/deny"
	cpTestDenyMessage = "denied by the harness test webhook"
)

func TestControlPlane(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kube-apiserver and etcd")
	}
	cp := StartControlPlane(t)
	t.Logf("control plane startup took %s", cp.StartupDuration().Round(time.Millisecond))

	const plainNS = "mesh-plain"
	cp.CreateNamespace(t, plainNS, map[string]string{"meshguard.io/test": "plain"})

	t.Run("kubectl apply and read back through the Istio clientset", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		stdout, stderr, err := cp.Kubectl(ctx, strings.NewReader(`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: mesh-plain
spec:
  hosts:
  - reviews.mesh-plain.svc.cluster.local
  http:
  - name: canary
    match:
    - headers:
        end-user:
          exact: jason
    route:
    - destination:
        host: reviews
        subset: v2
      weight: 100
    timeout: 5s
  - route:
    - destination:
        host: reviews
        subset: v1
        port:
          number: 9080
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: reviews-strict
  namespace: mesh-plain
spec:
  selector:
    matchLabels:
      app: reviews
  mtls:
    mode: STRICT
  portLevelMtls:
    "9080":
      mode: PERMISSIVE
`), "apply", "-f", "-")
		require.NoError(t, err)
		t.Logf("kubectl stderr: %q", stderr)
		assert.Contains(t, stdout, "virtualservice.networking.istio.io/reviews created")
		assert.Contains(t, stdout, "peerauthentication.security.istio.io/reviews-strict created")

		vs, err := cp.Istio().NetworkingV1().VirtualServices(plainNS).Get(ctx, "reviews", metav1.GetOptions{})
		require.NoError(t, err)
		spec := &vs.Spec
		assert.Equal(t, []string{"reviews.mesh-plain.svc.cluster.local"}, spec.GetHosts())
		require.Len(t, spec.GetHttp(), 2)
		canary := spec.GetHttp()[0]
		assert.Equal(t, "canary", canary.GetName())
		require.Len(t, canary.GetMatch(), 1)
		assert.Equal(t, "jason", canary.GetMatch()[0].GetHeaders()["end-user"].GetExact())
		require.Len(t, canary.GetRoute(), 1)
		assert.Equal(t, "reviews", canary.GetRoute()[0].GetDestination().GetHost())
		assert.Equal(t, "v2", canary.GetRoute()[0].GetDestination().GetSubset())
		assert.EqualValues(t, 100, canary.GetRoute()[0].GetWeight())
		assert.Equal(t, 5*time.Second, canary.GetTimeout().AsDuration())
		require.Len(t, spec.GetHttp()[1].GetRoute(), 1)
		assert.EqualValues(t, 9080, spec.GetHttp()[1].GetRoute()[0].GetDestination().GetPort().GetNumber())

		pa, err := cp.Istio().SecurityV1().PeerAuthentications(plainNS).Get(ctx, "reviews-strict", metav1.GetOptions{})
		require.NoError(t, err)
		paSpec := &pa.Spec
		assert.Equal(t, securityv1beta1.PeerAuthentication_MutualTLS_STRICT, paSpec.GetMtls().GetMode())
		assert.Equal(t, map[string]string{"app": "reviews"}, paSpec.GetSelector().GetMatchLabels())
		require.Contains(t, paSpec.GetPortLevelMtls(), uint32(9080))
		assert.Equal(t, securityv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE, paSpec.GetPortLevelMtls()[9080].GetMode())
	})

	t.Run("CRD schema rejects an invalid enum", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, stderr, err := cp.Kubectl(ctx, strings.NewReader(`
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: bad-mode
  namespace: mesh-plain
spec:
  mtls:
    mode: BLAH
`), "apply", "-f", "-")
		require.Error(t, err, "kubectl must fail on a schema violation")
		t.Logf("kubectl stderr: %s", strings.TrimSpace(stderr))
		assert.Contains(t, stderr, "spec.mtls.mode")
		assert.Contains(t, stderr, `Unsupported value: "BLAH"`)
		_, err = cp.Istio().SecurityV1().PeerAuthentications(plainNS).Get(ctx, "bad-mode", metav1.GetOptions{})
		assert.True(t, apierrors.IsNotFound(err), "rejected object must not exist, got %v", err)
	})

	// A loopback webhook server that denies every object labelled meshguard.io/deny=true and
	// records what it was asked, to check the registered rules and namespace selector.
	certDir := t.TempDir()
	caPEM := GenerateServingCert(t, certDir)
	hook := cpStartTestWebhook(t, certDir)

	const guardedNS = "mesh-guarded"
	cp.CreateNamespace(t, guardedNS, map[string]string{"meshguard.io/guarded": "true"})
	cp.RegisterValidatingWebhook(t, WebhookOptions{
		Name:              cpTestWebhookName,
		URL:               hook.url,
		CABundle:          caPEM,
		TimeoutSeconds:    5,
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"meshguard.io/guarded": "true"}},
	})
	// Server-side dry-run of an object the webhook must deny: reaches the webhook (sideEffects
	// None) without leaving anything behind.
	deniedProbe := func(ctx context.Context) error {
		vs := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{
			Name: "probe", Namespace: guardedNS, Labels: map[string]string{cpTestDenyLabel: "true"},
		}}
		vs.Spec.Hosts = []string{"probe"}
		_, err := cp.Istio().NetworkingV1().VirtualServices(guardedNS).Create(ctx, vs, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil {
			return errors.New("dry-run create was allowed: webhook not called yet")
		}
		if !strings.Contains(err.Error(), cpTestDenyMessage) {
			return fmt.Errorf("dry-run create failed without the webhook's denial: %w", err)
		}
		return nil
	}
	waitStart := time.Now()
	require.NoError(t, cp.WaitForWebhook(context.Background(), deniedProbe))
	t.Logf("webhook effective %s after registration", time.Since(waitStart).Round(time.Millisecond))

	t.Run("validating webhook covers the Istio kinds and versions", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		denied := []struct{ apiVersion, kind, spec string }{
			{"networking.istio.io/v1", "VirtualService", "hosts: [a]"},
			{"networking.istio.io/v1beta1", "VirtualService", "hosts: [a]"},
			{"networking.istio.io/v1alpha3", "DestinationRule", "host: a"},
			{"security.istio.io/v1beta1", "PeerAuthentication", "mtls: {mode: STRICT}"},
			{"telemetry.istio.io/v1alpha1", "Telemetry", "accessLogging: [{providers: [{name: envoy}]}]"},
		}
		for _, d := range denied {
			obj := fmt.Sprintf("apiVersion: %s\nkind: %s\nmetadata:\n  name: denied\n  namespace: %s\n  labels: {%q: \"true\"}\nspec: {%s}\n",
				d.apiVersion, d.kind, guardedNS, cpTestDenyLabel, d.spec)
			_, stderr, err := cp.Kubectl(ctx, strings.NewReader(obj), "apply", "-f", "-")
			if assert.Error(t, err, "%s %s must be denied", d.apiVersion, d.kind) {
				assert.Contains(t, stderr, "Error from server (Forbidden)")
				assert.Contains(t, stderr, fmt.Sprintf("admission webhook %q denied the request: %s", cpTestWebhookName, cpTestDenyMessage))
			}
		}

		// The same object in a namespace outside the selector never reaches the webhook.
		outside := fmt.Sprintf("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: not-guarded\n  namespace: %s\n  labels: {%q: \"true\"}\nspec: {hosts: [a]}\n",
			plainNS, cpTestDenyLabel)
		_, _, err := cp.Kubectl(ctx, strings.NewReader(outside), "apply", "-f", "-")
		require.NoError(t, err)

		// Allowed objects go through, and UPDATE and DELETE reach the webhook too.
		allowed := fmt.Sprintf("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: allowed\n  namespace: %s\nspec: {hosts: [%%s]}\n", guardedNS)
		_, _, err = cp.Kubectl(ctx, strings.NewReader(fmt.Sprintf(allowed, "a")), "apply", "-f", "-")
		require.NoError(t, err)
		_, _, err = cp.Kubectl(ctx, strings.NewReader(fmt.Sprintf(allowed, "b")), "apply", "-f", "-")
		require.NoError(t, err)
		_, _, err = cp.Kubectl(ctx, nil, "delete", "virtualservice", "allowed", "-n", guardedNS, "--wait=false")
		require.NoError(t, err)

		seen := hook.requests()
		for _, want := range []string{
			"CREATE networking.istio.io/v1/virtualservices mesh-guarded/denied",
			"CREATE networking.istio.io/v1beta1/virtualservices mesh-guarded/denied",
			"CREATE networking.istio.io/v1alpha3/destinationrules mesh-guarded/denied",
			"CREATE security.istio.io/v1beta1/peerauthentications mesh-guarded/denied",
			"CREATE telemetry.istio.io/v1alpha1/telemetries mesh-guarded/denied",
			"CREATE networking.istio.io/v1/virtualservices mesh-guarded/allowed",
			"UPDATE networking.istio.io/v1/virtualservices mesh-guarded/allowed",
			"DELETE networking.istio.io/v1/virtualservices mesh-guarded/allowed",
		} {
			assert.Contains(t, seen, want)
		}
		for _, s := range seen {
			assert.NotContains(t, s, plainNS+"/", "namespace selector must keep %s away from the webhook", plainNS)
		}
	})

	t.Run("serving certificate rotation keeps the CA", func(t *testing.T) {
		before := cpServedSerial(t, hook.addr, caPEM)
		rotatedCA := RotateServingCert(t, certDir)
		assert.Equal(t, caPEM, rotatedCA, "rotation must keep the CA")
		after := cpServedSerial(t, hook.addr, caPEM)
		assert.NotEqual(t, before, after, "server must serve the rotated certificate")
		// The server keeps no connections alive, so this call verifies the new leaf.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, deniedProbe(ctx))
	})

	t.Run("CA rotation needs a new caBundle", func(t *testing.T) {
		newCA := GenerateServingCert(t, certDir)
		require.NotEqual(t, caPEM, newCA)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := deniedProbe(ctx)
		require.Error(t, err, "the API server must not trust a certificate from an unknown CA")
		assert.Contains(t, err.Error(), "failed calling webhook")
		t.Logf("with the stale caBundle: %v", err)

		cp.SetWebhookCABundle(t, cpTestWebhookName, newCA)
		waitStart := time.Now()
		require.NoError(t, cp.WaitForWebhook(ctx, deniedProbe))
		t.Logf("new caBundle effective after %s", time.Since(waitStart).Round(time.Millisecond))
	})

	t.Run("stop is idempotent", func(t *testing.T) {
		hook.stop(t) // webhook server first, as a real test must
		require.NoError(t, cp.Stop())
		require.NoError(t, cp.Stop())
		assert.True(t, cp.Stopped())
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := cp.Kube().CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
		assert.Error(t, err, "the API server must be gone")
	})
}

func TestControlPlaneServingCertFiles(t *testing.T) {
	dir := t.TempDir()
	caPEM := GenerateServingCert(t, dir, "127.0.0.1", "webhook.local")
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(caPEM))
	for _, name := range []string{"127.0.0.1", "webhook.local"} {
		_, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		assert.NoError(t, err, "certificate must be valid for %s", name)
	}
	_, err = leaf.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: pool})
	assert.Error(t, err, "explicit hosts replace the defaults")

	assert.Equal(t, caPEM, RotateServingCert(t, dir, "127.0.0.1"))
	rotated, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	require.NoError(t, err)
	assert.NotEqual(t, pair.Certificate[0], rotated.Certificate[0])
}

// cpTestWebhook is the loopback admission webhook TestControlPlane registers.
type cpTestWebhook struct {
	addr, url string
	srv       *http.Server
	served    chan error
	stopOnce  sync.Once

	mu   sync.Mutex
	seen []string // "OPERATION group/version/resource namespace/name"
}

func cpStartTestWebhook(t *testing.T, certDir string) *cpTestWebhook {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	h := &cpTestWebhook{addr: ln.Addr().String(), served: make(chan error, 1)}
	h.url = "https://" + h.addr + "/validate"
	mux := http.NewServeMux()
	mux.HandleFunc("/validate", h.validate)
	h.srv = &http.Server{
		Handler: mux,
		// Handshake failures are expected in the CA rotation test; keep them in the test log.
		ErrorLog:          log.New(cpTestLogWriter{t}, "test webhook server: ", 0),
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			// Read the files on every handshake so rotations apply at once, without a watcher.
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				pair, err := tls.LoadX509KeyPair(filepath.Join(certDir, "tls.crt"), filepath.Join(certDir, "tls.key"))
				if err != nil {
					return nil, fmt.Errorf("loading serving certificate: %w", err)
				}
				return &pair, nil
			},
		},
	}
	// Every admission call gets a new TLS handshake, so certificate tests see the current files.
	h.srv.SetKeepAlivesEnabled(false)
	go func() { h.served <- h.srv.ServeTLS(ln, "", "") }()
	// Registered after StartControlPlane's cleanup, so it runs first: server before plane.
	t.Cleanup(func() { h.stop(t) })
	return h
}

// cpTestLogWriter sends a logger's lines to t.Log. The server it serves is shut down in
// t.Cleanup, before the test completes, so it never logs to a finished test.
type cpTestLogWriter struct{ t testing.TB }

func (w cpTestLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (h *cpTestWebhook) stop(t testing.TB) {
	h.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.srv.Shutdown(ctx); err != nil {
			t.Errorf("stopping test webhook: %v", err)
		}
		if err := <-h.served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("test webhook server: %v", err)
		}
	})
}

func (h *cpTestWebhook) requests() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.seen...)
}

func (h *cpTestWebhook) validate(w http.ResponseWriter, r *http.Request) {
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&review); err != nil || review.Request == nil {
		http.Error(w, fmt.Sprintf("bad AdmissionReview: %v", err), http.StatusBadRequest)
		return
	}
	req := review.Request
	h.mu.Lock()
	h.seen = append(h.seen, fmt.Sprintf("%s %s/%s/%s %s/%s", req.Operation, req.Resource.Group, req.Resource.Version,
		req.Resource.Resource, req.Namespace, req.Name))
	h.mu.Unlock()

	resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	if cpDenyLabelSet(req.Object) {
		resp.Allowed = false
		// Code and reason as controller-runtime's admission.Denied sets them: without a reason
		// kubectl prints "Error from server:" instead of "Error from server (Forbidden):".
		resp.Result = &metav1.Status{Message: cpTestDenyMessage, Code: http.StatusForbidden, Reason: metav1.StatusReasonForbidden}
	}
	out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(out); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

func cpDenyLabelSet(obj runtime.RawExtension) bool {
	if len(obj.Raw) == 0 { // DELETE carries only oldObject
		return false
	}
	var meta struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	return json.Unmarshal(obj.Raw, &meta) == nil && meta.Metadata.Labels[cpTestDenyLabel] == "true"
}

// cpServedSerial returns the serial of the certificate the server at addr presents, verified
// against caPEM.
func cpServedSerial(t *testing.T, addr string, caPEM []byte) string {
	t.Helper()
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(caPEM))
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.String()
}
