package alerting

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC)

func testAlert(name string, labels ...string) *Alert {
	l := map[string]string{LabelAlertname: name}
	for i := 0; i+1 < len(labels); i += 2 {
		l[labels[i]] = labels[i+1]
	}
	return &Alert{Labels: l, Annotations: map[string]string{"summary": "s"}, Value: 1}
}

func TestTrackerLifecycle(t *testing.T) {
	const interval = 10 * time.Second
	tr := NewTracker(0)
	a := testAlert("X", "namespace", "ns")

	// Cycle 1: found, fires at once and is sent with EndsAt 4 intervals ahead.
	tr.Update(t0, "X", []*Alert{a}, true)
	sent := tr.Due(t0, interval)
	require.Len(t, sent, 1)
	require.Equal(t, StateFiring, sent[0].State)
	require.Equal(t, t0, sent[0].StartsAt())
	require.Equal(t, t0.Add(4*interval), sent[0].EndsAt())

	// Cycle 2: still found, re-sent with EndsAt moved, start time kept.
	t1 := t0.Add(interval)
	tr.Update(t1, "X", []*Alert{a}, true)
	sent = tr.Due(t1, interval)
	require.Len(t, sent, 1)
	require.Equal(t, t0, sent[0].StartsAt())
	require.Equal(t, t1.Add(4*interval), sent[0].EndsAt())

	// Cycle 3: the query failed and found nothing: missing data resolves nothing.
	t2 := t1.Add(interval)
	tr.Update(t2, "X", nil, false)
	sent = tr.Due(t2, interval)
	require.Len(t, sent, 1)
	require.Equal(t, StateFiring, sent[0].State, "an incomplete cycle keeps the alert firing")

	// Cycle 4: complete and not found: resolved and sent once with EndsAt = now.
	t3 := t2.Add(interval)
	tr.Update(t3, "X", nil, true)
	sent = tr.Due(t3, interval)
	require.Len(t, sent, 1)
	require.Equal(t, StateInactive, sent[0].State)
	require.Equal(t, t3, sent[0].EndsAt())
	require.Empty(t, tr.Firing())

	// Cycle 5: the resolution is not sent again, but it is retained.
	t4 := t3.Add(interval)
	tr.Update(t4, "X", nil, true)
	require.Empty(t, tr.Due(t4, interval))
	require.Len(t, tr.active, 1)

	// Back again: a new episode with a new start time.
	t5 := t4.Add(interval)
	tr.Update(t5, "X", []*Alert{a}, true)
	sent = tr.Due(t5, interval)
	require.Len(t, sent, 1)
	require.Equal(t, t5, sent[0].StartsAt())

	// Resolved alerts are forgotten after the retention.
	tr.Update(t5.Add(interval), "X", nil, true)
	tr.Update(t5.Add(interval+resolvedRetention+time.Second), "X", nil, true)
	require.Empty(t, tr.active)
}

func TestTrackerBehaviour(t *testing.T) {
	const interval = time.Second
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{name: "an alert waits in pending for the hold time before it fires and is sent", run: func(t *testing.T) {
			tr := NewTracker(2 * interval)
			a := testAlert("X")
			tr.Update(t0, "X", []*Alert{a}, true)
			require.Empty(t, tr.Due(t0, interval), "pending alerts are not sent")
			require.Len(t, tr.Pending(), 1)
			tr.Update(t0.Add(2*interval), "X", []*Alert{a}, true)
			require.Len(t, tr.Due(t0.Add(2*interval), interval), 1)
		}},
		{name: "a pending alert that clears is dropped without being sent", run: func(t *testing.T) {
			tr := NewTracker(time.Minute)
			tr.Update(t0, "X", []*Alert{testAlert("X")}, true)
			tr.Update(t0.Add(interval), "X", nil, true)
			require.Empty(t, tr.active)
		}},
		{name: "an update of one alert name leaves the others alone", run: func(t *testing.T) {
			tr := NewTracker(0)
			tr.Update(t0, "X", []*Alert{testAlert("X")}, true)
			tr.Update(t0, "Y", nil, true)
			require.Len(t, tr.Firing(), 1)
		}},
		{name: "the figure and annotations follow the latest cycle", run: func(t *testing.T) {
			tr := NewTracker(0)
			tr.Update(t0, "X", []*Alert{testAlert("X")}, true)
			b := testAlert("X")
			b.Value, b.Annotations["summary"] = 7, "new"
			tr.Update(t0.Add(interval), "X", []*Alert{b}, true)
			f := tr.Firing()
			require.Equal(t, 7.0, f[0].Value)
			require.Equal(t, "new", f[0].Annotations["summary"])
			require.Equal(t, t0, f[0].ActiveAt)
		}},
		{name: "restored alerts keep their start time and resolve when the first complete cycle misses them", run: func(t *testing.T) {
			tr := NewTracker(0)
			old := testAlert("X", "namespace", "a")
			old.ActiveAt = t0.Add(-time.Hour)
			kept := testAlert("X", "namespace", "b")
			kept.ActiveAt = t0.Add(-2 * time.Hour)
			require.Equal(t, 2, tr.Restore([]*Alert{old, kept}))
			tr.Update(t0, "X", []*Alert{testAlert("X", "namespace", "b")}, true)
			sent := tr.Due(t0, interval)
			require.Len(t, sent, 2)
			byNS := map[string]*Alert{}
			for _, a := range sent {
				byNS[a.Labels["namespace"]] = a
			}
			require.Equal(t, StateInactive, byNS["a"].State)
			require.Equal(t, t0, byNS["a"].EndsAt())
			require.Equal(t, t0.Add(-2*time.Hour), byNS["b"].StartsAt(), "no new start time: Alertmanager sees the same alert")
		}},
		{name: "restored alerts stay firing while the queries fail", run: func(t *testing.T) {
			tr := NewTracker(0)
			r := testAlert("X")
			r.ActiveAt = t0.Add(-time.Hour)
			tr.Restore([]*Alert{r})
			tr.Update(t0, "X", nil, false)
			sent := tr.Due(t0, interval)
			require.Len(t, sent, 1)
			require.Equal(t, StateFiring, sent[0].State)
			require.Equal(t, t0.Add(4*interval), sent[0].EndsAt())
		}},
		{name: "callers get copies that cannot change the tracker", run: func(t *testing.T) {
			tr := NewTracker(0)
			tr.Update(t0, "X", []*Alert{testAlert("X")}, true)
			tr.Firing()[0].Labels["alertname"] = "changed"
			require.Equal(t, "X", tr.Firing()[0].Name())
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
}

// TestTrackerRestoreOnTakeover: a follower evaluated the same conditions as the leader. Taking
// over, it keeps the start Alertmanager knows, earlier or later than its own, and resends what
// it resolved.
func TestTrackerRestoreOnTakeover(t *testing.T) {
	t.Run("a follower that saw the condition a cycle before the leader still keeps the leader's start", func(t *testing.T) {
		tr := NewTracker(0)
		a := testAlert("X", "namespace", "a")
		tr.Update(t0, "X", []*Alert{a}, true)
		leaderStart := t0.Add(6 * time.Second)
		r := a.clone()
		r.ActiveAt = leaderStart
		require.Equal(t, 1, tr.Restore([]*Alert{r}))
		require.Equal(t, leaderStart, tr.Firing()[0].StartsAt())
	})

	const interval = 10 * time.Second
	tr := NewTracker(0)
	held, cleared := testAlert("X", "namespace", "a"), testAlert("X", "namespace", "b")
	tr.Update(t0, "X", []*Alert{held, cleared}, true)
	t1 := t0.Add(interval)
	tr.Update(t1, "X", []*Alert{held}, true) // b cleared while this replica followed

	fromAM := func(a *Alert, start time.Time) *Alert {
		r := a.clone()
		r.ActiveAt, r.ValidUntil = start, t1.Add(3*interval)
		return r
	}
	leaderStart := t0.Add(-time.Hour)
	require.Equal(t, 3, tr.Restore([]*Alert{fromAM(held, leaderStart), fromAM(testAlert("X", "namespace", "c"), leaderStart),
		fromAM(cleared, leaderStart)}), "a takes Alertmanager's start, c is new, b stays resolved and is counted as held")

	t2 := t1.Add(interval)
	tr.Update(t2, "X", []*Alert{held}, true)
	sent := map[string]*Alert{}
	for _, a := range tr.Due(t2, interval) {
		sent[a.Labels["namespace"]] = a
	}
	require.Len(t, sent, 3)
	require.Equal(t, StateFiring, sent["a"].State)
	require.Equal(t, leaderStart, sent["a"].StartsAt(), "the episode Alertmanager holds goes on")
	require.Equal(t, StateInactive, sent["b"].State, "never sent by this replica: its resolution goes out now")
	require.Equal(t, t1, sent["b"].EndsAt())
	require.Equal(t, StateInactive, sent["c"].State, "cleared before the takeover: resolved at once")
	require.Equal(t, t2, sent["c"].EndsAt())
}
