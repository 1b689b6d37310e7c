package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
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

	review, err := s.read(r)
	if err != nil {
		s.h.Metrics.requests.WithLabelValues(kind, op, ResultInvalid).Inc()
		s.h.Log.V(1).Info("malformed admission request", "error", err.Error(), "remote", r.RemoteAddr)
		var uid types.UID
		if review != nil && review.Request != nil {
			uid = review.Request.UID
		}
		writeReview(w, http.StatusBadRequest, "", &admissionv1.AdmissionResponse{
			UID:    uid,
			Result: &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusBadRequest, Reason: metav1.StatusReasonBadRequest, Message: err.Error()},
		})
		return
	}
	req := &review.Request.AdmissionRequest
	kind, op = kindLabel(req.Kind.Kind), operationLabel(string(req.Operation))
	ctx := r.Context()
	if review.Request.Object != nil {
		ctx = withObject(ctx, review.Request.Object)
	}
	resp := s.wh.Handle(ctx, admission.Request{AdmissionRequest: *req})
	writeReview(w, http.StatusOK, review.APIVersion, &resp.AdmissionResponse)
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
// JSON name wins, as in encoding/json).
type requestEnvelope struct {
	admissionv1.AdmissionRequest
	Object    admissionObject `json:"object,omitempty"`
	OldObject skipped         `json:"oldObject,omitempty"`
}

// skipped decodes any JSON object by reading past it.
type skipped struct{}

// read checks and decodes the request. On a decode error after the UID was read, it returns
// what it has so the answer can carry the UID.
func (s *httpHandler) read(r *http.Request) (*reviewEnvelope, error) {
	if r.Method != http.MethodPost {
		return nil, fmt.Errorf("method %s: an AdmissionReview is POSTed", r.Method)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, fmt.Errorf("content type %q: want application/json", r.Header.Get("Content-Type"))
	}
	limit := s.h.Rules.Load().Config.Webhook.MaxRequestBytes
	if limit <= 0 {
		limit = 3 << 20
	}
	if r.ContentLength > limit {
		return nil, fmt.Errorf("request body of %d bytes is over the limit of %d bytes (webhook.maxRequestBytes)", r.ContentLength, limit)
	}
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
	if review.Request != nil && review.Request.Object != nil {
		prepareObject(review.Request.Object)
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
