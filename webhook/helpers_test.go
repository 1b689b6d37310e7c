package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/policies"
)

// testDay is the clock of every test engine, so exception expiry is reproducible.
var testDay = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// testRuleSet compiles a configuration given as YAML ("" for the defaults).
func testRuleSet(t testing.TB, cfgYAML string) *RuleSet {
	t.Helper()
	cfg := config.Default()
	require.NoError(t, config.Parse([]byte(cfgYAML), cfg))
	eng, err := policies.Engine(context.Background(), cfg, nil, func() time.Time { return testDay })
	require.NoError(t, err)
	return NewRuleSet(cfg, eng)
}

// fixture is a webhook over an inventory, with its metrics on a private registry.
type fixture struct {
	rules   *Rules
	cache   *Cache
	metrics *Metrics
	reg     *prometheus.Registry
	handler *Handler
	http    http.Handler
}

func newFixture(t testing.TB, cfgYAML string, inventory ...string) *fixture {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	require.NoError(t, err)
	c := NewCache(logr.Discard(), m)
	for _, doc := range inventory {
		raw, err := DecodeJSON(yamlToJSON(t, doc))
		require.NoError(t, err)
		require.NoError(t, c.Put(raw))
	}
	c.MarkSynced()
	f := &fixture{rules: NewRules(testRuleSet(t, cfgYAML)), cache: c, metrics: m, reg: reg}
	f.handler = &Handler{Rules: f.rules, Inventory: c, Metrics: m, Log: logr.Discard()}
	f.http = NewHTTPHandler(f.handler)
	return f
}

func yamlToJSON(t testing.TB, doc string) []byte {
	t.Helper()
	b, err := yaml.YAMLToJSON([]byte(doc))
	require.NoError(t, err)
	return b
}

// req describes one AdmissionRequest; object and oldObject are YAML.
type req struct {
	op        admissionv1.Operation
	object    string
	oldObject string
	dryRun    bool
	// kind, namespace and name default to the object's.
	kind, namespace, name string
}

func (r req) review(t testing.TB) []byte {
	t.Helper()
	ar := admissionv1.AdmissionRequest{UID: types.UID("uid-" + strings.ToLower(string(r.op))), Operation: r.op,
		Kind: metav1.GroupVersionKind{Kind: r.kind}, Namespace: r.namespace, Name: r.name, DryRun: &r.dryRun}
	ident := func(doc string) {
		var m struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct{ Name, Namespace string }
		}
		require.NoError(t, yaml.Unmarshal([]byte(doc), &m))
		g, v, _ := strings.Cut(m.APIVersion, "/")
		if ar.Kind.Kind == "" {
			ar.Kind = metav1.GroupVersionKind{Group: g, Version: v, Kind: m.Kind}
			// As the API server names it: the kind's plural, in lower case.
			ar.Resource = metav1.GroupVersionResource{Group: g, Version: v, Resource: strings.ToLower(m.Kind) + "s"}
		}
		if ar.Namespace == "" {
			ar.Namespace = m.Metadata.Namespace
		}
		if ar.Name == "" {
			ar.Name = m.Metadata.Name
		}
	}
	if r.object != "" {
		ar.Object = runtime.RawExtension{Raw: yamlToJSON(t, r.object)}
		ident(r.object)
	}
	if r.oldObject != "" {
		ar.OldObject = runtime.RawExtension{Raw: yamlToJSON(t, r.oldObject)}
		ident(r.oldObject)
	}
	b, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  &ar,
	})
	require.NoError(t, err)
	return b
}

// post sends a body to the webhook and decodes the answer.
func (f *fixture) post(t testing.TB, body []byte) (int, *admissionv1.AdmissionResponse) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	f.http.ServeHTTP(w, r)
	var out admissionv1.AdmissionReview
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &out), "answer: %s", w.Body.String())
	require.NotNil(t, out.Response, "answer: %s", w.Body.String())
	return w.Code, out.Response
}

func (f *fixture) send(t testing.TB, r req) *admissionv1.AdmissionResponse {
	t.Helper()
	code, resp := f.post(t, r.review(t))
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, types.UID("uid-"+strings.ToLower(string(r.op))), resp.UID, "the answer must carry the request's UID")
	return resp
}

func (f *fixture) counter(t testing.TB, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	require.NoError(t, err)
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue metrics
				}
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}
