package alerting

import (
	"maps"
	"sort"
	"strings"
	"time"
)

// AlertState is the state of an alert instance, as in Prometheus's rules/alerting.go.
type AlertState int

const (
	// StateInactive: the condition no longer holds; the alert is resolved (ResolvedAt).
	StateInactive AlertState = iota
	// StatePending: the condition holds but not yet for the hold time.
	StatePending
	// StateFiring: the condition holds and the alert is sent every cycle.
	StateFiring
)

func (s AlertState) String() string {
	switch s {
	case StatePending:
		return "pending"
	case StateFiring:
		return "firing"
	default:
		return "inactive"
	}
}

// resolvedRetention is how long a resolved alert is kept after it was resolved, as Prometheus
// does: it is sent once, and remembered so that its state is not forgotten before Alertmanager
// has been told.
const resolvedRetention = 15 * time.Minute

// validCycles is how many intervals ahead a firing alert's EndsAt is set (Prometheus: 4 ×
// max(evaluation interval, resend delay)). If the checker stops, Alertmanager resolves the
// alert on its own after that; one missed cycle does not resolve it.
const validCycles = 4

// Alert is one alert instance with Prometheus's timestamps.
type Alert struct {
	// Labels is the full label set: alertname, severity, rule, identifying and extra labels.
	Labels map[string]string
	// Annotations: summary, description, runbook_url and details.
	Annotations map[string]string
	// GeneratorURL opens the alert's query in Prometheus.
	GeneratorURL string
	// Value is the measured figure of the last cycle that found it.
	Value float64
	// Signal is the query the figure comes from.
	Signal string

	State      AlertState
	ActiveAt   time.Time // when the condition was first found: the alert's StartsAt
	FiredAt    time.Time
	ResolvedAt time.Time
	LastSentAt time.Time
	ValidUntil time.Time
}

// Name returns the alertname label.
func (a *Alert) Name() string { return a.Labels[LabelAlertname] }

// StartsAt is the start time sent to Alertmanager.
func (a *Alert) StartsAt() time.Time { return a.ActiveAt }

// EndsAt is the end time sent to Alertmanager: the resolution time, or ValidUntil while firing.
func (a *Alert) EndsAt() time.Time {
	if a.State == StateInactive {
		return a.ResolvedAt
	}
	return a.ValidUntil
}

// clone copies the alert so callers never share maps with the tracker.
func (a *Alert) clone() *Alert {
	c := *a
	c.Labels = maps.Clone(a.Labels)
	c.Annotations = maps.Clone(a.Annotations)
	return &c
}

// needsSending follows Prometheus's Alert.needsSending with a resend delay of zero: a firing
// alert goes out every cycle, a resolved one once.
func (a *Alert) needsSending(ts time.Time) bool {
	switch a.State {
	case StatePending:
		return false
	case StateInactive:
		return a.ResolvedAt.After(a.LastSentAt)
	default:
		return a.LastSentAt.Before(ts)
	}
}

// LabelsKey identifies a label set: sorted name=value pairs.
func LabelsKey(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(l[k])
		b.WriteByte('\xff')
	}
	return b.String()
}

// Tracker is the alert state machine of every rule, keyed by label set. It is not safe for
// concurrent use; the checker drives it from one goroutine.
type Tracker struct {
	// For is how long a condition must hold before its alert fires (0: at once).
	For time.Duration
	// Limit bounds the alerts Admit lets in (0: no bound).
	Limit  int
	active map[string]*Alert
}

// NewTracker returns an empty tracker.
func NewTracker(holdFor time.Duration) *Tracker {
	return &Tracker{For: holdFor, active: map[string]*Alert{}}
}

// Update applies one cycle of one alert name at ts: found are the alerts its rule found (labels,
// annotations and value set). When complete is false (a query the rule needs failed), alerts
// not found again keep their state: missing data resolves nothing.
func (t *Tracker) Update(ts time.Time, alertname string, found []*Alert, complete bool) {
	seen := make(map[string]bool, len(found))
	for _, f := range found {
		k := LabelsKey(f.Labels)
		seen[k] = true
		if a, ok := t.active[k]; ok && a.State != StateInactive {
			a.Value, a.Signal, a.GeneratorURL = f.Value, f.Signal, f.GeneratorURL
			a.Annotations = maps.Clone(f.Annotations)
			continue
		}
		// New, or back after being resolved: a new episode with a new start time.
		a := f.clone()
		a.State, a.ActiveAt = StatePending, ts
		a.FiredAt, a.ResolvedAt, a.LastSentAt, a.ValidUntil = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		t.active[k] = a
	}
	for k, a := range t.active {
		if a.Name() != alertname {
			continue
		}
		switch {
		case seen[k]:
			if a.State == StatePending && ts.Sub(a.ActiveAt) >= t.For {
				a.State, a.FiredAt = StateFiring, ts
			}
		case a.State == StateInactive:
			if ts.Sub(a.ResolvedAt) > resolvedRetention {
				delete(t.active, k)
			}
		case !complete:
		case a.State == StatePending:
			delete(t.active, k)
		default:
			a.State, a.ResolvedAt = StateInactive, ts
		}
	}
}

// Admit keeps the tracker within its Limit. found are one cycle's alerts of every rule; it
// returns those the tracker may hold and how many new ones it refused. Alerts it already holds
// always stay, so an alert is never resolved for want of room; new ones are taken critical
// first, then by the highest figure. Resolved alerts whose resolution has been sent make room
// before anything is refused.
func (t *Tracker) Admit(found []*Alert) ([]*Alert, int) {
	if t.Limit <= 0 {
		return found, 0
	}
	var held, fresh []*Alert
	for _, f := range found {
		if _, ok := t.active[LabelsKey(f.Labels)]; ok {
			held = append(held, f)
		} else {
			fresh = append(fresh, f)
		}
	}
	room := t.Limit - len(t.active)
	if len(fresh) > room {
		room += t.forgetResolved(len(fresh) - room)
	}
	if len(fresh) <= room {
		return found, 0
	}
	room = max(room, 0)
	sort.SliceStable(fresh, func(i, j int) bool {
		a, b := fresh[i], fresh[j]
		if (a.Labels[LabelSeverity] == SeverityCritical) != (b.Labels[LabelSeverity] == SeverityCritical) {
			return a.Labels[LabelSeverity] == SeverityCritical
		}
		return a.Value > b.Value
	})
	return append(held, fresh[:room]...), len(fresh) - room
}

// forgetResolved drops up to n resolved alerts already sent as resolved, and returns how many.
func (t *Tracker) forgetResolved(n int) int {
	dropped := 0
	for k, a := range t.active {
		if dropped == n {
			break
		}
		if a.State == StateInactive && !a.LastSentAt.Before(a.ResolvedAt) {
			delete(t.active, k)
			dropped++
		}
	}
	return dropped
}

// AlertValidity is how long Alertmanager keeps a firing alert after its last re-send: a checker
// that stops sending for longer lets its alerts resolve on their own.
func AlertValidity(interval time.Duration) time.Duration { return validCycles * interval }

// Restore seeds firing alerts a previous run or another replica sent (read back from
// Alertmanager), so that a restarted checker or a new leader keeps their start times and
// resolves the ones that cleared meanwhile instead of forgetting them. An alert the tracker
// already holds active takes Alertmanager's start, earlier or later than its own: that is the
// episode receivers were told of, and a follower evaluating on its own schedule may have seen
// the condition a cycle before the leader or after it. A resolved one is left alone. None past
// the Limit are taken. It returns how many it holds of alerts (taken or already held).
func (t *Tracker) Restore(alerts []*Alert) int {
	n := 0
	for _, r := range alerts {
		k := LabelsKey(r.Labels)
		if a, ok := t.active[k]; ok {
			if a.State != StateInactive {
				a.State, a.ActiveAt, a.FiredAt = StateFiring, r.ActiveAt, r.ActiveAt
			}
			n++
			continue
		}
		if t.Limit > 0 && len(t.active) >= t.Limit {
			continue
		}
		a := r.clone()
		a.State = StateFiring
		if a.FiredAt.IsZero() {
			a.FiredAt = a.ActiveAt
		}
		t.active[k] = a
		n++
	}
	return n
}

// Due returns copies of the alerts to send at ts and marks them sent; a firing alert's
// ValidUntil moves to validCycles intervals ahead.
func (t *Tracker) Due(ts time.Time, interval time.Duration) []*Alert {
	var out []*Alert
	for _, a := range t.active {
		if !a.needsSending(ts) {
			continue
		}
		a.LastSentAt = ts
		if a.State == StateFiring {
			a.ValidUntil = ts.Add(validCycles * interval)
		}
		out = append(out, a.clone())
	}
	sortAlerts(out)
	return out
}

// Firing returns copies of the firing alerts, sorted.
func (t *Tracker) Firing() []*Alert { return t.inState(StateFiring) }

// Pending returns copies of the pending alerts, sorted.
func (t *Tracker) Pending() []*Alert { return t.inState(StatePending) }

func (t *Tracker) inState(s AlertState) []*Alert {
	var out []*Alert
	for _, a := range t.active {
		if a.State == s {
			out = append(out, a.clone())
		}
	}
	sortAlerts(out)
	return out
}

// sortAlerts orders alerts by name, then labels. Keys are computed once: sorting 10,000 alerts
// must not build 300,000 of them.
func sortAlerts(as []*Alert) {
	type keyed struct {
		name, key string
		a         *Alert
	}
	ks := make([]keyed, len(as))
	for i, a := range as {
		ks[i] = keyed{a.Name(), LabelsKey(a.Labels), a}
	}
	sort.Slice(ks, func(i, j int) bool {
		if ks[i].name != ks[j].name {
			return ks[i].name < ks[j].name
		}
		return ks[i].key < ks[j].key
	})
	for i := range ks {
		as[i] = ks[i].a
	}
}
