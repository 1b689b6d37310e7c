package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/go-logr/logr"
	jsoniter "github.com/json-iterator/go"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Path is where `meshguard serve` answers AdmissionReviews.
const Path = "/validate"

// NewHTTPHandler serves h as an AdmissionReview endpoint. It replaces controller-runtime's
// ServeHTTP for two reasons: the body cap is webhook.maxRequestBytes from the configuration in
// force (controller-runtime's is a fixed 7 MiB), and a request that is not a well-formed
// AdmissionReview gets an HTTP 400 with the reason, not a 200 carrying an error. The review
// itself goes through admission.Webhook, which fills in the UID and guards against panics.
func NewHTTPHandler(h *Handler) http.Handler {
	return &httpHandler{h: h, wh: &admission.Webhook{
		Handler: h,
		// The default builds a logger with six request values for every request, which is
		// never used unless the wrapper itself fails; the handler adds the values when it logs.
		LogConstructor: func(base logr.Logger, _ *admission.Request) logr.Logger { return base },
	}}
}

type httpHandler struct {
	h  *Handler
	wh *admission.Webhook
	// bodies recycles request body buffers: reading each body into a fresh, doubling buffer
	// was a sixth of the bytes a review allocates, and allocation rate is what sets how often
	// the collector runs (and so the latency tail). Nothing decoded keeps a reference into
	// the buffer: the JSON decoder copies strings and raw objects out.
	bodies sync.Pool
}

// maxPooledBody keeps rare huge bodies from pinning memory in the pool.
const maxPooledBody = 256 << 10

func (s *httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	kind, op := "unknown", "unknown"
	defer func() {
		s.h.Metrics.latency.WithLabelValues(kind, op).Observe(time.Since(start).Seconds())
	}()

	rs := s.h.Rules.Load()
	limit := rs.Config.Webhook.MaxRequestBytes
	if err := checkRequest(r, limit); err != nil {
		s.invalid(w, r, nil, err)
		return
	}
	// The review slot and the body's share of the byte budget are taken before the body is
	// read: what a review holds in memory is then bounded by the configuration, whatever the
	// number and size of the requests in flight.
	ctx, cancel := context.WithTimeout(r.Context(), rs.Config.Webhook.Timeout.Duration)
	defer cancel()
	size := r.ContentLength
	if size < 0 {
		size = limit
	}
	release, err := rs.acquire(ctx, size)
	if err != nil {
		s.h.Metrics.requests.WithLabelValues(kind, op, ResultFailedClosed).Inc()
		s.busy(w, r, rs, err)
		return
	}
	defer release()

	review, err := s.read(r, limit)
	if err != nil {
		s.invalid(w, r, review, err)
		return
	}
	req := &review.Request.AdmissionRequest
	kind, op = kindLabel(req.Kind.Kind), operationLabel(string(req.Operation))
	ctx = context.WithValue(ctx, slotKey{}, rs)
	if review.Request.Object != nil {
		ctx = withObject(ctx, review.Request.Object)
	}
	if review.Request.OldObject != nil {
		ctx = withOldObject(ctx, review.Request.OldObject)
	}
	resp := s.wh.Handle(ctx, admission.Request{AdmissionRequest: *req})
	writeReview(w, http.StatusOK, review.APIVersion, &resp.AdmissionResponse)
}

// invalid answers a request that is not a well-formed AdmissionReview with a 400.
func (s *httpHandler) invalid(w http.ResponseWriter, r *http.Request, review *reviewEnvelope, err error) {
	s.h.Metrics.requests.WithLabelValues("unknown", "unknown", ResultInvalid).Inc()
	s.h.Log.V(1).Info("malformed admission request", "error", err.Error(), "remote", r.RemoteAddr)
	var uid types.UID
	if review != nil && review.Request != nil {
		uid = review.Request.UID
	}
	writeReview(w, http.StatusBadRequest, "", &admissionv1.AdmissionResponse{
		UID:    uid,
		Result: &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusBadRequest, Reason: metav1.StatusReasonBadRequest, Message: err.Error()},
	})
}

// uidPeek bounds what is read of a body that gets no review slot: enough for request.uid,
// which the API server writes first in the request.
const uidPeek = 4096

var uidRE = regexp.MustCompile(`"request"\s*:\s*\{\s*"uid"\s*:\s*"([^"\\]{1,128})"`)

// busy refuses a request that got no review slot before the deadline. The answer carries the
// UID when the first bytes of the body show it, so that the API server shows the reason; without
// it the API server treats the answer as a failed call, which the chart's failurePolicy Fail
// also refuses.
func (s *httpHandler) busy(w http.ResponseWriter, r *http.Request, rs *RuleSet, err error) {
	head, _ := io.ReadAll(io.LimitReader(r.Body, uidPeek))
	m := uidRE.FindSubmatch(head)
	if m == nil {
		http.Error(w, errBusy.Error(), http.StatusTooManyRequests)
		return
	}
	s.h.Log.Info("no review slot before the deadline; refusing", "error", err.Error(), "uid", string(m[1]))
	writeReview(w, http.StatusOK, "", &admissionv1.AdmissionResponse{
		UID: types.UID(m[1]),
		Result: &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusTooManyRequests, Reason: metav1.StatusReasonTooManyRequests,
			Message: fmt.Sprintf("meshguard refuses this request: %s within webhook.timeout (%s); retry", errBusy, rs.Config.Webhook.Timeout)},
	})
}

// reviewEnvelope is an AdmissionReview as the webhook reads it. request.object is decoded
// straight into the generic form the rules read, in the same pass as the envelope, rather
// than skipped, copied into a RawExtension and parsed again; request.oldObject, which no rule
// reads, is skipped rather than copied twice. On API server objects (managedFields,
// last-applied-configuration) that was a third of the bytes a review allocated.
type reviewEnvelope struct {
	metav1.TypeMeta `json:",inline"`
	Request         *requestEnvelope `json:"request,omitempty"`
}

// requestEnvelope shadows the embedded request's object fields (a shallower field of the same
// JSON name wins, as in encoding/json). request.oldObject is kept as bytes: it is decoded only
// for an update of an object being deleted, to tell whether its spec changes.
type requestEnvelope struct {
	admissionv1.AdmissionRequest
	Object    admissionObject `json:"object,omitempty"`
	OldObject json.RawMessage `json:"oldObject,omitempty"`
}

// checkRequest checks what can be checked before the body is read.
func checkRequest(r *http.Request, limit int64) error {
	if r.Method != http.MethodPost {
		return fmt.Errorf("method %s: an AdmissionReview is POSTed", r.Method)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return fmt.Errorf("content type %q: want application/json", r.Header.Get("Content-Type"))
	}
	if r.ContentLength > limit {
		return fmt.Errorf("request body of %d bytes is over the limit of %d bytes (webhook.maxRequestBytes)", r.ContentLength, limit)
	}
	return nil
}

// read reads and decodes the body. On a decode error after the UID was read, it returns what
// it has so the answer can carry the UID.
func (s *httpHandler) read(r *http.Request, limit int64) (*reviewEnvelope, error) {
	buf, _ := s.bodies.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledBody {
			s.bodies.Put(buf)
		}
	}()
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength) + 1)
	}
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, limit+1)); err != nil {
		return nil, fmt.Errorf("read request body: %w", err)
	}
	body := buf.Bytes()
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("request body is over the limit of %d bytes (webhook.maxRequestBytes)", limit)
	}
	if len(body) == 0 {
		return nil, errors.New("request body is empty: want an AdmissionReview")
	}
	var review reviewEnvelope
	// json-iterator for the same reason as in DecodeJSON: the standard decoder costs four
	// times as much.
	if err := jsoniter.ConfigCompatibleWithStandardLibrary.Unmarshal(body, &review); err != nil {
		// What was read so far may hold the UID, which the answer should carry.
		return &review, fmt.Errorf("decode AdmissionReview: %w", err)
	}
	switch {
	case review.Kind != "AdmissionReview" || (review.APIVersion != "admission.k8s.io/v1" && review.APIVersion != "admission.k8s.io/v1beta1"):
		return &review, fmt.Errorf("got apiVersion %q kind %q: want an admission.k8s.io/v1 AdmissionReview", review.APIVersion, review.Kind)
	case review.Request == nil:
		return &review, errors.New("the AdmissionReview has no request")
	case review.Request.UID == "":
		return &review, errors.New("the AdmissionReview request has no uid")
	}
	return &review, nil
}

// writeReview answers with an AdmissionReview in the request's version (v1 when unknown).
func writeReview(w http.ResponseWriter, status int, apiVersion string, resp *admissionv1.AdmissionResponse) {
	if apiVersion == "" {
		apiVersion = "admission.k8s.io/v1"
	}
	out := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: apiVersion, Kind: "AdmissionReview"},
		Response: resp,
	}
	b, err := json.Marshal(out)
	if err != nil {
		// An AdmissionResponse always marshals; this is a bug, answered as one.
		http.Error(w, "encode AdmissionReview response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
