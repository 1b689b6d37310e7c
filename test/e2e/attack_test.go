package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// attackConfig is the chart's configuration of meshguard (failurePolicy allow for meshguard's
// own outages, webhook.timeout = timeoutSeconds - 2), with fewer review slots so that the test
// can fill them all with a handful of requests.
const attackConfig = `webhook:
  enforcement: deny
  failurePolicy: allow
  timeout: 8s
  maxConcurrentReviews: 4
`

// TestNoObjectAuthorGetsPastTheWebhook re-runs, through a real kube-apiserver with the chart's
// webhook registration (failurePolicy Fail, timeoutSeconds 10), each way an author with
// permission to create one Istio object once got a rule-breaking object stored unchecked.
// Every one must now be refused; the time each took is logged for the closing figures.
func TestNoObjectAuthorGetsPastTheWebhook(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts kube-apiserver, etcd and meshguard serve")
	}
	cp, srv := whRegistered(t, attackConfig)
	cp.CreateNamespace(t, "shop", nil)

	kubectl := func(t *testing.T, manifest string, args ...string) (string, time.Duration, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), whKubectlTimeout)
		defer cancel()
		began := time.Now()
		var in io.Reader
		if manifest != "" {
			in = strings.NewReader(manifest)
		}
		_, stderr, err := cp.Kubectl(ctx, in, args...)
		return stderr, time.Since(began), err
	}
	require.NoError(t, cp.WaitForWebhook(context.Background(), func(ctx context.Context) error {
		_, stderr, err := cp.Kubectl(ctx, strings.NewReader(whStormVS("shop", "probe")), "apply", "--dry-run=server", "-f", "-")
		if err == nil || !strings.Contains(stderr, "MG101") {
			return fmt.Errorf("not effective yet: %v %s", err, stderr)
		}
		return nil
	}))
	denied := func(t *testing.T, stderr string, err error, want ...string) {
		t.Helper()
		require.Error(t, err, "the object must be refused")
		require.Contains(t, stderr, fmt.Sprintf("admission webhook %q denied the request", whName))
		require.NotContains(t, stderr, "admitted it unchecked")
		for _, w := range want {
			require.Contains(t, stderr, w)
		}
	}

	t.Run("an object whose numbers overflow a rule's arithmetic is denied", func(t *testing.T) {
		stderr, took, err := kubectl(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: overflow, namespace: shop}
spec:
  hosts: [cart]
  http:
  - route: [{destination: {host: cart}}]
    timeout: 1s
    retries: {attempts: 2147483647, perTryTimeout: 100000000s}
`, "apply", "-f", "-")
		denied(t, stderr, err, "MG101 spec.http[0].retries.attempts")
		t.Logf("overflow: denied in %s", took.Round(time.Millisecond))
	})

	t.Run("a Telemetry of deeply nested CEL is denied at once", func(t *testing.T) {
		stderr, took, err := kubectl(t, deepCELTelemetry("deep", 12), "apply", "-f", "-")
		denied(t, stderr, err, "MG403 spec.accessLogging[0].filter.expression")
		t.Logf("nested CEL (12 expressions 245 deep): denied in %s", took.Round(time.Millisecond))
	})

	t.Run("a changed spec sent while the object is being deleted is reviewed", func(t *testing.T) {
		held := strings.Replace(whStormVS("shop", "held"), "retries: {attempts: 10", "retries: {attempts: 2", 1)
		held = strings.Replace(held, "metadata: {name: held, namespace: shop}", "metadata: {name: held, namespace: shop, finalizers: [example.com/hold]}", 1)
		stderr, _, err := kubectl(t, held, "apply", "-f", "-")
		require.NoError(t, err, stderr)
		stderr, _, err = kubectl(t, "", "delete", "virtualservice", "held", "-n", "shop", "--wait=false")
		require.NoError(t, err, stderr)

		storm := strings.Replace(whStormVS("shop", "held"), "metadata: {name: held, namespace: shop}", "metadata: {name: held, namespace: shop, finalizers: [example.com/hold]}", 1)
		stderr, took, err := kubectl(t, storm, "apply", "-f", "-")
		denied(t, stderr, err, "MG101 spec.http[0].retries.attempts")
		t.Logf("update of a deleted object with attempts 10: denied in %s", took.Round(time.Millisecond))

		// Removing the finalizer leaves the spec alone: allowed, and the deletion completes.
		stderr, _, err = kubectl(t, "", "patch", "virtualservice", "held", "-n", "shop", "--type=merge", "-p", `{"metadata":{"finalizers":null}}`)
		require.NoError(t, err, stderr)
	})

	t.Run("with every slot taken by costly objects, another bad object is still refused", func(t *testing.T) {
		// Eight requests for four slots, each as large as the API server takes; the retry
		// storm sent among them must be refused, by its findings or for lack of a slot.
		big := manyRoutesVS("big", 8000)
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, _ = kubectl(t, strings.Replace(big, "name: big", fmt.Sprintf("name: big%d", i), 1), "apply", "--dry-run=server", "-f", "-")
			}()
		}
		time.Sleep(200 * time.Millisecond)
		stderr, took, err := kubectl(t, whStormVS("shop", "storm-under-load"), "apply", "-f", "-")
		wg.Wait()
		require.Error(t, err, "the retry storm must be refused")
		require.NotContains(t, stderr, "admitted it unchecked")
		require.True(t, strings.Contains(stderr, "MG101") || strings.Contains(stderr, "too many reviews in flight"), stderr)
		t.Logf("retry storm among 8 large reviews on 4 slots: refused in %s: %s", took.Round(time.Millisecond), errorLine(stderr))
	})

	t.Run("four reviews of a million routes each stay within the chart's memory limit", func(t *testing.T) {
		// Sent straight to the webhook, as the API server would forward them: each just under
		// webhook.maxRequestBytes (3 MiB), a VirtualService with 1,000,000 empty routes.
		body := millionRoutesReview(t)
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certPool(t, srv.caPEM)}}, Timeout: 60 * time.Second}
		var wg sync.WaitGroup
		answers := make([]string, 4)
		began := time.Now()
		for i := range answers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := client.Post(srv.url, "application/json", bytes.NewReader(body))
				if err != nil {
					answers[i] = err.Error()
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
				answers[i] = string(b)
			}()
		}
		wg.Wait()
		took := time.Since(began)
		for _, a := range answers {
			require.NotContains(t, a, `"allowed":true`, "a review of a million routes must not be admitted: %.300s", a)
		}
		hwm := vmHWM(t, srv.proc.Pid())
		t.Logf("4 concurrent 3 MiB reviews of 1,000,000 routes: all refused in %s; serve's peak RSS (VmHWM) %d MiB: %.200s", took.Round(time.Millisecond), hwm>>20, answers[0])
		require.Less(t, hwm, int64(512<<20), "the chart's memory limit is 512Mi")
	})
}

// millionRoutesReview is an AdmissionReview of a VirtualService with 1,000,000 empty routes,
// just under 3 MiB.
func millionRoutesReview(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteString(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"big","kind":{"group":"networking.istio.io","version":"v1","kind":"VirtualService"},"resource":{"group":"networking.istio.io","version":"v1","resource":"virtualservices"},"name":"big","namespace":"shop","operation":"CREATE","userInfo":{"username":"attacker"},"object":{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"big","namespace":"shop"},"spec":{"hosts":["cart"],"http":[{}`)
	for range 999_999 {
		b.WriteString(`,{}`)
	}
	b.WriteString(`]}}}}`)
	require.Less(t, b.Len(), 3<<20)
	return b.Bytes()
}

func certPool(t *testing.T, caPEM []byte) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(caPEM))
	return pool
}

// vmHWM is a process's peak resident set size, from /proc.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			_, err := fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// errorLine is kubectl's error line, without the warnings printed before it.
func errorLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "Error from server") {
			return l
		}
	}
	return strings.TrimSpace(s)
}

// deepCELTelemetry is the attack Telemetry: n access-log filters, each a list literal nested 245
// deep (which once took 1.75 s and 136 MB each to compile), about 7 KB in all.
func deepCELTelemetry(name string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: %s, namespace: shop}\nspec:\n  accessLogging:\n", name)
	expr := strings.Repeat("[", 245) + "1" + strings.Repeat("]", 245) + " == []"
	for range n {
		fmt.Fprintf(&b, "  - providers: [{name: envoy}]\n    filter: {expression: %q}\n", expr)
	}
	return b.String()
}

// manyRoutesVS is a VirtualService with n retrying routes: costly to decode and evaluate, valid
// for the CRD schema.
func manyRoutesVS(name string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: %s, namespace: shop}\nspec:\n  hosts: [cart]\n  http:\n", name)
	for range n {
		b.WriteString("  - route: [{destination: {host: cart}}]\n    timeout: 3s\n    retries: {attempts: 2, perTryTimeout: 1s}\n")
	}
	return b.String()
}
