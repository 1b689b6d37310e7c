package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// FuzzHandle sends arbitrary bodies to the webhook. With wrap set, data is the object of an
// otherwise valid CREATE review, so the fuzzer spends its time on objects (the strict decoder
// and the rules) rather than on the envelope. Whatever comes in, the webhook must answer with
// a well-formed AdmissionReview (HTTP 200 with the request's UID, or a 400), never panic, and
// never fail an evaluation: with a healthy inventory an evaluation error is a bug in a rule or
// in the decoder, since every object that reaches the rules has passed the strict check.
func FuzzHandle(f *testing.F) {
	for _, doc := range []string{goodVS, stormVS, noTimeoutVS, typoVS, plaintextDR, cartDR, meshStrict, nsStrictPA, samplingTelemetry,
		strings.Replace(permissivePA, "%s", "2020-01-01", 1), strings.Replace(permissivePA, "%s", "someday", 1)} {
		f.Add(yamlToJSON(f, doc), true)
		f.Add(req{op: admissionv1.Create, object: doc}.review(f), false)
		f.Add(req{op: admissionv1.Update, object: doc, oldObject: doc}.review(f), false)
	}
	f.Add(req{op: admissionv1.Delete, oldObject: meshStrict}.review(f), false)
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE"}}`), false)
	f.Add([]byte(`{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"x"},"spec":{"http":[{"retries":{"attempts":1e400}}]}}`), true)
	// The bypasses found by attacking the webhook: an overflow in a rule, object-supplied CEL
	// nested past the parser's limit, more CEL expressions than are checked, and a changed spec
	// sent while the object is being deleted.
	f.Add([]byte(`{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"x"},"spec":{"hosts":["cart"],"http":[{"route":[{"destination":{"host":"cart"}}],"timeout":"1s","retries":{"attempts":2147483647,"perTryTimeout":"100000000s"}}]}}`), true)
	f.Add([]byte(`{"apiVersion":"telemetry.istio.io/v1","kind":"Telemetry","metadata":{"name":"x"},"spec":{"accessLogging":[{"filter":{"expression":"`+strings.Repeat("[", 245)+"1"+strings.Repeat("]", 245)+`"}}]}}`), true)
	var tags []string
	for i := range 70 {
		tags = append(tags, fmt.Sprintf(`"t%d":{"value":"request.path"}`, i))
	}
	f.Add([]byte(`{"apiVersion":"telemetry.istio.io/v1","kind":"Telemetry","metadata":{"name":"x"},"spec":{"metrics":[{"overrides":[{"tagOverrides":{`+strings.Join(tags, ",")+`}}]}]}}`), true)
	f.Add(req{op: admissionv1.Update, oldObject: goodVS, object: strings.Replace(stormVS, "metadata: {name: cart, namespace: shop}", "metadata: {name: cart, namespace: shop, deletionTimestamp: \"2026-06-01T00:00:00Z\"}", 1)}.review(f), false)

	fx := newFixture(f, "webhook: {failurePolicy: deny, maxRequestBytes: 65536}\n", meshStrict, cartDR, goodVS)
	f.Fuzz(func(t *testing.T, data []byte, wrap bool) {
		body := data
		if wrap {
			ar := admissionv1.AdmissionReview{
				TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
				Request: &admissionv1.AdmissionRequest{
					UID: "fuzz", Operation: admissionv1.Create, Namespace: "shop", Name: "fuzz",
					Kind:   metav1.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "VirtualService"},
					Object: runtime.RawExtension{Raw: data},
				},
			}
			var err error
			if body, err = json.Marshal(ar); err != nil {
				return // data is not valid JSON: RawExtension refuses to embed it
			}
		}
		r := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		fx.http.ServeHTTP(w, r)

		if w.Code != http.StatusOK && w.Code != http.StatusBadRequest {
			t.Fatalf("HTTP %d: %s", w.Code, w.Body.String())
		}
		var out admissionv1.AdmissionReview
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || out.Response == nil {
			t.Fatalf("answer is not an AdmissionReview (%v): %s", err, w.Body.String())
		}
		resp := out.Response
		if w.Code == http.StatusOK {
			var in admissionv1.AdmissionReview
			if err := json.Unmarshal(body, &in); err != nil || in.Request == nil {
				t.Fatalf("answered 200 to a request that does not decode: %v", err)
			}
			if resp.UID != in.Request.UID {
				t.Fatalf("answer UID %q, request UID %q", resp.UID, in.Request.UID)
			}
		}
		if !resp.Allowed {
			if resp.Result == nil {
				t.Fatalf("a refusal without a status: %s", w.Body.String())
			}
			switch resp.Result.Code {
			case http.StatusBadRequest, http.StatusForbidden:
			default:
				t.Fatalf("refused with code %d: %s", resp.Result.Code, resp.Result.Message)
			}
		}
		for _, warning := range resp.Warnings {
			if strings.Contains(warning, "\n") {
				t.Fatalf("a warning spans lines: %q", warning)
			}
		}
		if n := fx.counter(t, "meshguard_webhook_panics_total", nil); n > 0 {
			t.Fatalf("recovered a panic: %s", w.Body.String())
		}
		if n := fx.counter(t, "meshguard_webhook_evaluation_errors_total", nil); n > 0 {
			t.Fatalf("evaluation failed: %s", w.Body.String())
		}
	})
}
