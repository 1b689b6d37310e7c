package checks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/meshguard/meshguard/internal/alerting"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// plaintextSeries returns n plaintext series into distinct workloads of namespace "app", the
// i-th with the value i+1, and the presence of "app" so that nothing else fires.
func plaintextSeries(n int) map[string]model.Vector {
	var v model.Vector
	for i := range n {
		v = append(v, plaintextInto(float64(i+1), "app", fmt.Sprintf("api-%d", i), "api", "legacy", "batch"))
	}
	return map[string]model.Vector{SignalPlaintextRequests: v,
		SignalTelemetryPresence: {sample(1, "destination_workload_namespace", "app")}}
}

func limitedChecker(t *testing.T, s Settings, q Querier, n *alerting.Notifier) (*Checker, *Metrics) {
	t.Helper()
	s.CheckerNamespace = "meshguard"
	m := NewMetrics(prometheus.NewRegistry())
	c, err := New(Options{Settings: s, Querier: q, Config: StaticSource{meshFrom(t, meshStrict)}, Notifier: n,
		Clock: (&clock{now: t0}).Now, Metrics: m})
	require.NoError(t, err)
	return c, m
}

func firingNamed(res *Result, name string) []*alerting.Alert {
	var out []*alerting.Alert
	for _, a := range res.Firing {
		if a.Name() == name {
			out = append(out, a)
		}
	}
	return out
}

func queryOf(res *Result, signal string) QueryResult {
	for _, q := range res.Queries {
		if q.Signal == signal {
			return q
		}
	}
	return QueryResult{}
}

func TestLimits(t *testing.T) {
	signals := len(Signals(testSettings())) // one query each
	tests := []struct {
		name                  string
		maxSeries, maxAlerts  int
		series                int
		ignoreTopk            bool
		wantKept, wantDropped int
		wantAlertsOver        int
		wantQueries           int
		wantFiring            []float64 // figures of the MeshPlaintextTraffic alerts, highest first
	}{
		{name: "a signal at its limit keeps every series and reports nothing",
			maxSeries: 2, maxAlerts: 10, series: 2, wantKept: 2, wantQueries: signals, wantFiring: []float64{2, 1}},
		{name: "one series over the limit keeps the highest and counts the rest with one more query",
			maxSeries: 2, maxAlerts: 10, series: 3, wantKept: 2, wantDropped: 1, wantQueries: signals + 1, wantFiring: []float64{3, 2}},
		{name: "a backend that ignores topk is cut to the limit when decoded",
			maxSeries: 2, maxAlerts: 10, series: 5, ignoreTopk: true, wantKept: 2, wantDropped: 3, wantQueries: signals, wantFiring: []float64{5, 4}},
		{name: "one alert over the limit is not raised and is counted",
			maxSeries: 10, maxAlerts: 2, series: 3, wantKept: 3, wantAlertsOver: 1, wantQueries: signals, wantFiring: []float64{3, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testSettings()
			s.MaxSeriesPerSignal, s.MaxAlertsPerCycle = tt.maxSeries, tt.maxAlerts
			q := &fakeQuerier{ignoreTopk: tt.ignoreTopk}
			q.set(s, plaintextSeries(tt.series))
			c, m := limitedChecker(t, s, q, nil)

			res := c.Cycle(context.Background())
			require.False(t, res.Degraded(), "%v", res.Errors())
			require.EqualValues(t, tt.wantQueries, q.calls.Load())
			got := queryOf(res, SignalPlaintextRequests)
			require.Equal(t, tt.wantKept, got.Series)
			require.Len(t, got.Vector, tt.wantKept)
			require.Equal(t, tt.wantDropped, got.Dropped)
			require.Equal(t, tt.wantAlertsOver, res.AlertsOverLimit)
			var figures []float64
			for _, a := range firingNamed(res, AlertPlaintextTraffic) {
				figures = append(figures, a.Value)
			}
			require.ElementsMatch(t, tt.wantFiring, figures)
			require.Equal(t, float64(tt.wantDropped), metricValue(t, m.SeriesOverLimit.WithLabelValues(SignalPlaintextRequests)))
			require.Equal(t, float64(tt.wantAlertsOver), metricValue(t, m.AlertsOverLimit))

			over := firingNamed(res, AlertCheckerOverLimit)
			var text bytes.Buffer
			require.NoError(t, WriteReport(&text, NewReport(res, s), "text"))
			if tt.wantDropped == 0 && tt.wantAlertsOver == 0 {
				require.Empty(t, over)
				require.NotContains(t, text.String(), "Over check.limits")
				return
			}
			require.Len(t, over, 1)
			require.Equal(t, "meshguard", over[0].Labels[LabelNamespace])
			require.Equal(t, float64(tt.wantDropped+tt.wantAlertsOver), over[0].Value)
			if tt.wantDropped > 0 {
				require.Contains(t, over[0].Annotations["description"],
					fmt.Sprintf("plaintext_requests: %d series over check.limits.maxSeriesPerSignal (%d)", tt.wantDropped, tt.maxSeries))
				require.Contains(t, text.String(),
					fmt.Sprintf("Over check.limits.maxSeriesPerSignal (%d): %d series of plaintext_requests not evaluated.", tt.maxSeries, tt.wantDropped))
			}
			if tt.wantAlertsOver > 0 {
				require.Contains(t, over[0].Annotations["description"],
					fmt.Sprintf("%d new alerts over check.limits.maxAlertsPerCycle (%d) not raised", tt.wantAlertsOver, tt.maxAlerts))
				require.Contains(t, text.String(),
					fmt.Sprintf("Over check.limits.maxAlertsPerCycle (%d): %d alerts not raised.", tt.maxAlerts, tt.wantAlertsOver))
			}
			var js bytes.Buffer
			require.NoError(t, WriteReport(&js, NewReport(res, s), "json"))
			var rep Report
			require.NoError(t, json.Unmarshal(js.Bytes(), &rep))
			require.Equal(t, ReportLimits{MaxSeriesPerSignal: tt.maxSeries, MaxAlertsPerCycle: tt.maxAlerts,
				SeriesOverLimit: tt.wantDropped, AlertsOverLimit: tt.wantAlertsOver}, rep.Limits)
		})
	}
}

func TestSeriesCutOffByTheLimitAreNotResolved(t *testing.T) {
	s := testSettings()
	s.MaxSeriesPerSignal = 2
	clk := &clock{now: t0}
	q := &fakeQuerier{}
	q.set(s, plaintextSeries(2))
	m := NewMetrics(nil)
	c, err := New(Options{Settings: s, Querier: q, Config: StaticSource{meshFrom(t, meshStrict)}, Clock: clk.Now, Metrics: m})
	require.NoError(t, err)
	require.Len(t, firingNamed(c.Cycle(context.Background()), AlertPlaintextTraffic), 2)

	// A third, higher series pushes the lowest one out of the answer: its alert stays firing.
	clk.advance(s.Interval)
	q.set(s, plaintextSeries(3))
	res := c.Cycle(context.Background())
	require.Equal(t, 1, queryOf(res, SignalPlaintextRequests).Dropped)
	firing := firingNamed(res, AlertPlaintextTraffic)
	require.Len(t, firing, 3, "the alert of the series left out is neither resolved nor forgotten")
	for _, a := range res.Sent {
		require.NotEqual(t, alerting.StateInactive, a.State, "nothing is sent as resolved")
	}
}

func TestCriticalAlertsAreKeptFirstWhenOverTheLimit(t *testing.T) {
	s := testSettings()
	s.MaxAlertsPerCycle = 1
	results := plaintextSeries(1)
	results[SignalEnvoyStats] = model.Vector{retryRatio(0.9, "ratings.bookinfo.svc.cluster.local")}
	q := &fakeQuerier{}
	q.set(s, results)
	c, _ := limitedChecker(t, s, q, nil)
	res := c.Cycle(context.Background())
	require.Len(t, firingNamed(res, AlertPlaintextTraffic), 1, "the critical alert is kept")
	require.Empty(t, firingNamed(res, AlertRetryStorm), "the warning, with a higher figure, is left out")
	require.Equal(t, 1, res.AlertsOverLimit)
}

func TestTrackerMakesRoomByForgettingResolutionsAlreadySent(t *testing.T) {
	tr := alerting.NewTracker(0)
	tr.Limit = 1
	alert := func(name string) *alerting.Alert {
		return &alerting.Alert{Labels: map[string]string{alerting.LabelAlertname: name, alerting.LabelSeverity: alerting.SeverityWarning}}
	}
	found, refused := tr.Admit([]*alerting.Alert{alert("A")})
	require.Zero(t, refused)
	tr.Update(t0, "A", found, true)
	tr.Due(t0, time.Minute)

	_, refused = tr.Admit([]*alerting.Alert{alert("A"), alert("B")})
	require.Equal(t, 1, refused, "A is firing: B has no room")

	tr.Update(t0.Add(time.Minute), "A", nil, true)
	_, refused = tr.Admit([]*alerting.Alert{alert("B")})
	require.Equal(t, 1, refused, "A's resolution has not been sent yet: it keeps its place")

	tr.Due(t0.Add(time.Minute), time.Minute)
	found, refused = tr.Admit([]*alerting.Alert{alert("B")})
	require.Zero(t, refused, "A's resolution was sent: B takes its place")
	require.Len(t, found, 1)
}

// TestCycleIsRecordedBeforeItsAlertsAreSent: whoever receives an alert finds it in the
// checker's own result, so a test or an operator following Alertmanager never gets ahead of it.
func TestCycleIsRecordedBeforeItsAlertsAreSent(t *testing.T) {
	s := testSettings()
	var (
		mu      sync.Mutex
		checker *Checker
		seen    []int // firing alerts in Last() when each post arrived
		posted  = make(chan struct{}, 16)
	)
	am := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n := -1
		if last := checker.Last(); last != nil {
			n = len(last.Firing)
		}
		seen = append(seen, n)
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
		posted <- struct{}{}
	}))
	t.Cleanup(am.Close)
	n := testNotifier(t, endpointAt(am.URL))
	q := newFakeQuerier(s, stormResults())
	mu.Lock()
	checker, _ = newTestChecker(t, q, StaticSource{meshFrom(t, meshStrict)}, n, &clock{now: t0})
	mu.Unlock()
	res := checker.Cycle(context.Background())
	require.Len(t, res.Firing, 2)
	<-posted
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 2, seen[0], "the first post arrived when Last() already held both alerts")
}

func TestABackendThatIgnoresTopkIsCutWhileItsAnswerIsRead(t *testing.T) {
	const answer = `{"status":"success","warnings":["w"],"data":{"resultType":"vector","result":[` +
		`{"metric":{"w":"a"},"value":[1,"1"]},{"metric":{"w":"b"},"value":[1,"5"]},{"metric":{"w":"c"},"value":[1,"NaN"]},` +
		`{"metric":{"w":"d"},"value":[1,"3"]},{"metric":{"w":"e"},"value":[1,"4"]}]}}`
	tests := []struct {
		name, query string
		want        []string
	}{
		{name: "a bounded query gets the series with the highest values", query: "topk(2,\nx\n)", want: []string{"b", "e"}},
		{name: "a bound above the answer keeps every series", query: "topk(9,\nx\n)", want: []string{"a", "b", "c", "d", "e"}},
		{name: "an unbounded query is passed untouched", query: "x", want: []string{"a", "b", "c", "d", "e"}},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, answer)
	}))
	t.Cleanup(srv.Close)
	api, err := NewPrometheus(endpointAt(srv.URL), nil)
	require.NoError(t, err)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, warnings, _, err := api.Query(context.Background(), tt.query, t0)
			require.NoError(t, err)
			require.Equal(t, []string{"w"}, []string(warnings), "the rest of the answer is kept")
			var got []string
			for _, s := range v.(model.Vector) {
				got = append(got, string(s.Metric["w"]))
			}
			require.ElementsMatch(t, tt.want, got)
		})
	}
}

func TestRestoreTakesNoMoreAlertsThanTheLimit(t *testing.T) {
	tr := alerting.NewTracker(0)
	tr.Limit = 1
	read := []*alerting.Alert{
		{Labels: map[string]string{alerting.LabelAlertname: AlertRetryStorm, "service": "a"}, ActiveAt: t0},
		{Labels: map[string]string{alerting.LabelAlertname: AlertRetryStorm, "service": "b"}, ActiveAt: t0},
	}
	require.Equal(t, 1, tr.Restore(read))
	require.Len(t, tr.Firing(), 1)
}
