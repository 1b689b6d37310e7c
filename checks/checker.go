package checks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/meshguard/meshguard/internal/alerting"
	"github.com/meshguard/meshguard/internal/graph"
)

// Options configure a Checker.
type Options struct {
	Settings Settings
	// Querier runs the PromQL queries (a promv1.API).
	Querier Querier
	// Config provides the mesh configuration, read at every cycle.
	Config ConfigSource
	// Notifier receives the alerts due each cycle; nil sends nothing (`check --once` without
	// Alertmanagers).
	Notifier *alerting.Notifier
	// MaySend tells whether this replica sends alerts (nil: always). A follower in a leader
	// election evaluates all the same; its alerts are neither marked sent nor handed over.
	MaySend func() bool
	// Clock is the evaluation time of each cycle (default time.Now). Tests inject a fixed time
	// to query backfilled data.
	Clock func() time.Time
	// For is how long a condition must hold before its alert fires (default 0: at once).
	For time.Duration
	// QueryTimeout bounds each query (default: the interval, at most 30s).
	QueryTimeout time.Duration
	Metrics      *Metrics
	Logger       *slog.Logger
}

// Checker runs check cycles. Cycle and Run must not be called concurrently; Ready and Last may
// be called from any goroutine (the HTTP handlers).
type Checker struct {
	opts    Options
	rules   []Rule
	signals []Signal
	genURLs map[string]string // generatorURL by signal, built once
	tracker *alerting.Tracker

	meshCfg *MeshConfig // last configuration read successfully
	// failedAt is when each signal's query last failed. For a window after that the data
	// Prometheus holds has a hole (it was down, or could not be asked), so nothing is resolved
	// and absence-based rules raise nothing until a whole window has been seen again.
	failedAt map[string]time.Time
	// reused holds the last successful answer of each signal with a Refresh, and when it was
	// asked (only the cycle goroutine touches it).
	reused map[string]QueryResult
	amp    amplificationMemo

	mu   sync.Mutex
	last *Result
	// page is the service map of the last cycle that built one (Settings.Graph), as HTML.
	page []byte
}

// Result is what one cycle found.
type Result struct {
	EvaluatedAt time.Time `json:"evaluatedAt"`
	// Firing are the firing alerts after the cycle, sorted.
	Firing []*alerting.Alert `json:"-"`
	// Sent are the alerts handed to the notifier (firing re-sends and resolutions).
	Sent    []*alerting.Alert `json:"-"`
	Queries []QueryResult     `json:"queries"`
	// AlertsOverLimit counts the new alerts not raised because the checker held
	// MaxAlertsPerCycle already.
	AlertsOverLimit int `json:"alertsOverLimit,omitempty"`
	// ConfigErr is the error reading the mesh configuration, if any.
	ConfigErr error `json:"-"`
	// Unattributed counts, by alert name, what a rule found but could not give a namespace (a
	// PassthroughCluster call, a host:port or "unknown" destination): it is not raised, since
	// Alertmanager routes by namespace, but it is counted and reported.
	Unattributed map[string]int `json:"unattributed,omitempty"`
	// EnvoyStats says whether the clients export Envoy's cluster stats; nil when its query failed.
	EnvoyStats *EnvoyStats `json:"envoyClusterStats,omitempty"`
	// Recovering lists the signals whose data has a hole in the window (a recent failure, or a
	// Prometheus that started less than a window ago): their alerts are not resolved yet.
	Recovering []string `json:"recovering,omitempty"`
	Duration   time.Duration
}

// Degraded tells whether a query or the configuration read failed in the cycle.
func (r *Result) Degraded() bool { return r.ConfigErr != nil || len(r.Errors()) > 0 }

// OverLimit tells whether the cycle left series or alerts out to stay within its limits.
func (r *Result) OverLimit() bool { return r.AlertsOverLimit > 0 || r.SeriesOverLimit() > 0 }

// SeriesOverLimit counts the series the cycle's queries left out.
func (r *Result) SeriesOverLimit() int {
	n := 0
	for _, q := range r.Queries {
		n += q.Dropped
	}
	return n
}

// Errors lists the cycle's failures.
func (r *Result) Errors() []error {
	var out []error
	if r.ConfigErr != nil {
		out = append(out, r.ConfigErr)
	}
	for _, q := range r.Queries {
		if q.Err != nil {
			out = append(out, q.Err)
		}
	}
	return out
}

// New validates the options and returns a Checker.
func New(opts Options) (*Checker, error) {
	if err := opts.Settings.Validate(); err != nil {
		return nil, fmt.Errorf("check settings: %w", err)
	}
	if opts.Querier == nil {
		return nil, errors.New("check: no Prometheus querier")
	}
	if opts.Config == nil {
		return nil, errors.New("check: no mesh configuration source")
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = min(opts.Settings.Interval, 30*time.Second)
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Checker{
		opts:     opts,
		rules:    Rules(),
		signals:  Signals(opts.Settings),
		genURLs:  map[string]string{},
		tracker:  alerting.NewTracker(opts.For),
		failedAt: map[string]time.Time{},
	}
	c.tracker.Limit = opts.Settings.MaxAlertsPerCycle
	for _, sig := range c.signals {
		c.genURLs[sig.Name] = GeneratorURL(opts.Settings.PrometheusURL, sig.Query)
	}
	return c, nil
}

// Signals returns the queries each cycle runs.
func (c *Checker) Signals() []Signal { return append([]Signal(nil), c.signals...) }

// Cycle runs one cycle at the clock's time: read the configuration, run every signal's query,
// evaluate the rules, advance the alert states and hand the alerts due to the notifier.
func (c *Checker) Cycle(ctx context.Context) *Result {
	start := time.Now()
	ts := c.opts.Clock()
	res := &Result{EvaluatedAt: ts, Unattributed: map[string]int{}}

	cfg, err := c.opts.Config.Load(ctx)
	if err != nil {
		res.ConfigErr = fmt.Errorf("read mesh configuration from %s: %w", c.opts.Config, err)
		c.opts.Metrics.ConfigLoadErrors.Inc()
	} else {
		c.meshCfg = cfg
		c.opts.Metrics.ConfigLastSuccess.Set(float64(time.Now().Unix()))
	}

	warming := c.promWarmingUp(ctx, ts)
	res.Queries = c.query(ctx, ts)
	results := map[string]model.Vector{}
	holes := map[string]bool{}
	for _, q := range res.Queries {
		if q.Err != nil && !errors.Is(q.Err, ErrPartialResponse) {
			c.failedAt[q.Signal] = ts
			continue
		}
		results[q.Signal] = q.Vector
		// A partial answer may raise alerts; what it lacks resolves nothing.
		if q.Err != nil {
			holes[q.Signal] = true
		}
		// What was cut off is missing data: it must neither resolve alerts nor raise absence.
		if q.Dropped > 0 {
			holes[q.Signal] = true
		}
		if failed, ok := c.failedAt[q.Signal]; warming || (ok && ts.Sub(failed) < c.opts.Settings.Window+c.opts.Settings.Interval) {
			holes[q.Signal] = true
			res.Recovering = append(res.Recovering, q.Signal)
		}
	}
	if v, ok := results[SignalEnvoyStats]; ok {
		res.EnvoyStats = envoyStatsOf(v)
	}
	asked := map[string]time.Time{}
	for _, q := range res.Queries {
		asked[q.Signal] = q.At
	}
	ec := &evalContext{now: ts, settings: c.opts.Settings, results: results, mesh: c.meshCfg, asked: asked, memo: &c.amp}
	completes := make([]bool, len(c.rules))
	var found []*alerting.Alert
	for i, r := range c.rules {
		complete := true
		for _, s := range r.Signals {
			if _, ok := results[s]; !ok || holes[s] {
				complete = false
			}
		}
		// Rules comparing traffic with the configuration cannot judge without one.
		if c.meshCfg == nil && needsConfig(r.Alertname) {
			complete = false
		}
		// A rule whose query failed still reports what the other queries show, except a rule
		// that fires on absence: missing data would raise it.
		if complete || !r.absence {
			for _, f := range r.eval(ec) {
				if f.Labels[LabelNamespace] == "" {
					res.Unattributed[r.Alertname]++
					continue
				}
				found = append(found, c.alertOf(r, f))
			}
		}
		completes[i] = complete
	}
	found, res.AlertsOverLimit = c.tracker.Admit(found)
	byName := map[string][]*alerting.Alert{}
	for _, a := range found {
		byName[a.Name()] = append(byName[a.Name()], a)
	}
	for i, r := range c.rules {
		c.tracker.Update(ts, r.Alertname, byName[r.Alertname], completes[i])
	}
	var degraded, over []*alerting.Alert
	if res.Degraded() {
		degraded = append(degraded, c.degradedAlert(res))
	}
	c.tracker.Update(ts, AlertCheckerDegraded, degraded, true)
	if res.OverLimit() {
		over = append(over, c.overLimitAlert(res))
	}
	c.tracker.Update(ts, AlertCheckerOverLimit, over, true)

	if c.opts.Settings.Graph {
		c.buildPage(ctx, ts)
	}

	if c.opts.MaySend == nil || c.opts.MaySend() {
		res.Sent = c.tracker.Due(ts, c.opts.Settings.Interval)
	}
	res.Firing = c.tracker.Firing()
	res.Duration = time.Since(start)
	// The result is published before any alert leaves: whoever sees an alert in Alertmanager
	// finds it in Last() and /readyz too.
	c.record(res)
	if c.opts.Notifier != nil {
		c.opts.Notifier.Send(res.Sent)
	}
	return res
}

// runtimeInfoer is the part of promv1.API that tells when Prometheus started.
type runtimeInfoer interface {
	Runtimeinfo(ctx context.Context) (promv1.RuntimeinfoResult, error)
}

// promWarmingUp tells whether Prometheus started less than a window before ts: its rates over
// the window then miss the time before it started. An evaluation time before the start (data
// backfilled into a new server) is not affected. Errors are left to the queries to report.
func (c *Checker) promWarmingUp(ctx context.Context, ts time.Time) bool {
	ri, ok := c.opts.Querier.(runtimeInfoer)
	if !ok {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.QueryTimeout)
	defer cancel()
	info, err := ri.Runtimeinfo(ctx)
	if err != nil || info.StartTime.IsZero() || ts.Before(info.StartTime) {
		return false
	}
	return ts.Sub(info.StartTime) < c.opts.Settings.Window+c.opts.Settings.Interval
}

func needsConfig(alertname string) bool {
	switch alertname {
	case AlertPlaintextTraffic, AlertPlaintextAllowed, AlertTelemetryBlind, AlertRetryAmplification:
		return true
	}
	return false
}

// query runs every signal concurrently: the cycle takes as long as the slowest query, and the
// number of queries is the number of signals.
func (c *Checker) query(ctx context.Context, ts time.Time) []QueryResult {
	out := make([]QueryResult, len(c.signals))
	var wg sync.WaitGroup
	for i, sig := range c.signals {
		if r, ok := c.reused[sig.Name]; ok && sig.Refresh > 0 && ts.Sub(r.At) < sig.Refresh && !ts.Before(r.At) {
			r.Reused = true
			out[i] = r
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = runQuery(ctx, c.opts.Querier, sig, ts, c.opts.QueryTimeout, c.opts.Settings.MaxSeriesPerSignal)
			out[i].At = ts
		}()
	}
	wg.Wait()
	for i, sig := range c.signals {
		if sig.Refresh > 0 && out[i].Err == nil && !out[i].Reused && len(out[i].Warnings) == 0 {
			if c.reused == nil {
				c.reused = map[string]QueryResult{}
			}
			c.reused[sig.Name] = out[i]
		}
	}
	return out
}

// alertOf builds the alert of a finding: the rule's labels, the extra labels (which never
// override, except a "cluster" the user set: it names the checker's cluster, selects its alerts
// on restore, and Istio's own cluster ID, "Kubernetes" by default, must not replace it), the
// runbook and the generator URL of the query it came from.
func (c *Checker) alertOf(r Rule, f Finding) *alerting.Alert {
	s := c.opts.Settings
	labels := map[string]string{}
	for k, v := range s.ExtraLabels {
		labels[k] = v
	}
	for k, v := range f.Labels {
		if _, set := s.ExtraLabels[k]; v != "" && !(set && k == LabelCluster) {
			labels[k] = v
		}
	}
	labels[alerting.LabelAlertname], labels[alerting.LabelSeverity], labels[LabelRule] = r.Alertname, r.Severity, r.ID
	ann := maps.Clone(f.Annotations)
	if ann == nil {
		ann = map[string]string{}
	}
	if u := s.runbook(r.Alertname); u != "" {
		ann["runbook_url"] = u
	}
	return &alerting.Alert{Labels: labels, Annotations: ann, GeneratorURL: c.genURLs[f.Signal], Value: f.Value, Signal: f.Signal}
}

func (c *Checker) degradedAlert(res *Result) *alerting.Alert {
	var failed, reasons []string
	for _, q := range res.Queries {
		if q.Err != nil {
			failed = append(failed, q.Signal)
			reasons = append(reasons, q.Err.Error())
		}
	}
	if res.ConfigErr != nil {
		failed = append(failed, "mesh configuration")
		reasons = append(reasons, res.ConfigErr.Error())
	}
	f := Finding{
		Labels: map[string]string{LabelNamespace: c.opts.Settings.CheckerNamespace},
		Annotations: map[string]string{
			"summary": fmt.Sprintf("meshguard check is degraded: %d of %d queries failed%s", countErrs(res.Queries), len(res.Queries),
				map[bool]string{true: " and the mesh configuration could not be read", false: ""}[res.ConfigErr != nil]),
			"description": fmt.Sprintf("Failing: %s (threshold: no failure). Alerts that depend on them are kept as they were, "+
				"neither raised nor resolved, until the checker can see again. Errors: %s",
				strings.Join(failed, ", "), strings.Join(reasons, "; ")),
			"failed_signals": strings.Join(failed, ","),
		},
		Value: float64(len(failed)),
	}
	return c.alertOf(degradedRule, f)
}

// overLimitAlert says what the cycle left out and which limit to raise.
func (c *Checker) overLimitAlert(res *Result) *alerting.Alert {
	s := c.opts.Settings
	var parts []string
	for _, q := range res.Queries {
		if q.Dropped > 0 {
			parts = append(parts, fmt.Sprintf("%s: %d series over check.limits.maxSeriesPerSignal (%d) not evaluated", q.Signal, q.Dropped, s.MaxSeriesPerSignal))
		}
	}
	if res.AlertsOverLimit > 0 {
		parts = append(parts, fmt.Sprintf("%d new alerts over check.limits.maxAlertsPerCycle (%d) not raised", res.AlertsOverLimit, s.MaxAlertsPerCycle))
	}
	f := Finding{
		Labels: map[string]string{LabelNamespace: s.CheckerNamespace},
		Annotations: map[string]string{
			"summary": fmt.Sprintf("meshguard check left out %d series and %d alerts to stay within its memory limits",
				res.SeriesOverLimit(), res.AlertsOverLimit),
			"description": strings.Join(parts, "; ") + ". The series with the highest values and the critical alerts are kept; " +
				"alerts of the series left out are neither raised nor resolved. Raise the limits (and the checker's memory) or narrow check.namespaces.",
		},
		Value: float64(res.SeriesOverLimit() + res.AlertsOverLimit),
	}
	return c.alertOf(overLimitRule, f)
}

func countErrs(qs []QueryResult) int {
	n := 0
	for _, q := range qs {
		if q.Err != nil {
			n++
		}
	}
	return n
}

func (c *Checker) record(res *Result) {
	m := c.opts.Metrics
	m.CycleDuration.Observe(res.Duration.Seconds())
	for _, q := range res.Queries {
		if q.Reused {
			continue // not asked this cycle
		}
		result := "success"
		if q.Err != nil {
			result = "error"
		}
		m.Queries.WithLabelValues(q.Signal, result).Inc()
		m.QueryDuration.WithLabelValues(q.Signal).Observe(q.Duration.Seconds())
	}
	counts := map[string]int{}
	for _, r := range AllAlerts() {
		counts[r.Alertname] = 0
	}
	for _, a := range res.Firing {
		counts[a.Name()]++
	}
	for name, n := range counts {
		m.AlertsFiring.WithLabelValues(name).Set(float64(n))
	}
	for _, q := range res.Queries {
		if q.Dropped > 0 {
			m.SeriesOverLimit.WithLabelValues(q.Signal).Add(float64(q.Dropped))
		}
	}
	m.AlertsOverLimit.Add(float64(res.AlertsOverLimit))
	for name, n := range res.Unattributed {
		m.Unattributed.WithLabelValues(name).Add(float64(n))
	}
	if res.EnvoyStats != nil {
		m.EnvoyOutboundClusters.Set(float64(res.EnvoyStats.OutboundClusters))
	}
	if res.OverLimit() {
		c.opts.Logger.Warn("check cycle over its limits", "series_left_out", res.SeriesOverLimit(), "alerts_left_out", res.AlertsOverLimit)
	}
	if res.Degraded() {
		m.Degraded.Set(1)
		m.Cycles.WithLabelValues("degraded").Inc()
		c.opts.Logger.Warn("check cycle degraded", "errors", errors.Join(res.Errors()...))
	} else {
		m.Degraded.Set(0)
		m.Cycles.WithLabelValues("ok").Inc()
		m.LastSuccess.Set(float64(time.Now().Unix()))
	}
	c.mu.Lock()
	c.last = res
	c.mu.Unlock()
}

// buildPage rebuilds the service map for /graph. A failure keeps the last page: the map is a
// view, and the cycle's own queries already report an unreachable Prometheus.
func (c *Checker) buildPage(ctx context.Context, ts time.Time) {
	s := c.opts.Settings
	g, err := BuildGraph(ctx, GraphOptions{Querier: c.opts.Querier, Config: c.meshCfg, Window: s.Window, At: ts,
		MeshDomain: s.MeshDomain, RootNamespace: s.RootNamespace, QueryTimeout: c.opts.QueryTimeout, Thresholds: s.GraphThresholds,
		ClusterLabels: graph.ClusterLabels(s.ClusterLabels)})
	if err != nil {
		c.opts.Logger.Warn("service map not rebuilt", "error", err)
		return
	}
	if err := DescribeWorkloads(ctx, g, c.opts.Config, s.GraphKeys); err != nil {
		c.opts.Logger.Warn("service map without team, tier and last deploy", "error", err)
	}
	var b bytes.Buffer
	if err := graph.WriteHTML(&b, g, s.RetryAmplification); err != nil {
		c.opts.Logger.Warn("service map not rendered", "error", err)
		return
	}
	c.mu.Lock()
	c.page = b.Bytes()
	c.mu.Unlock()
}

// Page returns the last service map page, nil when none was built.
func (c *Checker) Page() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.page
}

// Last returns the result of the last cycle, or nil before the first.
func (c *Checker) Last() *Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// Ready tells whether the last cycle ran every query and read the configuration: a degraded
// checker is not ready, so an orchestrator shows it.
func (c *Checker) Ready() error {
	last := c.Last()
	switch {
	case last == nil:
		return errors.New("no check cycle has run yet")
	case last.Degraded():
		return fmt.Errorf("degraded: %w", errors.Join(last.Errors()...))
	}
	return nil
}

// Run runs a cycle at once and then every interval until ctx ends.
func (c *Checker) Run(ctx context.Context) {
	t := time.NewTicker(c.opts.Settings.Interval)
	defer t.Stop()
	for {
		res := c.Cycle(ctx)
		c.opts.Logger.Debug("check cycle", "firing", len(res.Firing), "sent", len(res.Sent), "duration", res.Duration)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RestoreFilter returns the Alertmanager matchers that select the alerts this checker sends:
// its alert names and its extra labels.
func (c *Checker) RestoreFilter() []string {
	names := make([]string, 0, 8)
	for _, r := range AllAlerts() {
		names = append(names, regexp.QuoteMeta(r.Alertname))
	}
	filter := []string{fmt.Sprintf("%s=~%q", alerting.LabelAlertname, strings.Join(names, "|"))}
	keys := make([]string, 0, len(c.opts.Settings.ExtraLabels))
	for k := range c.opts.Settings.ExtraLabels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		filter = append(filter, fmt.Sprintf("%s=%q", k, c.opts.Settings.ExtraLabels[k]))
	}
	return filter
}

// Restore reads back from the Alertmanagers the alerts a previous run of this checker left
// firing, so that a restarted checker neither sends them as new (their start times are kept)
// nor forgets to resolve the ones that cleared while it was down. It returns how many it took.
func (c *Checker) Restore(ctx context.Context) (int, error) {
	if c.opts.Notifier == nil {
		return 0, nil
	}
	alerts, err := c.opts.Notifier.Fetch(ctx, c.RestoreFilter())
	if err != nil {
		return 0, fmt.Errorf("restore alerts: %w", err)
	}
	var ours []*alerting.Alert
	for _, a := range alerts {
		// Another checker may watch other namespaces (an ad hoc --once, say): what this one
		// does not watch it would resolve for want of data, so it leaves those alone.
		own := a.Name() == AlertCheckerDegraded || a.Name() == AlertCheckerOverLimit
		if a.Labels[LabelRule] != "" && (own || c.opts.Settings.watches(a.Labels[LabelNamespace])) {
			ours = append(ours, a)
		}
	}
	n := c.tracker.Restore(ours)
	if n < len(ours) {
		c.opts.Logger.Warn("restore alerts: over check.limits.maxAlertsPerCycle, the rest will be raised again as found",
			"restored", n, "left_out", len(ours)-n)
	}
	return n, nil
}
