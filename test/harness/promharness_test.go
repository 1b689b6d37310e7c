package harness_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-openapi/strfmt"
	amalert "github.com/prometheus/alertmanager/api/v2/client/alert"
	amsilence "github.com/prometheus/alertmanager/api/v2/client/silence"
	ammodels "github.com/prometheus/alertmanager/api/v2/models"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/test/harness"
	"github.com/meshguard/meshguard/test/meshsim"
)

// promTestTimeout bounds each wait in these tests; generous because the machines are busy.
const promTestTimeout = 60 * time.Second

func TestProcessLifecycle(t *testing.T) {
	sh := harness.LookupBinary(t, "SH_BIN", "sh")
	tests := []struct {
		name        string
		script      string
		stopTimeout time.Duration
		wantStopErr string // "" for a clean stop
		wantLog     string
	}{
		{name: "SIGTERM stops it", script: `echo started; exec sleep 60`, wantLog: "started"},
		{name: "SIGKILL after the stop timeout", script: `trap "" TERM; echo ignoring; while :; do sleep 0.1; done`,
			stopTimeout: 500 * time.Millisecond, wantStopErr: "killed", wantLog: "ignoring"},
		{name: "exit on its own with a failure", script: `echo dying >&2; exit 3`, wantStopErr: "had already exited", wantLog: "dying"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := harness.NewProcess(t, "sh", sh, "-c", tc.script)
			p.StopTimeout = tc.stopTimeout
			require.NoError(t, p.Start())
			// Match whole lines: the harness's own run marker quotes the script, wantLog included.
			require.Eventually(t, func() bool { return promCountLines(p.LogTail(50), tc.wantLog) == 1 },
				10*time.Second, 20*time.Millisecond, "log %s never showed %q", p.LogPath(), tc.wantLog)

			if strings.Contains(tc.wantStopErr, "already exited") {
				// The log line comes before the exit; wait for the exit itself, or Stop races it.
				require.Eventually(t, func() bool { return !p.Running() }, 10*time.Second, 10*time.Millisecond)
			}
			begin := time.Now()
			err := p.Stop()
			if tc.wantStopErr == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tc.wantStopErr)
			}
			require.Less(t, time.Since(begin), tc.stopTimeout+harness.DefaultStopTimeout, "stop must be bounded")
			require.False(t, p.Running())
			require.NoError(t, p.Stop(), "a second stop is a no-op")
		})
	}

	t.Run("restart runs the same command again and appends to the log", func(t *testing.T) {
		p := harness.StartProcess(t, "sh", sh, "-c", `echo "run $$"; exec sleep 60`)
		first := p.Pid()
		require.NotZero(t, first)
		require.Error(t, p.Start(), "starting a running process must fail")
		// Let the first run write its line, or SIGTERM could beat the echo.
		require.Eventually(t, func() bool { return promCountLines(p.LogTail(20), "run ") == 1 },
			10*time.Second, 20*time.Millisecond, "log:\n%s", p.LogTail(20))
		require.NoError(t, p.Restart())
		second := p.Pid()
		require.NotZero(t, second)
		require.NotEqual(t, first, second)
		// The first process is gone, not orphaned.
		require.Error(t, syscall.Kill(first, 0), "pid %d still exists after restart", first)
		require.Eventually(t, func() bool { return promCountLines(p.LogTail(20), "run ") == 2 },
			10*time.Second, 20*time.Millisecond, "log:\n%s", p.LogTail(20))
	})

	t.Run("WaitHTTP fails fast with the log when the process dies", func(t *testing.T) {
		p := harness.StartProcess(t, "sh", sh, "-c", `echo "fatal: bad flag" >&2; exit 1`)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		begin := time.Now()
		err := p.WaitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/-/ready", harness.FreePort(t)))
		require.ErrorContains(t, err, "process exited")
		require.ErrorContains(t, err, "fatal: bad flag")
		require.Less(t, time.Since(begin), 10*time.Second)
	})
}

func TestFreePort(t *testing.T) {
	port := harness.FreePort(t)
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	require.NoError(t, err, "FreePort's port must be bindable")
	require.NoError(t, l.Close())
}

// TestPrometheusScrapesMeshsim runs Prometheus against a live meshsim exporter and checks that
// queries see its series with Istio's labels and rising counters.
func TestPrometheusScrapesMeshsim(t *testing.T) {
	plaintext := meshsim.Flow{
		Source:      meshsim.Workload{Name: "legacy-client", Namespace: "legacy"},
		Destination: meshsim.Workload{Name: "reviews-v1", Namespace: "bookinfo", App: "reviews"},
		Rate:        20, Plaintext: true,
	}
	secure := meshsim.Flow{
		Source:      meshsim.Workload{Name: "productpage-v1", Namespace: "bookinfo", App: "productpage"},
		Destination: meshsim.Workload{Name: "reviews-v1", Namespace: "bookinfo", App: "reviews"},
		Rate:        20, RetryShare: 0.25,
	}
	exp, err := meshsim.NewExporter(meshsim.Options{}, plaintext, secure)
	require.NoError(t, err)
	target := httptest.NewServer(exp)
	t.Cleanup(target.Close)

	begin := time.Now()
	prom := harness.StartPrometheus(t, harness.PrometheusOptions{
		ScrapeTargets: []string{strings.TrimPrefix(target.URL, "http://")},
	})
	t.Logf("prometheus ready after %s at %s", time.Since(begin).Round(time.Millisecond), prom.URL())

	tests := []struct {
		name  string
		query string
		ok    func(float64) bool
	}{
		{"target is up", `up{job="meshsim"}`, func(v float64) bool { return v == 1 }},
		{"plaintext is seen on the destination side",
			`sum(rate(istio_requests_total{reporter="destination",connection_security_policy="none",source_workload="legacy-client"}[5s]))`,
			func(v float64) bool { return v > 0 }},
		{"source side reports unknown security policy",
			`count(istio_requests_total{reporter="source",connection_security_policy!="unknown"}) or vector(0)`,
			func(v float64) bool { return v == 0 }},
		{"envoy retry counters rise for the outbound cluster",
			`sum(rate(envoy_cluster_upstream_rq_retry{cluster_name="outbound|9080||reviews.bookinfo.svc.cluster.local"}[5s]))`,
			func(v float64) bool { return v > 0 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), promTestTimeout)
			defer cancel()
			v, err := prom.AwaitQuery(ctx, tc.query, func(v model.Value) bool {
				f, ok := promScalar(v)
				return ok && tc.ok(f)
			})
			require.NoError(t, err)
			t.Logf("%s = %v after %s", tc.query, v, time.Since(begin).Round(time.Millisecond))
		})
	}

	t.Run("a removed flow stops rising", func(t *testing.T) {
		require.NoError(t, exp.Remove(plaintext.Key()))
		ctx, cancel := context.WithTimeout(context.Background(), promTestTimeout)
		defer cancel()
		_, err := prom.AwaitQuery(ctx,
			`sum(rate(istio_requests_total{reporter="destination",source_workload="legacy-client"}[3s]))`,
			func(v model.Value) bool { f, ok := promScalar(v); return ok && f == 0 })
		require.NoError(t, err)
	})

	t.Run("restart keeps the port and the data", func(t *testing.T) {
		require.NoError(t, prom.Stop())
		_, err := http.Get(prom.URL() + "/-/ready")
		require.Error(t, err, "prometheus still answers after Stop")
		begin := time.Now()
		require.NoError(t, prom.Start())
		t.Logf("prometheus restarted in %s", time.Since(begin).Round(time.Millisecond))
		ctx, cancel := context.WithTimeout(context.Background(), promTestTimeout)
		defer cancel()
		// Samples scraped before the restart come back from the WAL.
		_, err = prom.AwaitQuery(ctx, fmt.Sprintf(`count_over_time(up{job="meshsim"}[%ds])`, int(time.Since(begin).Seconds())+60),
			func(v model.Value) bool { f, ok := promScalar(v); return ok && f >= 3 })
		require.NoError(t, err)
	})
}

// TestPrometheusBackfill backfills fixed data with promtool and checks exact query results at
// fixed times, before and after a restart.
func TestPrometheusBackfill(t *testing.T) {
	// A fixed date far in the past: the result must not depend on when the test runs, and only
	// the 100y retention keeps it from being deleted at startup.
	start := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	span := meshsim.Span{Start: start, End: start.Add(2 * time.Hour), Step: 15 * time.Second}
	flows := []meshsim.Flow{
		{
			Source:      meshsim.Workload{Name: "reviews-v2", Namespace: "bookinfo", App: "reviews", Version: "v2"},
			Destination: meshsim.Workload{Name: "ratings-v1", Namespace: "bookinfo", App: "ratings"},
			Rate:        8, RetryShare: 0.2, URXShare: 0.125, TimeoutShare: 0.25,
		},
		{
			Source:      meshsim.Workload{Name: "legacy-client", Namespace: "legacy"},
			Destination: meshsim.Workload{Name: "ratings-v1", Namespace: "bookinfo", App: "ratings"},
			Rate:        2, Plaintext: true,
		},
	}
	om, err := meshsim.RenderOpenMetrics(flows, span, meshsim.Options{})
	require.NoError(t, err)
	handwritten := fmt.Sprintf("# HELP room_temperature_celsius A gauge.\n# TYPE room_temperature_celsius gauge\n"+
		"room_temperature_celsius{room=\"a\"} 21.5 %d\nroom_temperature_celsius{room=\"a\"} 22.25 %d\n# EOF\n",
		start.Unix(), start.Add(time.Minute).Unix())

	// Both inputs in one data dir: promtool adds blocks to an existing directory.
	dataDir := harness.Backfill(t, om)
	require.NoError(t, harness.PromBackfillFile(t, promWriteTemp(t, handwritten), dataDir))

	begin := time.Now()
	prom := harness.StartPrometheus(t, harness.PrometheusOptions{DataDir: dataDir})
	t.Logf("prometheus with %d bytes of backfill ready after %s", len(om), time.Since(begin).Round(time.Millisecond))

	at := start.Add(2 * time.Hour) // 7200 s after the counters started at 0
	tests := []struct {
		name  string
		query string
		at    time.Time
		want  float64
	}{
		{"handwritten gauge at its first sample", `room_temperature_celsius{room="a"}`, start, 21.5},
		{"handwritten gauge holds its last value", `room_temperature_celsius{room="a"}`, start.Add(90 * time.Second), 22.25},
		{"counter value is rate × elapsed", `sum(istio_requests_total{reporter="source",source_workload="reviews-v2"})`, at, 8 * 7200},
		{"increase over 10m is exact (samples on both window edges)",
			`sum(increase(istio_requests_total{reporter="source",source_workload="reviews-v2"}[10m]))`, at, 8 * 600},
		{"UT share on the source side",
			`sum(rate(istio_requests_total{reporter="source",source_workload="reviews-v2",response_flags="UT"}[5m])) / sum(rate(istio_requests_total{reporter="source",source_workload="reviews-v2"}[5m]))`,
			at, 0.25},
		{"URX share on the source side",
			`sum(rate(istio_requests_total{reporter="source",source_workload="reviews-v2",response_flags="URX"}[5m])) / sum(rate(istio_requests_total{reporter="source",source_workload="reviews-v2"}[5m]))`,
			at, 0.125},
		{"server side of timeouts is DC",
			`sum(rate(istio_requests_total{reporter="destination",response_flags="DC",response_code="0"}[5m]))`, at, 2},
		{"envoy retry share on outbound clusters",
			`sum(rate(envoy_cluster_upstream_rq_retry{namespace="bookinfo",cluster_name=~"outbound\\|.*"}[5m])) / sum(rate(envoy_cluster_upstream_rq_total{namespace="bookinfo",cluster_name=~"outbound\\|.*"}[5m]))`,
			at, 0.2},
		{"plaintext rate into ratings",
			`sum(rate(istio_requests_total{reporter="destination",destination_workload="ratings-v1",connection_security_policy!="mutual_tls"}[5m]))`,
			at, 2},
		{"histogram median of answered requests falls in the 10ms bucket",
			`histogram_quantile(0.5, sum by (le) (rate(istio_request_duration_milliseconds_bucket{reporter="source",response_flags="-"}[5m])))`,
			at, 5 + 5*0.5},
	}
	run := func(t *testing.T) {
		api := prom.API()
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), promTestTimeout)
				defer cancel()
				v, warnings, _, err := api.Query(ctx, tc.query, tc.at)
				require.NoError(t, err)
				require.Empty(t, warnings)
				got, ok := promScalar(v)
				require.True(t, ok, "query %s at %s returned %v", tc.query, tc.at, v)
				require.InDelta(t, tc.want, got, 1e-9, "query %s at %s", tc.query, tc.at)
			})
		}
	}
	run(t)

	require.NoError(t, prom.Stop())
	begin = time.Now()
	require.NoError(t, prom.Start())
	t.Logf("prometheus restarted on the backfilled data in %s", time.Since(begin).Round(time.Millisecond))
	t.Run("after restart", run)
}

func TestBackfillRejectsInvalidInput(t *testing.T) {
	tests := []struct {
		name, input, wantErr string
	}{
		{"missing EOF", "# TYPE x gauge\nx 1 1700000000\n", "EOF"},
		{"no samples", "# EOF\n", "no blocks"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := harness.PromBackfillFile(t, promWriteTemp(t, tc.input), filepath.Join(t.TempDir(), "data"))
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

// TestAlertmanagerWebhook posts alerts with the v2 client the checker uses and checks that the
// receiver gets each one firing, then resolved.
func TestAlertmanagerWebhook(t *testing.T) {
	recv := harness.NewAlertReceiver(t)
	am := harness.StartAlertmanager(t, harness.AlertmanagerOptions{WebhookURL: recv.URL()})
	client := am.Client()

	alerts := []struct {
		labels      map[string]string
		annotations map[string]string
	}{
		{
			labels: map[string]string{"alertname": "MeshPlaintextTraffic", "severity": "critical", "namespace": "bookinfo",
				"destination_workload": "reviews-v1", "source_workload": "legacy-client", "rule": "runtime/plaintext"},
			annotations: map[string]string{"summary": "plaintext into reviews-v1", "description": "2 req/s > 0",
				"runbook_url": "https://meshguard.example/runbooks/plaintext"},
		},
		{
			labels:      map[string]string{"alertname": "MeshRetryStorm", "severity": "warning", "namespace": "bookinfo", "destination_service": "ratings", "rule": "runtime/retries"},
			annotations: map[string]string{"summary": "retry storm on ratings", "description": "30% > 5%"},
		},
	}
	const generatorURL = "http://prometheus.example/graph?g0.expr=up"
	post := func(endsAt time.Time) {
		t.Helper()
		var payload ammodels.PostableAlerts
		for _, a := range alerts {
			payload = append(payload, &ammodels.PostableAlert{
				Alert:       ammodels.Alert{Labels: a.labels, GeneratorURL: strfmt.URI(generatorURL)},
				Annotations: a.annotations,
				StartsAt:    strfmt.DateTime(time.Now().Add(-time.Minute)),
				EndsAt:      strfmt.DateTime(endsAt),
			})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := client.Alert.PostAlerts(amalert.NewPostAlertsParamsWithContext(ctx).WithAlerts(payload))
		require.NoError(t, err)
	}

	posted := time.Now()
	post(time.Now().Add(5 * time.Minute))
	for _, a := range alerts {
		got := recv.WaitForAlert(t, harness.AlertFiring, a.labels, promTestTimeout)
		t.Logf("%s firing notified %s after the post", a.labels["alertname"], got.ReceivedAt.Sub(posted).Round(time.Millisecond))
		require.Equal(t, a.labels, got.Labels)
		require.Equal(t, a.annotations, got.Annotations)
		require.Equal(t, generatorURL, got.GeneratorURL)
		require.True(t, got.EndsAt.IsZero() || got.EndsAt.Year() < 2, "firing webhook alerts carry no endsAt, got %s", got.EndsAt)
	}
	// group_by ['...'] puts each alert in its own group: one notification each.
	require.Len(t, recv.Messages(), len(alerts))

	posted = time.Now()
	post(time.Now()) // endsAt = now resolves at once, as the checker does when a condition clears
	for _, a := range alerts {
		got := recv.WaitForAlert(t, harness.AlertResolved, a.labels, promTestTimeout)
		t.Logf("%s resolved notified %s after the post", a.labels["alertname"], got.ReceivedAt.Sub(posted).Round(time.Millisecond))
		require.False(t, got.EndsAt.IsZero())
	}
	require.Empty(t, recv.Alerts(harness.AlertFiring, map[string]string{"alertname": "MeshCheckerDegraded"}))
}

// TestAlertmanagerRetriesFailedWebhook makes the receiver fail and checks that Alertmanager
// delivers the notification once it answers 200 again.
func TestAlertmanagerRetriesFailedWebhook(t *testing.T) {
	recv := harness.NewAlertReceiver(t)
	am := harness.StartAlertmanager(t, harness.AlertmanagerOptions{WebhookURL: recv.URL()})
	ctx, cancel := context.WithTimeout(context.Background(), promTestTimeout)
	defer cancel()

	recv.RespondWith(http.StatusServiceUnavailable)
	labels := map[string]string{"alertname": "MeshCheckerDegraded", "severity": "warning", "namespace": "meshguard-system"}
	_, err := am.Client().Alert.PostAlerts(amalert.NewPostAlertsParamsWithContext(ctx).WithAlerts(ammodels.PostableAlerts{{
		Alert:  ammodels.Alert{Labels: labels},
		EndsAt: strfmt.DateTime(time.Now().Add(5 * time.Minute)),
	}}))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		n, err := am.Metric(ctx, "alertmanager_notification_requests_failed_total", map[string]string{"integration": "webhook"})
		return err == nil && n >= 1
	}, promTestTimeout, 50*time.Millisecond, "alertmanager never counted a failed webhook")
	require.Empty(t, recv.Messages(), "a rejected notification must not be recorded")

	healed := time.Now()
	recv.RespondWith(http.StatusOK)
	got := recv.WaitForAlert(t, harness.AlertFiring, labels, promTestTimeout)
	t.Logf("delivered %s after the webhook recovered", got.ReceivedAt.Sub(healed).Round(time.Millisecond))
}

// TestAlertmanagerRestart checks that Stop/Start keeps the port and storage, and records what an
// Alertmanager restart keeps: silences survive; active alerts are held in memory and do not.
func TestAlertmanagerRestart(t *testing.T) {
	recv := harness.NewAlertReceiver(t)
	am := harness.StartAlertmanager(t, harness.AlertmanagerOptions{WebhookURL: recv.URL()})
	client := am.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 2*promTestTimeout)
	defer cancel()

	labels := map[string]string{"alertname": "MeshCircuitOpen", "severity": "warning", "namespace": "bookinfo", "cluster_name": "outbound|9080||ratings.bookinfo.svc.cluster.local"}
	postAlert := func() {
		t.Helper()
		_, err := client.Alert.PostAlerts(amalert.NewPostAlertsParamsWithContext(ctx).WithAlerts(ammodels.PostableAlerts{{
			Alert:    ammodels.Alert{Labels: labels},
			StartsAt: strfmt.DateTime(time.Now()),
			EndsAt:   strfmt.DateTime(time.Now().Add(5 * time.Minute)),
		}}))
		require.NoError(t, err)
	}
	postAlert()
	recv.WaitForAlert(t, harness.AlertFiring, labels, promTestTimeout)
	// Alertmanager records a notification in its notification log just after the webhook has
	// answered and notifications_total has counted it. Stopping inside that window loses the record
	// and the restarted server notifies again (seen once in a dozen runs on a busy machine), so
	// wait for the counter and then a moment longer.
	require.Eventually(t, func() bool {
		n, err := am.Metric(ctx, "alertmanager_notifications_total", map[string]string{"integration": "webhook"})
		return err == nil && n >= 1
	}, 10*time.Second, 20*time.Millisecond)
	time.Sleep(200 * time.Millisecond)

	matcherName, matcherValue, isRegex := "alertname", "MeshTelemetryBlind", false
	createdBy, comment := "harness", "silence that must survive a restart"
	starts, ends := strfmt.DateTime(time.Now()), strfmt.DateTime(time.Now().Add(time.Hour))
	silence, err := client.Silence.PostSilences(amsilence.NewPostSilencesParamsWithContext(ctx).WithSilence(&ammodels.PostableSilence{
		Silence: ammodels.Silence{
			Matchers:  ammodels.Matchers{{Name: &matcherName, Value: &matcherValue, IsRegex: &isRegex}},
			CreatedBy: &createdBy, Comment: &comment, StartsAt: &starts, EndsAt: &ends,
		},
	}))
	require.NoError(t, err)
	silenceID := silence.Payload.SilenceID

	require.NoError(t, am.Stop())
	_, err = http.Get(am.URL() + "/-/ready")
	require.Error(t, err, "alertmanager still answers after Stop")
	begin := time.Now()
	require.NoError(t, am.Start())
	t.Logf("alertmanager restarted in %s", time.Since(begin).Round(time.Millisecond))

	got, err := client.Silence.GetSilence(amsilence.NewGetSilenceParamsWithContext(ctx).WithSilenceID(strfmt.UUID(silenceID)))
	require.NoError(t, err, "silence %s lost in the restart", silenceID)
	require.Equal(t, "active", *got.Payload.Status.State)

	active, err := client.Alert.GetAlerts(amalert.NewGetAlertsParamsWithContext(ctx))
	require.NoError(t, err)
	require.Empty(t, active.Payload, "Alertmanager 0.25 keeps alerts in memory only; a restart drops them")

	// Re-sent after the restart (as the checker does every cycle), the alert is active again. The
	// notification log survived, so Alertmanager knows it already notified this group and does not
	// notify again before repeat_interval.
	recv.Reset()
	postAlert()
	active, err = client.Alert.GetAlerts(amalert.NewGetAlertsParamsWithContext(ctx))
	require.NoError(t, err)
	require.Len(t, active.Payload, 1)
	recv.RequireNoAlert(t, harness.AlertFiring, labels, 3*time.Second)
}

// promCountLines counts the lines of log that start with prefix.
func promCountLines(log, prefix string) int {
	n := 0
	for _, line := range strings.Split(log, "\n") {
		if strings.HasPrefix(line, prefix) {
			n++
		}
	}
	return n
}

func promScalar(v model.Value) (float64, bool) {
	switch v := v.(type) {
	case model.Vector:
		if len(v) != 1 {
			return 0, false
		}
		return float64(v[0].Value), true
	case *model.Scalar:
		return float64(v.Value), true
	}
	return 0, false
}

func promWriteTemp(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "input.om")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	return path
}
