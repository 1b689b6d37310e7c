package checks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/internal/alerting"
	"github.com/meshguard/meshguard/test/harness"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// stormResults is a cycle's answers with one retry storm and plaintext into a STRICT workload.
func stormResults() map[string]model.Vector {
	return map[string]model.Vector{
		SignalEnvoyStats:        {retryRatio(0.3, "ratings.bookinfo.svc.cluster.local")},
		SignalPlaintextRequests: {plaintextInto(2, "bookinfo", "reviews-v1", "reviews", "legacy", "legacy-client")},
		SignalTelemetryPresence: {sample(1, "destination_workload_namespace", "bookinfo")},
	}
}

type clock struct{ now time.Time }

func (c *clock) Now() time.Time          { return c.now }
func (c *clock) advance(d time.Duration) { c.now = c.now.Add(d) }

func newTestChecker(t *testing.T, q Querier, src ConfigSource, n *alerting.Notifier, clk *clock) (*Checker, *Metrics) {
	t.Helper()
	s := testSettings()
	s.ExtraLabels = map[string]string{"cluster": "prod"}
	s.CheckerNamespace = "meshguard"
	m := NewMetrics(prometheus.NewRegistry())
	c, err := New(Options{Settings: s, Querier: q, Config: src, Notifier: n, Clock: clk.Now, Metrics: m})
	require.NoError(t, err)
	return c, m
}

func TestTheCallChainsAreAskedOncePerWindow(t *testing.T) {
	s := testSettings()
	q := newFakeQuerier(s, stormResults())
	clk := &clock{now: t0}
	c, _ := newTestChecker(t, q, StaticSource{meshFrom(t, meshStrict)}, nil, clk)
	every := int64(len(Signals(s)))

	reused := func(res *Result) []string {
		var out []string
		for _, r := range res.Queries {
			if r.Reused {
				out = append(out, r.Signal)
			}
		}
		return out
	}
	require.Empty(t, reused(c.Cycle(context.Background())))
	require.Equal(t, every, q.calls.Load(), "the first cycle asks every signal")

	clk.advance(s.Window - time.Second)
	require.Equal(t, []string{SignalCallChains}, reused(c.Cycle(context.Background())))
	require.Equal(t, 2*every-1, q.calls.Load(), "within the window the call chains are not asked again")

	clk.advance(time.Second)
	require.Empty(t, reused(c.Cycle(context.Background())))
	require.Equal(t, 3*every-1, q.calls.Load(), "a window later they are")

	t.Run("a failed answer is not reused", func(t *testing.T) {
		q.fail(errors.New("prometheus down"))
		clk.advance(s.Window)
		require.True(t, c.Cycle(context.Background()).Degraded())
		q.fail(nil)
		clk.advance(time.Second)
		require.Empty(t, reused(c.Cycle(context.Background())), "the answer of the last cycle was an error: it is asked again")
	})
}

func TestCheckerCycle(t *testing.T) {
	s := testSettings()
	q := newFakeQuerier(s, stormResults())
	clk := &clock{now: t0}
	c, m := newTestChecker(t, q, StaticSource{meshFrom(t, meshStrict)}, nil, clk)

	res := c.Cycle(context.Background())
	require.False(t, res.Degraded())
	require.Len(t, res.Firing, 2)
	require.Len(t, res.Sent, 2)
	require.EqualValues(t, len(Signals(s)), q.calls.Load(), "one query per signal")

	storm := res.Firing[1]
	require.Equal(t, AlertRetryStorm, storm.Name())
	require.Equal(t, map[string]string{"alertname": "MeshRetryStorm", "severity": "warning", "rule": "retry-storm",
		"namespace": "bookinfo", "service": "ratings", "destination_service": "ratings.bookinfo.svc.cluster.local",
		"cluster": "prod"}, storm.Labels)
	require.Equal(t, "https://github.com/meshguard/meshguard/blob/main/docs/runbooks.md#meshretrystorm", storm.Annotations["runbook_url"])
	require.Contains(t, storm.Annotations["description"], "30.00%")
	require.Contains(t, storm.Annotations["description"], "threshold 5.00%")
	u, err := url.Parse(storm.GeneratorURL)
	require.NoError(t, err)
	require.Equal(t, "/graph", u.Path)
	require.Equal(t, "1", u.Query().Get("g0.tab"))
	require.Contains(t, u.Query().Get("g0.expr"), "envoy_cluster_upstream_rq_retry")
	require.Equal(t, 0.3, storm.Value)
	require.Equal(t, 1.0, metricValue(t, m.AlertsFiring.WithLabelValues(AlertRetryStorm)))
	require.NoError(t, c.Ready())

	// The storm stops: the next cycle resolves it and sends it once with EndsAt = now.
	clk.advance(s.Interval)
	results := stormResults()
	delete(results, SignalEnvoyStats)
	q.set(s, results)
	res = c.Cycle(context.Background())
	require.Len(t, res.Firing, 1)
	var resolved *alerting.Alert
	for _, a := range res.Sent {
		if a.Name() == AlertRetryStorm {
			resolved = a
		}
	}
	require.NotNil(t, resolved)
	require.Equal(t, clk.now, resolved.EndsAt())
}

func TestCheckerNeverResolvesOnMissingData(t *testing.T) {
	s := testSettings()
	q := newFakeQuerier(s, stormResults())
	clk := &clock{now: t0}
	c, m := newTestChecker(t, q, StaticSource{meshFrom(t, meshStrict)}, nil, clk)
	require.Len(t, c.Cycle(context.Background()).Firing, 2)

	q.fail(errors.New("connection refused"))
	for range 3 {
		clk.advance(s.Interval)
		res := c.Cycle(context.Background())
		require.True(t, res.Degraded())
		names := map[string]bool{}
		for _, a := range res.Firing {
			names[a.Name()] = true
		}
		require.Equal(t, map[string]bool{AlertRetryStorm: true, AlertPlaintextTraffic: true, AlertCheckerDegraded: true}, names)
		for _, a := range res.Sent {
			require.Equal(t, alerting.StateFiring, a.State, "%s must not be resolved", a.Name())
			require.Equal(t, clk.now.Add(4*s.Interval), a.EndsAt(), "kept alive in Alertmanager")
		}
	}
	deg := c.tracker.Firing()[0]
	require.Equal(t, AlertCheckerDegraded, deg.Name())
	require.Equal(t, "meshguard", deg.Labels[LabelNamespace])
	require.Contains(t, deg.Annotations["description"], "connection refused")
	require.ErrorContains(t, c.Ready(), "degraded")
	require.Equal(t, 1.0, metricValue(t, m.Degraded))
	require.Equal(t, 3.0, metricValue(t, m.Queries.WithLabelValues(SignalEnvoyStats, "error")))

	// Prometheus is back and the storm is over. The degradation resolves at once, but the
	// storm only once a whole window has been seen since the outage: the hole in the data
	// must not resolve it.
	q.fail(nil)
	results := stormResults()
	delete(results, SignalEnvoyStats)
	q.set(s, results)
	resolvedIn := func(res *Result) []string {
		var out []string
		for _, a := range res.Sent {
			if a.State == alerting.StateInactive {
				out = append(out, a.Name())
			}
		}
		return out
	}
	clk.advance(s.Interval)
	res := c.Cycle(context.Background())
	require.False(t, res.Degraded())
	require.Contains(t, res.Recovering, SignalEnvoyStats)
	require.Equal(t, []string{AlertCheckerDegraded}, resolvedIn(res))
	require.NoError(t, c.Ready())

	clk.advance(s.Window)
	res = c.Cycle(context.Background())
	require.Empty(t, res.Recovering)
	require.Equal(t, []string{AlertRetryStorm}, resolvedIn(res))
}

func TestAbsenceIsNotAlertedWhileTheDataHasAHole(t *testing.T) {
	s := testSettings()
	const quiet = meshStrict + `
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: quiet}
spec: {mtls: {mode: STRICT}}
`
	q := newFakeQuerier(s, nil)
	clk := &clock{now: t0}
	c, _ := newTestChecker(t, q, StaticSource{meshFrom(t, quiet)}, nil, clk)
	q.fail(errors.New("down"))
	c.Cycle(context.Background())
	q.fail(nil)
	clk.advance(s.Interval)
	require.Empty(t, c.Cycle(context.Background()).Firing, "right after an outage, no series is no evidence")
	clk.advance(s.Window)
	res := c.Cycle(context.Background())
	require.Len(t, res.Firing, 1)
	require.Equal(t, AlertTelemetryBlind, res.Firing[0].Name())
}

func TestCheckerWithoutConfigurationKeepsConfigAlerts(t *testing.T) {
	s := testSettings()
	q := newFakeQuerier(s, nil)
	c, _ := newTestChecker(t, q, failingSource{}, nil, &clock{now: t0})
	res := c.Cycle(context.Background())
	require.True(t, res.Degraded())
	require.ErrorContains(t, res.ConfigErr, "apiserver unreachable")
	require.Len(t, res.Firing, 1)
	require.Equal(t, AlertCheckerDegraded, res.Firing[0].Name())
	require.Contains(t, res.Firing[0].Annotations["failed_signals"], "mesh configuration")
}

func TestQueriesPerCycleDoNotGrowWithServices(t *testing.T) {
	s := testSettings()
	// Within the limits: over them, a signal costs one more query (TestLimits).
	s.MaxSeriesPerSignal, s.MaxAlertsPerCycle = 10000, 20000
	for _, n := range []int{10, 1000, 10000} {
		t.Run(fmt.Sprintf("%d destination services", n), func(t *testing.T) {
			var storms, plain model.Vector
			for i := range n {
				storms = append(storms, retryRatio(0.2, fmt.Sprintf("svc-%05d.mesh-%03d.svc.cluster.local", i, i/100)))
				plain = append(plain, plaintextInto(1, fmt.Sprintf("mesh-%03d", i/100), fmt.Sprintf("svc-%05d-v1", i), "a", "x", "y"))
			}
			q := newFakeQuerier(s, map[string]model.Vector{SignalEnvoyStats: storms, SignalPlaintextRequests: plain})
			c, _ := limitedChecker(t, s, q, nil)
			start := time.Now()
			res := c.Cycle(context.Background())
			t.Logf("%d services: %d queries, %d alerts firing, cycle %s", n, q.calls.Load(), len(res.Firing), time.Since(start))
			require.EqualValues(t, len(Signals(s)), q.calls.Load())
			require.Len(t, res.Firing, 2*n)
		})
	}
}

func TestCheckerSendsToAlertmanagerAndRestores(t *testing.T) {
	s := testSettings()
	am := harness.NewAlertmanagerStub(t)
	n := testNotifier(t, endpointAt(am.URL()))
	q := newFakeQuerier(s, stormResults())
	clk := &clock{now: time.Now().Truncate(time.Second)}
	c, _ := newTestChecker(t, q, StaticSource{meshFrom(t, meshStrict)}, n, clk)
	c.Cycle(context.Background())
	require.Eventually(t, func() bool { return len(am.Received()) == 2 }, 5*time.Second, 10*time.Millisecond)
	firstStart := am.Received()[0].StartsAt

	// A restarted checker reads the firing alerts back: same start time, and the storm that
	// ended while it was down is resolved at its first cycle.
	n2 := testNotifier(t, endpointAt(am.URL()))
	clk2 := &clock{now: clk.now.Add(time.Minute)}
	c2, _ := newTestChecker(t, q, StaticSource{meshFrom(t, meshStrict)}, n2, clk2)
	restored, err := c2.Restore(context.Background())
	require.NoError(t, err)
	require.Equal(t, 2, restored)
	results := stormResults()
	delete(results, SignalEnvoyStats)
	q.set(s, results)
	res := c2.Cycle(context.Background())
	require.Len(t, res.Firing, 1)
	require.True(t, firstStart.Equal(res.Firing[0].StartsAt()), "no new start time after a restart")
	require.Eventually(t, func() bool { return len(am.Received()) == 4 }, 5*time.Second, 10*time.Millisecond)
	last := am.Received()[2:]
	for _, a := range last {
		if a.Labels[alerting.LabelAlertname] == AlertRetryStorm {
			require.True(t, clk2.now.Equal(a.EndsAt), "resolved at the first cycle after the restart")
		}
	}
}

func TestHandler(t *testing.T) {
	s := testSettings()
	q := newFakeQuerier(s, stormResults())
	reg := prometheus.NewRegistry()
	c, err := New(Options{Settings: s, Querier: q, Config: StaticSource{meshFrom(t, meshStrict)}, Metrics: NewMetrics(reg)})
	require.NoError(t, err)
	h := Handler(c, reg)
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	code, _ := get("/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code, "not ready before the first cycle")
	c.Cycle(context.Background())
	code, _ = get("/readyz")
	require.Equal(t, http.StatusOK, code)
	code, _ = get("/healthz")
	require.Equal(t, http.StatusOK, code)
	code, body := get("/metrics")
	require.Equal(t, http.StatusOK, code)
	for _, want := range []string{"meshguard_check_cycle_duration_seconds", `meshguard_check_queries_total{result="success",signal="envoy_cluster_stats"} 1`,
		`meshguard_check_alerts_firing{alertname="MeshRetryStorm"} 1`, "meshguard_check_degraded 0",
		// No outbound cluster exports Envoy's stats in these answers: /metrics says so.
		"meshguard_check_envoy_cluster_stats_outbound_clusters 0"} {
		require.Contains(t, body, want)
	}
	q.fail(errors.New("down"))
	c.Cycle(context.Background())
	code, body = get("/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, "down")
}

func TestReportFormats(t *testing.T) {
	s := testSettings()
	c, _ := newTestChecker(t, newFakeQuerier(s, stormResults()), StaticSource{meshFrom(t, meshStrict)}, nil, &clock{now: t0})
	rep := NewReport(c.Cycle(context.Background()), s)
	tests := []struct {
		name   string
		format string
		check  func(t *testing.T, out string)
	}{
		{name: "json lists each firing alert with labels, annotations and figure", format: "json", check: func(t *testing.T, out string) {
			var got Report
			require.NoError(t, json.Unmarshal([]byte(out), &got))
			require.Len(t, got.Firing, 2)
			require.Equal(t, AlertPlaintextTraffic, got.Firing[0].Labels["alertname"])
			require.Equal(t, 2.0, got.Firing[0].Figure)
			require.NotEmpty(t, got.Firing[0].Annotations["description"])
			require.Len(t, got.Queries, len(Signals(s)))
		}},
		{name: "text is a table with a summary line", format: "text", check: func(t *testing.T, out string) {
			require.Contains(t, out, "ALERT")
			require.Contains(t, out, "MeshRetryStorm")
			require.Contains(t, out, "2 alerts firing (1 critical, 1 warning)")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			require.NoError(t, WriteReport(&b, rep, tc.format))
			tc.check(t, b.String())
		})
	}
	require.ErrorContains(t, WriteReport(&bytes.Buffer{}, rep, "yaml"), `"yaml"`)
	var b bytes.Buffer
	require.NoError(t, WriteReport(&b, &Report{Window: "5m"}, "text"))
	require.True(t, strings.HasPrefix(b.String(), "No alerts"))
}

func TestCheckerUnattributedFindings(t *testing.T) {
	s := testSettings()
	results := stormResults()
	// Timeouts to a PassthroughCluster destination: Istio knows no namespace for it.
	results[SignalRequestOutcomes] = model.Vector{outcome(0.5, OutcomeUpstreamTimeout, "source", "dl-cdn.alpinelinux.org", "PassthroughCluster", "unknown"),
		outcome(0.5, OutcomeUpstreamTimeout, "source", "cart.shop.svc.cluster.local", "cart", "shop")}
	results[SignalEnvoyStats] = append(results[SignalEnvoyStats], sample(12, labelStat, statClusters))
	q := newFakeQuerier(s, results)
	c, m := newTestChecker(t, q, StaticSource{meshFrom(t, meshStrict)}, nil, &clock{now: t0})

	res := c.Cycle(context.Background())
	var timeouts []string
	for _, a := range res.Firing {
		if a.Name() == AlertUpstreamTimeouts {
			timeouts = append(timeouts, a.Labels["service"])
			require.Equal(t, "prod", a.Labels[LabelCluster], "the cluster the user named in extraLabels stays, so restore finds the alert")
		}
	}
	require.Equal(t, []string{"cart"}, timeouts, "the attributable service alerts, the PassthroughCluster call does not")
	require.Equal(t, map[string]int{AlertUpstreamTimeouts: 1}, res.Unattributed)
	require.Equal(t, 1.0, metricValue(t, m.Unattributed.WithLabelValues(AlertUpstreamTimeouts)))
	require.Equal(t, &EnvoyStats{OutboundClusters: 12}, res.EnvoyStats)
	require.Equal(t, 12.0, metricValue(t, m.EnvoyOutboundClusters))

	var b bytes.Buffer
	require.NoError(t, WriteReport(&b, NewReport(res, s), "text"))
	require.Contains(t, b.String(), "1 MeshUpstreamTimeouts findings not raised")
	require.NotContains(t, b.String(), "proxyStatsMatcher", "Envoy's stats are exported: nothing to say about them")
}

// TestCheckerMaySend: a follower evaluates but neither sends nor marks alerts sent, so that when
// it starts sending every alert it holds goes out.
func TestCheckerMaySend(t *testing.T) {
	s := testSettings()
	am := harness.NewAlertmanagerStub(t)
	n := testNotifier(t, endpointAt(am.URL()))
	clk := &clock{now: t0}
	var may bool
	c, err := New(Options{Settings: s, Querier: newFakeQuerier(s, stormResults()), Config: StaticSource{meshFrom(t, meshStrict)},
		Notifier: n, Clock: clk.Now, MaySend: func() bool { return may }})
	require.NoError(t, err)
	res := c.Cycle(context.Background())
	require.Len(t, res.Firing, 2)
	require.Empty(t, res.Sent)
	may = true
	clk.advance(s.Interval)
	res = c.Cycle(context.Background())
	require.Len(t, res.Sent, 2)
	require.Equal(t, t0, res.Sent[0].StartsAt(), "first seen while following")
	flush(t, n)
	require.Len(t, am.Received(), 2)
}

// TestCheckerRestoresOnlyWhatItWatches: a checker narrowed to some namespaces leaves the alerts
// of the others in Alertmanager alone instead of resolving them.
func TestCheckerRestoresOnlyWhatItWatches(t *testing.T) {
	s := testSettings()
	am := harness.NewAlertmanagerStub(t)
	n := testNotifier(t, endpointAt(am.URL()))
	q := newFakeQuerier(s, stormResults())
	clk := &clock{now: time.Now().Truncate(time.Second)}
	c, _ := newTestChecker(t, q, StaticSource{meshFrom(t, meshStrict)}, n, clk)
	c.Cycle(context.Background())
	require.Eventually(t, func() bool { return len(am.Received()) == 2 }, 5*time.Second, 10*time.Millisecond)

	narrow := testSettings()
	narrow.Include, narrow.ExtraLabels, narrow.CheckerNamespace = []string{"shop"}, map[string]string{"cluster": "prod"}, "meshguard"
	n2 := testNotifier(t, endpointAt(am.URL()))
	c2, err := New(Options{Settings: narrow, Querier: newFakeQuerier(narrow, nil), Config: StaticSource{meshFrom(t, meshStrict)}, Notifier: n2})
	require.NoError(t, err)
	restored, err := c2.Restore(context.Background())
	require.NoError(t, err)
	require.Zero(t, restored, "both alerts are in bookinfo, which this checker does not watch")
	res := c2.Cycle(context.Background())
	for _, a := range res.Sent {
		require.NotEqual(t, "bookinfo", a.Labels[LabelNamespace], "nothing of bookinfo is resolved: %v", a.Labels)
	}
}
