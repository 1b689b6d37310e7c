package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/meshguard/meshguard/internal/engine"
)

const (
	meshStrict = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
`
	cartDR = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cart, namespace: shop}
spec:
  host: cart
  trafficPolicy:
    connectionPool: {http: {maxRetries: 64}}
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}
  subsets:
  - {name: v1, labels: {version: v1}}
`
	goodVS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cart, namespace: shop}
spec:
  hosts: [cart]
  http:
  - route: [{destination: {host: cart, subset: v1}}]
    timeout: 3s
    retries: {attempts: 2, perTryTimeout: 1s, retryOn: "connect-failure,refused-stream"}
`
	stormVS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cart, namespace: shop}
spec:
  hosts: [cart]
  http:
  - route: [{destination: {host: cart, subset: v1}}]
    timeout: 10s
    retries: {attempts: 10, perTryTimeout: 500ms, retryOn: "5xx,bogus-token"}
`
	noTimeoutVS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cart, namespace: shop}
spec:
  hosts: [cart]
  http:
  - route: [{destination: {host: cart, subset: v1}}]
    retries: {attempts: 2, perTryTimeout: 1s}
`
	typoVS = `apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: cart, namespace: shop}
spec:
  hosts: [cart]
  http:
  - route: [{destination: {host: cart}}]
    retriez: {attempts: 2}
`
	plaintextDR = `apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: cart-plain, namespace: shop}
spec:
  host: cart
  trafficPolicy: {tls: {mode: DISABLE}}
`
	permissivePA = `apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata:
  name: legacy
  namespace: legacy
  annotations:
    exceptions.meshguard.io/MG301: "reason=legacy clients; expires=%s"
spec: {mtls: {mode: PERMISSIVE}}
`
	nsStrictPA = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mtls: {mode: STRICT}}
`
	samplingTelemetry = `apiVersion: telemetry.istio.io/v1alpha1
kind: Telemetry
metadata: {name: tracing, namespace: shop}
spec:
  tracing: [{randomSamplingPercentage: 150}]
`
)

func TestHandlerMapsFindingsToTheAnswer(t *testing.T) {
	inventory := []string{meshStrict, cartDR}
	tests := []struct {
		name     string
		config   string
		req      req
		allowed  bool
		code     int32
		message  []string // substrings of the denial message
		warnings []string // substrings, one per expected warning (in any warning)
		noWarn   bool
	}{
		{
			name: "a clean object is admitted without warnings",
			req:  req{op: admissionv1.Create, object: goodVS}, allowed: true, noWarn: true,
		},
		{
			name: "every error finding is listed with its rule ID and field path",
			req:  req{op: admissionv1.Create, object: stormVS}, code: http.StatusForbidden,
			message: []string{"MG101 spec.http[0].retries.attempts: ", "MG105 spec.http[0].retries.retryOn: "},
		},
		{
			name: "a warning-only object is admitted and each warning starts with its rule ID",
			req:  req{op: admissionv1.Create, object: noTimeoutVS}, allowed: true,
			warnings: []string{"MG103 spec.http[0]"},
		},
		{
			name: "an object that fails the strict check is denied as MG001 with the field path",
			req:  req{op: admissionv1.Create, object: typoVS}, code: http.StatusForbidden,
			message: []string{"MG001 spec.http[0].retriez: "},
		},
		{
			name: "a DestinationRule disabling TLS in a STRICT mesh is denied (MG501)",
			req:  req{op: admissionv1.Create, object: plaintextDR}, code: http.StatusForbidden,
			message: []string{"MG501 spec.trafficPolicy.tls.mode: "},
		},
		{
			name: "a Telemetry sampling over 100% is denied (MG401)",
			req:  req{op: admissionv1.Update, object: samplingTelemetry, oldObject: samplingTelemetry}, code: http.StatusForbidden,
			message: []string{"MG401 spec.tracing[0].randomSamplingPercentage: "},
		},
		{
			name: "an update that introduces a violation is denied",
			req:  req{op: admissionv1.Update, object: stormVS, oldObject: goodVS}, code: http.StatusForbidden,
			message: []string{"MG101"},
		},
		{
			name: "a dry run is reviewed like a real request",
			req:  req{op: admissionv1.Create, object: stormVS, dryRun: true}, code: http.StatusForbidden,
			message: []string{"MG101"},
		},
		{
			name: "a valid exception silences its rule",
			req:  req{op: admissionv1.Create, object: strings.Replace(permissivePA, "%s", "2030-01-01", 1)}, allowed: true,
		},
		{
			name: "an expired exception is denied (MG009)",
			req:  req{op: admissionv1.Create, object: strings.Replace(permissivePA, "%s", "2026-01-01", 1)}, code: http.StatusForbidden,
			message: []string{`MG009 metadata.annotations["exceptions.meshguard.io/MG301"]: `, "MG301 spec.mtls.mode: "},
		},
		{
			name:   "warn enforcement turns errors into warnings",
			config: "webhook: {enforcement: warn}\n",
			req:    req{op: admissionv1.Create, object: stormVS}, allowed: true,
			warnings: []string{"MG101 spec.http[0].retries.attempts: ", "MG105 spec.http[0].retries.retryOn: "},
		},
		{
			name:   "audit enforcement of one rule admits silently and keeps the others",
			config: "rules: {MG101: {enforcement: audit}}\n",
			req:    req{op: admissionv1.Create, object: stormVS}, code: http.StatusForbidden,
			message: []string{"MG105"},
		},
		{
			name:   "global audit enforcement admits everything without a word",
			config: "webhook: {enforcement: audit}\n",
			req:    req{op: admissionv1.Create, object: stormVS}, allowed: true, noWarn: true,
		},
		{
			name: "a namespace-wide PeerAuthentication is admitted with the mesh-wide warning when the mesh has no STRICT policy",
			req:  req{op: admissionv1.Create, object: strings.Replace(nsStrictPA, "namespace: shop", "namespace: istio-system", 1)},
			// Replacing the mesh-wide STRICT policy by a copy keeps the mesh STRICT: no warning.
			allowed: true, noWarn: true,
		},
		{
			name:    "deleting the mesh-wide STRICT PeerAuthentication is allowed with an MG504 warning",
			req:     req{op: admissionv1.Delete, oldObject: meshStrict},
			allowed: true, warnings: []string{"MG504"},
		},
		{
			name:    "deleting a PeerAuthentication with no object attached still warns",
			req:     req{op: admissionv1.Delete, kind: "PeerAuthentication", namespace: "istio-system", name: "default"},
			allowed: true, warnings: []string{"MG504"},
		},
		{
			name:    "deleting any other object is allowed silently",
			req:     req{op: admissionv1.Delete, oldObject: cartDR},
			allowed: true, noWarn: true,
		},
		{
			name: "an update of an object being deleted is allowed when its spec is unchanged, so that its finalizers can go",
			req: req{op: admissionv1.Update, oldObject: stormVS,
				object: strings.Replace(stormVS, "metadata: {name: cart, namespace: shop}", "metadata: {name: cart, namespace: shop, deletionTimestamp: \"2026-06-01T00:00:00Z\"}", 1)},
			allowed: true, noWarn: true,
		},
		{
			name: "an update of an object being deleted that changes its spec is reviewed like any update",
			req: req{op: admissionv1.Update, oldObject: goodVS,
				object: strings.Replace(stormVS, "metadata: {name: cart, namespace: shop}", "metadata: {name: cart, namespace: shop, deletionTimestamp: \"2026-06-01T00:00:00Z\", finalizers: [example.com/hold]}", 1)},
			code: http.StatusForbidden, message: []string{"MG101"},
		},
		{
			name: "a rule that overflows on the object denies it instead of failing the review",
			req: req{op: admissionv1.Create, object: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cart, namespace: shop}
spec:
  hosts: [cart]
  http:
  - route: [{destination: {host: cart}}]
    timeout: 1s
    retries: {attempts: 2147483647, perTryTimeout: 100000000s}
`}, code: http.StatusForbidden, message: []string{"MG101"},
		},
		{
			name:    "a kind meshguard does not check is allowed",
			req:     req{op: admissionv1.Create, object: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: shop}\n"},
			allowed: true, noWarn: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.config, inventory...)
			resp := f.send(t, tt.req)
			require.Equal(t, tt.allowed, resp.Allowed, "result: %+v, warnings: %v", resp.Result, resp.Warnings)
			if !tt.allowed {
				require.NotNil(t, resp.Result)
				require.Equal(t, tt.code, resp.Result.Code)
				for _, m := range tt.message {
					require.Contains(t, resp.Result.Message, m)
				}
			}
			joined := strings.Join(resp.Warnings, "\n")
			for _, w := range tt.warnings {
				require.Contains(t, joined, w)
			}
			for _, w := range resp.Warnings {
				require.Regexp(t, `^MG\d{3}[ :]`, w, "every warning starts with its rule ID")
			}
			if tt.noWarn {
				require.Empty(t, resp.Warnings)
			}
		})
	}
}

func TestPeerAuthenticationChangesReportTheMeshAsWarnings(t *testing.T) {
	// No mesh-wide policy at all: any PeerAuthentication change says so, and is still admitted.
	f := newFixture(t, "", cartDR)
	resp := f.send(t, req{op: admissionv1.Create, object: nsStrictPA})
	require.True(t, resp.Allowed)
	require.Len(t, resp.Warnings, 1)
	require.True(t, strings.HasPrefix(resp.Warnings[0], "MG504"), resp.Warnings[0])

	// The object under review counts: creating the mesh-wide STRICT policy clears it.
	resp = f.send(t, req{op: admissionv1.Create, object: meshStrict})
	require.True(t, resp.Allowed)
	require.Empty(t, resp.Warnings)
}

func TestObjectUnderReviewReplacesItsStoredVersion(t *testing.T) {
	// The stored DestinationRule has outlier detection; the update removes it, so the
	// VirtualService's retries now hit a host without it (MG502) once the update is stored.
	f := newFixture(t, "", meshStrict, cartDR, goodVS)
	bare := strings.Replace(cartDR, "    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}\n", "", 1)
	resp := f.send(t, req{op: admissionv1.Update, object: bare, oldObject: cartDR})
	require.True(t, resp.Allowed)

	require.NoError(t, f.cache.Put(mustDecode(t, bare)))
	resp = f.send(t, req{op: admissionv1.Update, object: goodVS, oldObject: goodVS})
	require.True(t, resp.Allowed)
	require.Len(t, resp.Warnings, 1)
	require.True(t, strings.HasPrefix(resp.Warnings[0], "MG502 "), resp.Warnings[0])
}

func mustDecode(t testing.TB, doc string) map[string]any {
	t.Helper()
	raw, err := DecodeJSON(yamlToJSON(t, doc))
	require.NoError(t, err)
	return raw
}

func TestMalformedRequestsAreA400(t *testing.T) {
	f := newFixture(t, "webhook: {maxRequestBytes: 4096}\n", meshStrict)
	valid := req{op: admissionv1.Create, object: goodVS}.review(t)
	tests := []struct {
		name        string
		method      string
		contentType string
		body        []byte
		want        string
	}{
		{"a body over webhook.maxRequestBytes", http.MethodPost, "application/json", append(valid[:len(valid)-1], []byte(`,"pad":"`+strings.Repeat("x", 5000)+`"}`)...), "over the limit of 4096 bytes"},
		{"malformed JSON", http.MethodPost, "application/json", []byte(`{"apiVersion":`), "decode AdmissionReview"},
		{"another content type", http.MethodPost, "application/yaml", valid, "want application/json"},
		{"a GET", http.MethodGet, "application/json", nil, "POSTed"},
		{"an empty body", http.MethodPost, "application/json", nil, "empty"},
		{"an AdmissionReview without a request", http.MethodPost, "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), "no request"},
		{"another kind of document", http.MethodPost, "application/json", []byte(`{"apiVersion":"v1","kind":"ConfigMap"}`), "want an admission.k8s.io/v1 AdmissionReview"},
		{"a request without a uid", http.MethodPost, "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"operation":"CREATE"}}`), "no uid"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is a 400", func(t *testing.T) {
			r := httptest.NewRequest(tt.method, Path, bytes.NewReader(tt.body))
			r.Header.Set("Content-Type", tt.contentType)
			w := httptest.NewRecorder()
			f.http.ServeHTTP(w, r)
			require.Equal(t, http.StatusBadRequest, w.Code)
			require.Contains(t, w.Body.String(), tt.want)
			require.Contains(t, w.Body.String(), `"code":400`)
		})
	}
	require.Equal(t, float64(len(tests)), f.counter(t, "meshguard_webhook_requests_total", map[string]string{"result": ResultInvalid}))

	t.Run("a request with no object gets a 400 in the answer", func(t *testing.T) {
		resp := f.send(t, req{op: admissionv1.Create, kind: "VirtualService", namespace: "shop", name: "cart"})
		require.False(t, resp.Allowed)
		require.EqualValues(t, http.StatusBadRequest, resp.Result.Code)
		require.Contains(t, resp.Result.Message, "has no object")
	})
	t.Run("an object that is not a JSON object is a 400", func(t *testing.T) {
		body := bytes.Replace(valid, []byte(`"object":{`), []byte(`"object":[{`), 1)
		body = bytes.Replace(body, []byte(`},"oldObject"`), []byte(`}],"oldObject"`), 1)
		code, resp := f.post(t, body)
		require.Equal(t, http.StatusBadRequest, code)
		require.EqualValues(t, http.StatusBadRequest, resp.Result.Code)
		require.Contains(t, resp.Result.Message, "decode AdmissionReview")
		require.Equal(t, "uid-create", string(resp.UID), "the UID read before the error is kept")
	})
	t.Run("behind another transport, an object that is not a JSON object gets a 400 in the answer", func(t *testing.T) {
		resp := f.handler.Handle(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			UID: "u", Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: []byte(`[1]`)},
		}})
		require.EqualValues(t, http.StatusBadRequest, resp.Result.Code)
		require.Contains(t, resp.Result.Message, "want a JSON object")
	})
	t.Run("an admission.k8s.io/v1beta1 review is answered in v1beta1", func(t *testing.T) {
		body := bytes.Replace(valid, []byte(`admission.k8s.io/v1"`), []byte(`admission.k8s.io/v1beta1"`), 1)
		r := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json; charset=utf-8")
		w := httptest.NewRecorder()
		f.http.ServeHTTP(w, r)
		require.Equal(t, http.StatusOK, w.Code)
		require.Contains(t, w.Body.String(), `"apiVersion":"admission.k8s.io/v1beta1"`)
	})
}

// faultyInventory fails, panics or blocks on demand, to drive the failure policy.
type faultyInventory struct {
	err     error
	panics  bool
	block   chan struct{}
	entered chan struct{}
	inv     engine.Inventory
}

func (f *faultyInventory) Inventory(string, string) (engine.Inventory, error) {
	if f.entered != nil {
		f.entered <- struct{}{}
	}
	if f.block != nil {
		<-f.block
	}
	if f.panics {
		panic("inventory exploded")
	}
	return f.inv, f.err
}

func TestEvaluationFaultsFollowTheFailurePolicy(t *testing.T) {
	faults := []struct {
		name string
		inv  func() InventorySource
		want string
	}{
		{"an inventory that has not synced", func() InventorySource { return &faultyInventory{err: ErrNotSynced} }, "not synced"},
	}
	policies := []struct {
		policy  string
		allowed bool
		result  string
	}{
		{"allow", true, ResultFailedOpen},
		{"deny", false, ResultFailedClosed},
	}
	for _, fault := range faults {
		for _, p := range policies {
			t.Run(fault.name+" is answered per failurePolicy "+p.policy, func(t *testing.T) {
				f := newFixture(t, "webhook: {failurePolicy: "+p.policy+"}\n")
				f.handler.Inventory = fault.inv()
				resp := f.send(t, req{op: admissionv1.Create, object: stormVS})
				require.Equal(t, p.allowed, resp.Allowed)
				if p.allowed {
					require.Len(t, resp.Warnings, 1)
					require.Contains(t, resp.Warnings[0], "admitted it unchecked")
					require.Contains(t, resp.Warnings[0], fault.want)
					require.NotContains(t, resp.Warnings[0], "\n", "no stack trace in the warning")
				} else {
					require.EqualValues(t, http.StatusInternalServerError, resp.Result.Code)
					require.Contains(t, resp.Result.Message, "refuses it")
					require.Contains(t, resp.Result.Message, fault.want)
				}
				require.Equal(t, 1.0, f.counter(t, "meshguard_webhook_evaluation_errors_total", nil))
				require.Equal(t, 1.0, f.counter(t, "meshguard_webhook_requests_total", map[string]string{"kind": "VirtualService", "operation": "CREATE", "result": p.result}))
			})
		}
	}
}

func TestAPanicWhileReviewingRefusesTheObjectWhateverTheFailurePolicy(t *testing.T) {
	for _, policy := range []string{"allow", "deny"} {
		t.Run("failurePolicy "+policy, func(t *testing.T) {
			f := newFixture(t, "webhook: {failurePolicy: "+policy+"}\n")
			f.handler.Inventory = &faultyInventory{panics: true}
			resp := f.send(t, req{op: admissionv1.Create, object: goodVS})
			require.False(t, resp.Allowed)
			require.EqualValues(t, http.StatusInternalServerError, resp.Result.Code)
			require.Contains(t, resp.Result.Message, "refuses it")
			require.Contains(t, resp.Result.Message, "panic: inventory exploded")
			require.NotContains(t, resp.Result.Message, "\n", "no stack trace in the answer")
			require.Equal(t, 1.0, f.counter(t, "meshguard_webhook_panics_total", nil))
			require.Equal(t, 1.0, f.counter(t, "meshguard_webhook_requests_total", map[string]string{"kind": "VirtualService", "operation": "CREATE", "result": ResultFailedClosed}))
		})
	}
}

func TestConcurrentReviewsAreBounded(t *testing.T) {
	f := newFixture(t, "webhook: {maxConcurrentReviews: 2, timeout: 20s}\n", meshStrict)
	base, err := f.cache.Inventory("istio-system", "cluster.local")
	require.NoError(t, err)
	gate := &faultyInventory{block: make(chan struct{}), entered: make(chan struct{}, 8), inv: base}
	f.handler.Inventory = gate

	var wg sync.WaitGroup
	var allowed atomic.Int32
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if f.send(t, req{op: admissionv1.Create, object: goodVS}).Allowed {
				allowed.Add(1)
			}
		}()
	}
	<-gate.entered
	<-gate.entered
	select {
	case <-gate.entered:
		t.Fatal("a third review started while two held both slots")
	case <-time.After(200 * time.Millisecond):
	}
	close(gate.block)
	wg.Wait()
	require.EqualValues(t, 3, allowed.Load(), "the waiting review runs once a slot frees up")
}

// holdOneReview starts a fixture with cfg and one review that stays inside the handler, holding
// its slot and its bytes, until release is called.
func holdOneReview(t *testing.T, cfg string) (f *fixture, gate *faultyInventory, release func()) {
	t.Helper()
	f = newFixture(t, cfg, meshStrict)
	base, err := f.cache.Inventory("istio-system", "cluster.local")
	require.NoError(t, err)
	gate = &faultyInventory{block: make(chan struct{}), entered: make(chan struct{}, 8), inv: base}
	f.handler.Inventory = gate
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.send(t, req{op: admissionv1.Create, object: goodVS})
	}()
	<-gate.entered
	return f, gate, func() { close(gate.block); <-done }
}

func TestWaitingForASlotEndsAtTheDeadlineWithARefusalEvenUnderFailurePolicyAllow(t *testing.T) {
	f, _, release := holdOneReview(t, "webhook: {maxConcurrentReviews: 1, timeout: 300ms, failurePolicy: allow}\n")
	began := time.Now()
	resp := f.send(t, req{op: admissionv1.Create, object: goodVS})
	require.False(t, resp.Allowed, "a flood of costly reviews must not open the door for another object")
	require.EqualValues(t, http.StatusTooManyRequests, resp.Result.Code)
	require.Contains(t, resp.Result.Message, "too many reviews in flight")
	require.Contains(t, resp.Result.Message, "within webhook.timeout (300ms)")
	require.Less(t, time.Since(began), 5*time.Second)
	release()
}

func TestMetricsCountRequestsFindingsAndLatency(t *testing.T) {
	f := newFixture(t, "", meshStrict, cartDR)
	f.send(t, req{op: admissionv1.Create, object: stormVS})
	f.send(t, req{op: admissionv1.Create, object: goodVS})
	f.send(t, req{op: admissionv1.Create, object: noTimeoutVS})
	assert.Equal(t, 1.0, f.counter(t, "meshguard_webhook_requests_total", map[string]string{"kind": "VirtualService", "operation": "CREATE", "result": ResultDenied}))
	assert.Equal(t, 1.0, f.counter(t, "meshguard_webhook_requests_total", map[string]string{"kind": "VirtualService", "operation": "CREATE", "result": ResultAllowed}))
	assert.Equal(t, 1.0, f.counter(t, "meshguard_webhook_requests_total", map[string]string{"kind": "VirtualService", "operation": "CREATE", "result": ResultWarned}))
	assert.Equal(t, 1.0, f.counter(t, "meshguard_webhook_findings_total", map[string]string{"rule": "MG101", "severity": "error"}))
	assert.Equal(t, 1.0, f.counter(t, "meshguard_webhook_findings_total", map[string]string{"rule": "MG103", "severity": "warning"}))
	assert.Equal(t, 3.0, f.counter(t, "meshguard_webhook_request_duration_seconds", map[string]string{"kind": "VirtualService"}))
	assert.Equal(t, 2.0, f.counter(t, "meshguard_webhook_inventory_objects", nil))
}

func TestAnAnswerIsBoundedWhateverTheNumberOfFindings(t *testing.T) {
	// 5,000 routes that each break two error rules and two warning rules.
	var b strings.Builder
	b.WriteString("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: cart, namespace: shop}\nspec:\n  hosts: [cart]\n  http:\n")
	for range 5000 {
		b.WriteString("  - route: [{destination: {host: cart}}]\n    retries: {attempts: 10, retryOn: bogus}\n")
	}
	f := newFixture(t, "webhook: {maxRequestBytes: 2000000}\n", meshStrict, cartDR)
	resp := f.send(t, req{op: admissionv1.Create, object: b.String()})
	require.False(t, resp.Allowed)
	require.Less(t, len(resp.Result.Message), 64<<10)
	require.Contains(t, resp.Result.Message, "more error findings (meshguard lint lists them all)")
	require.LessOrEqual(t, len(resp.Warnings), maxWarnings+1)
	require.Contains(t, resp.Warnings[len(resp.Warnings)-1], "more warnings")
}

// TestAReviewWaitsBeforeItReadsItsBody holds one review inside the handler and sends a second:
// while the first holds what the second needs (the only slot, or most of the byte budget), the
// second's body is not read at all.
func TestAReviewWaitsBeforeItReadsItsBody(t *testing.T) {
	small := req{op: admissionv1.Create, object: goodVS}.review(t)
	tests := []struct {
		name, config string
	}{
		{"for a free slot", "webhook: {maxConcurrentReviews: 1, timeout: 20s}\n"},
		// Two slots, but a byte budget the first review leaves too little of for the second.
		{"for its share of the byte budget", fmt.Sprintf("webhook: {maxConcurrentReviews: 2, timeout: 20s, maxRequestBytes: %d, maxInFlightBytes: %d}\n", len(small)+1, 2*len(small)-1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, gate, release := holdOneReview(t, tt.config)
			// The second request's body is a reader that records whether anything read it.
			body := &watchedReader{r: bytes.NewReader(small)}
			r := httptest.NewRequest(http.MethodPost, Path, body)
			r.Header.Set("Content-Type", "application/json")
			served := make(chan struct{})
			go func() {
				defer close(served)
				f.http.ServeHTTP(httptest.NewRecorder(), r)
			}()
			select {
			case <-served:
				t.Fatal("the second review finished while the first held what it needs")
			case <-gate.entered:
				t.Fatal("the second review started while the first held what it needs")
			case <-time.After(300 * time.Millisecond):
			}
			require.False(t, body.read.Load(), "the body was read before the review could start")
			release()
			<-served
			require.True(t, body.read.Load())
		})
	}
}

type watchedReader struct {
	r    *bytes.Reader
	read atomic.Bool
}

func (w *watchedReader) Read(p []byte) (int, error) {
	w.read.Store(true)
	return w.r.Read(p)
}

func TestLabelsStayBounded(t *testing.T) {
	require.Equal(t, "other", kindLabel("Pod"))
	require.Equal(t, "unknown", kindLabel(""))
	require.Equal(t, "Telemetry", kindLabel("Telemetry"))
	require.Equal(t, "other", operationLabel("PATCH"))
}

func TestHandlerAnswersWithoutTheHTTPLayer(t *testing.T) {
	f := newFixture(t, "", meshStrict, cartDR)
	var ar admissionv1.AdmissionReview
	require.NoError(t, json.Unmarshal(req{op: admissionv1.Create, object: stormVS}.review(t), &ar))
	resp := f.handler.Handle(context.Background(), admission.Request{AdmissionRequest: *ar.Request})
	require.False(t, resp.Allowed)
	require.Contains(t, resp.Result.Message, "MG101")
}
