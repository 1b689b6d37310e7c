package alerting

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/test/harness"
)

func testNotifier(t *testing.T, eps ...config.Endpoint) (*Notifier, *Metrics) {
	t.Helper()
	m := NewMetrics(nil, "", "")
	n, err := NewNotifier(NotifierOptions{Alertmanagers: eps, MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond,
		Timeout: 2 * time.Second, Metrics: m})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = n.Stop(ctx)
	})
	return n, m
}

func firingAlert(ns string, at time.Time) *Alert {
	a := testAlert("MeshRetryStorm", "namespace", ns, "severity", "warning")
	a.State, a.ActiveAt, a.ValidUntil = StateFiring, at, at.Add(time.Minute)
	return a
}

func flush(t *testing.T, n *Notifier) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, n.Stop(ctx))
}

func TestNotifierDelivery(t *testing.T) {
	t.Run("every Alertmanager of an HA pair gets every alert", func(t *testing.T) {
		a, b := harness.NewAlertmanagerStub(t), harness.NewAlertmanagerStub(t)
		n, _ := testNotifier(t, config.Endpoint{URL: a.URL()}, config.Endpoint{URL: b.URL()})
		n.Send([]*Alert{firingAlert("x", t0), firingAlert("y", t0)})
		flush(t, n)
		require.Len(t, a.Received(), 2)
		require.Len(t, b.Received(), 2)
		got := a.Received()[0]
		require.Equal(t, t0, got.StartsAt.UTC())
		require.Equal(t, t0.Add(time.Minute), got.EndsAt.UTC())
	})

	t.Run("an Alertmanager that is down is retried with backoff and gets the latest state, the other is not held up", func(t *testing.T) {
		down, up := harness.NewAlertmanagerStub(t), harness.NewAlertmanagerStub(t)
		down.RespondWith(http.StatusServiceUnavailable)
		n, m := testNotifier(t, config.Endpoint{URL: down.URL()}, config.Endpoint{URL: up.URL()})
		first := firingAlert("x", t0)
		n.Send([]*Alert{first})
		require.Eventually(t, func() bool { return len(up.Received()) == 1 }, 5*time.Second, 10*time.Millisecond)
		require.Eventually(t, func() bool { return down.FailedAttempts() >= 2 }, 5*time.Second, 10*time.Millisecond)

		// Re-sends of the same episode take one slot; the resolution replaces them.
		again := firingAlert("x", t0)
		again.ValidUntil = t0.Add(2 * time.Minute)
		n.Send([]*Alert{again})
		resolved := firingAlert("x", t0)
		resolved.State, resolved.ResolvedAt = StateInactive, t0.Add(90*time.Second)
		n.Send([]*Alert{resolved})
		require.Equal(t, 1, n.Queued()[down.URL()])

		down.RespondWith(http.StatusOK)
		flush(t, n)
		got := down.Received()
		require.Len(t, got, 1, "one post with the episode's final state")
		require.Equal(t, t0.Add(90*time.Second), got[0].EndsAt.UTC())
		require.GreaterOrEqual(t, metricValue(t, m.SendErrors.WithLabelValues(down.URL())), 2.0)
		require.Zero(t, metricValue(t, m.SendErrors.WithLabelValues(up.URL())))
	})

	t.Run("a new episode does not overwrite the resolution of the previous one", func(t *testing.T) {
		am := harness.NewAlertmanagerStub(t)
		am.RespondWith(http.StatusBadGateway)
		n, _ := testNotifier(t, config.Endpoint{URL: am.URL()})
		old := firingAlert("x", t0)
		old.State, old.ResolvedAt = StateInactive, t0.Add(time.Minute)
		n.Send([]*Alert{old})
		n.Send([]*Alert{firingAlert("x", t0.Add(2*time.Minute))})
		require.Equal(t, 2, n.Queued()[am.URL()])
		am.RespondWith(http.StatusOK)
		flush(t, n)
		got := am.Received()
		require.Len(t, got, 2)
		require.Equal(t, t0, got[0].StartsAt.UTC(), "the older episode goes first")
		require.Equal(t, t0.Add(2*time.Minute), got[1].StartsAt.UTC())
	})

	t.Run("stop gives up at its deadline and names what was not delivered", func(t *testing.T) {
		am := harness.NewAlertmanagerStub(t)
		am.RespondWith(http.StatusInternalServerError)
		n, _ := testNotifier(t, config.Endpoint{URL: am.URL()})
		n.Send([]*Alert{firingAlert("x", t0)})
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		err := n.Stop(ctx)
		require.ErrorContains(t, err, am.URL())
		require.ErrorContains(t, err, "1 alert updates not delivered")
	})

	t.Run("a full queue drops the oldest updates and counts them", func(t *testing.T) {
		am := harness.NewAlertmanagerStub(t)
		am.RespondWith(http.StatusServiceUnavailable)
		m := NewMetrics(nil, "", "")
		n, err := NewNotifier(NotifierOptions{Alertmanagers: []config.Endpoint{{URL: am.URL()}}, QueueCapacity: 2,
			MinBackoff: 10 * time.Millisecond, MaxBackoff: 10 * time.Millisecond, Metrics: m})
		require.NoError(t, err)
		n.Send([]*Alert{firingAlert("a", t0), firingAlert("b", t0), firingAlert("c", t0)})
		require.Equal(t, 2, n.Queued()[am.URL()])
		require.Equal(t, 1.0, metricValue(t, m.Dropped.WithLabelValues(am.URL())))
		am.RespondWith(http.StatusOK)
		flush(t, n)
		var nss []string
		for _, a := range am.Received() {
			nss = append(nss, a.Labels["namespace"])
		}
		require.ElementsMatch(t, []string{"b", "c"}, nss)
	})

	t.Run("credentials from the config are sent, token files re-read", func(t *testing.T) {
		am := harness.NewAlertmanagerStub(t)
		tokenFile := filepath.Join(t.TempDir(), "token")
		require.NoError(t, os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600))
		n, _ := testNotifier(t, config.Endpoint{URL: am.URL(), BearerTokenFile: tokenFile})
		n.Send([]*Alert{firingAlert("x", t0)})
		flush(t, n)
		require.Equal(t, "Bearer s3cret", am.Authorizations()[0])
	})

	t.Run("a URL that is not http(s) is refused", func(t *testing.T) {
		_, err := NewNotifier(NotifierOptions{Alertmanagers: []config.Endpoint{{URL: "am:9093"}}})
		require.ErrorContains(t, err, "am:9093")
	})
}

func TestNotifierFetchMergesAlertmanagers(t *testing.T) {
	a, b := harness.NewAlertmanagerStub(t), harness.NewAlertmanagerStub(t)
	now := time.Now().Truncate(time.Second)
	early, late := firingAlert("x", now.Add(-time.Hour)), firingAlert("x", now.Add(-time.Minute))
	early.ValidUntil, late.ValidUntil = now.Add(time.Hour), now.Add(time.Hour)
	n, _ := testNotifier(t, config.Endpoint{URL: a.URL()}, config.Endpoint{URL: b.URL()})
	n.Send([]*Alert{early})
	require.Eventually(t, func() bool { return len(a.Received()) == 1 && len(b.Received()) == 1 }, 5*time.Second, 10*time.Millisecond)
	b.SetStartsAt(late.ActiveAt)
	got, err := n.Fetch(context.Background(), []string{`alertname="MeshRetryStorm"`})
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.True(t, early.ActiveAt.Equal(got[0].ActiveAt), "the earliest start wins: got %s", got[0].ActiveAt)
}

// metricValue reads a counter or gauge (client_golang's testutil would add a module).
func metricValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	require.NoError(t, m.Write(&d))
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

func TestNotifierDrop(t *testing.T) {
	am := harness.NewAlertmanagerStub(t)
	am.RespondWith(http.StatusServiceUnavailable)
	n, m := testNotifier(t, config.Endpoint{URL: am.URL()})
	n.Send([]*Alert{firingAlert("a", t0), firingAlert("b", t0)})
	require.Eventually(t, func() bool { return am.FailedAttempts() > 0 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, 2, n.Drop())
	require.Equal(t, 0, n.Queued()[am.URL()])
	require.Zero(t, metricValue(t, m.Dropped.WithLabelValues(am.URL())), "a handover is not a full queue")
	require.Zero(t, metricValue(t, m.QueueLength.WithLabelValues(am.URL())))
	flush(t, n) // nothing is left to deliver, though the Alertmanager still fails
	require.Empty(t, am.Received())
}
