package checks

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/internal/alerting"
	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/internal/graph"
	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func testSettings() Settings {
	s := SettingsFrom(config.Default())
	s.Interval, s.Window = 10*time.Second, time.Minute
	s.PrometheusURL = "http://prom.example:9090"
	return s
}

func sample(v float64, labels ...string) *model.Sample {
	m := model.Metric{}
	for i := 0; i+1 < len(labels); i += 2 {
		m[model.LabelName(labels[i])] = model.LabelValue(labels[i+1])
	}
	return &model.Sample{Metric: m, Value: model.SampleValue(v)}
}

func meshFrom(t *testing.T, yaml string) *MeshConfig {
	t.Helper()
	objs, problems := manifest.Parse("test.yaml", []byte(yaml))
	require.Empty(t, problems)
	return NewMeshConfig("istio-system", objs, nil)
}

// fakeQuerier answers each signal's query with a canned vector; it counts the queries and
// fails them all while err is set.
type fakeQuerier struct {
	mu      sync.Mutex
	answers map[string]model.Vector // by query text
	err     error
	calls   atomic.Int64
	// ignoreTopk answers a bounded query with every series, as a backend without topk would.
	ignoreTopk bool
}

func newFakeQuerier(s Settings, bySignal map[string]model.Vector) *fakeQuerier {
	q := &fakeQuerier{answers: map[string]model.Vector{}}
	q.set(s, bySignal)
	return q
}

func (q *fakeQuerier) set(s Settings, bySignal map[string]model.Vector) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.answers = map[string]model.Vector{}
	for _, sig := range append(Signals(s), GraphSignals(s.Window, graph.ClusterLabels(s.ClusterLabels))...) {
		v := bySignal[sig.Name]
		q.answers[sig.Query] = v
		// Answered as Prometheus answers topk and count, unless the backend ignores topk.
		if len(v) > s.MaxSeriesPerSignal+1 && !q.ignoreTopk {
			q.answers[boundedQuery(sig.Query, s.MaxSeriesPerSignal)] = highest(append(model.Vector(nil), v...), s.MaxSeriesPerSignal+1)
		} else {
			q.answers[boundedQuery(sig.Query, s.MaxSeriesPerSignal)] = v
		}
		q.answers[countQuery(sig.Query)] = model.Vector{sample(float64(len(v)))}
	}
}

func (q *fakeQuerier) fail(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.err = err
}

func (q *fakeQuerier) Query(_ context.Context, query string, _ time.Time, _ ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error) {
	q.calls.Add(1)
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return nil, nil, nil, q.err
	}
	v, ok := q.answers[query]
	if !ok {
		return nil, nil, nil, errors.New("unexpected query: " + query)
	}
	if v == nil {
		v = model.Vector{}
	}
	return v, nil, nil, nil
}

// failingSource is a ConfigSource that always fails.
type failingSource struct{}

func (failingSource) Load(context.Context) (*MeshConfig, error) {
	return nil, errors.New("apiserver unreachable")
}
func (failingSource) String() string { return "failing source" }

// t0 is the tests' clock start.
var t0 = time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC)

func endpointAt(url string) config.Endpoint { return config.Endpoint{URL: url} }

// metricValue reads a counter or gauge.
func metricValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	require.NoError(t, m.Write(&d))
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// testNotifier sends to eps with short backoffs; it is stopped at the end of the test.
func testNotifier(t *testing.T, eps ...config.Endpoint) *alerting.Notifier {
	t.Helper()
	n, err := alerting.NewNotifier(alerting.NotifierOptions{Alertmanagers: eps, MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 40 * time.Millisecond, Timeout: 2 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = n.Stop(ctx)
	})
	return n
}

// flush stops n once it has delivered what it holds.
func flush(t *testing.T, n *alerting.Notifier) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, n.Stop(ctx))
}
