package checks

import (
	"encoding/json"
	"fmt"
	"github.com/meshguard/meshguard/internal/alerting"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// ReportFormats lists the output formats of WriteReport.
func ReportFormats() []string { return []string{"json", "text"} }

// ReportAlert is one firing alert as `check --once` prints it.
type ReportAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	Figure       float64           `json:"figure"`
	Signal       string            `json:"signal,omitempty"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
	StartsAt     time.Time         `json:"startsAt"`
}

// ReportQuery is one query of the cycle.
type ReportQuery struct {
	Signal     string  `json:"signal"`
	Query      string  `json:"query"`
	Series     int     `json:"series"`
	Dropped    int     `json:"dropped,omitempty"`
	DurationMs float64 `json:"durationMs"`
	Error      string  `json:"error,omitempty"`
	// Reused: the answer is an earlier cycle's, asked at AskedAt (the signal is asked once per
	// window, see Signal.Refresh).
	Reused  bool      `json:"reused,omitempty"`
	AskedAt time.Time `json:"askedAt"`
}

// Report is the JSON document of `check --once -o json`.
type Report struct {
	EvaluatedAt time.Time     `json:"evaluatedAt"`
	Window      string        `json:"window"`
	Firing      []ReportAlert `json:"firing"`
	Queries     []ReportQuery `json:"queries"`
	Errors      []string      `json:"errors,omitempty"`
	Limits      ReportLimits  `json:"limits"`
	// EnvoyClusterStats says whether the clients export Envoy's cluster stats, and what the
	// checker uses instead when they do not; absent when its query failed.
	EnvoyClusterStats *EnvoyStats `json:"envoyClusterStats,omitempty"`
	// Unattributed counts, by alert name, findings not raised for want of a namespace.
	Unattributed map[string]int `json:"unattributed,omitempty"`
}

// ReportLimits are the cycle's memory limits and what was over them.
type ReportLimits struct {
	MaxSeriesPerSignal int `json:"maxSeriesPerSignal"`
	MaxAlertsPerCycle  int `json:"maxAlertsPerCycle"`
	// SeriesOverLimit and AlertsOverLimit count what the cycle left out (per signal: Queries).
	SeriesOverLimit int `json:"seriesOverLimit"`
	AlertsOverLimit int `json:"alertsOverLimit"`
}

// NewReport describes a cycle's result. It copies what it needs and never changes res.
func NewReport(res *Result, s Settings) *Report {
	r := &Report{EvaluatedAt: res.EvaluatedAt, Window: promDuration(s.Window), Firing: []ReportAlert{},
		Limits: ReportLimits{MaxSeriesPerSignal: s.MaxSeriesPerSignal, MaxAlertsPerCycle: s.MaxAlertsPerCycle,
			SeriesOverLimit: res.SeriesOverLimit(), AlertsOverLimit: res.AlertsOverLimit},
		EnvoyClusterStats: res.EnvoyStats}
	for name, n := range res.Unattributed {
		if n > 0 {
			if r.Unattributed == nil {
				r.Unattributed = map[string]int{}
			}
			r.Unattributed[name] = n
		}
	}
	for _, a := range res.Firing {
		r.Firing = append(r.Firing, ReportAlert{Labels: a.Labels, Annotations: a.Annotations, Figure: a.Value,
			Signal: a.Signal, GeneratorURL: a.GeneratorURL, StartsAt: a.StartsAt()})
	}
	for _, q := range res.Queries {
		rq := ReportQuery{Signal: q.Signal, Query: q.Query, Series: q.Series, Dropped: q.Dropped, DurationMs: float64(q.Duration.Microseconds()) / 1000,
			Reused: q.Reused, AskedAt: q.At}
		if q.Err != nil {
			rq.Error = q.Err.Error()
		}
		r.Queries = append(r.Queries, rq)
	}
	for _, e := range res.Errors() {
		r.Errors = append(r.Errors, e.Error())
	}
	return r
}

// WriteReport writes the report as json or text (a table of firing alerts). An unknown format
// is an error.
func WriteReport(w io.Writer, r *Report, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		return nil
	case "text":
		return writeText(w, r)
	}
	return fmt.Errorf("output format %q: want one of %s", format, strings.Join(ReportFormats(), ", "))
}

// identityLabels are the labels shown in the TARGET column, in this order.
var identityLabels = []string{LabelCluster, "destination_workload", "service", "source_workload_namespace", "source_workload", "cluster_name", "response_flag", "peer_authentication"}

func writeText(w io.Writer, r *Report) error {
	if len(r.Firing) == 0 {
		if _, err := fmt.Fprintf(w, "No alerts: traffic over the last %s matches the configuration (%d queries at %s).\n",
			r.Window, len(r.Queries), r.EvaluatedAt.UTC().Format(time.RFC3339)); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	} else if err := writeTable(w, r); err != nil {
		return err
	}
	if err := writeOverLimit(w, r); err != nil {
		return err
	}
	return writeBlindSpots(w, r)
}

// writeBlindSpots says what the checker could not judge: without Envoy's cluster stats it
// works from response flags, and findings without a namespace are not raised.
func writeBlindSpots(w io.Writer, r *Report) error {
	var lines []string
	if e := r.EnvoyClusterStats; e != nil && e.OutboundClusters == 0 {
		lines = append(lines, e.Note)
	}
	names := make([]string, 0, len(r.Unattributed))
	for name := range r.Unattributed {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		lines = append(lines, fmt.Sprintf("%d %s findings not raised: their destination (PassthroughCluster, host:port or unknown) names no namespace.",
			r.Unattributed[name], name))
	}
	for _, l := range lines {
		if _, err := fmt.Fprintln(w, l); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	return nil
}

// writeOverLimit writes a line per limit the cycle went over: what it left out is not checked,
// and the reader must know.
func writeOverLimit(w io.Writer, r *Report) error {
	for _, q := range r.Queries {
		if q.Dropped > 0 {
			if _, err := fmt.Fprintf(w, "Over check.limits.maxSeriesPerSignal (%d): %d series of %s not evaluated.\n",
				r.Limits.MaxSeriesPerSignal, q.Dropped, q.Signal); err != nil {
				return fmt.Errorf("write report: %w", err)
			}
		}
	}
	if r.Limits.AlertsOverLimit > 0 {
		if _, err := fmt.Fprintf(w, "Over check.limits.maxAlertsPerCycle (%d): %d alerts not raised.\n",
			r.Limits.MaxAlertsPerCycle, r.Limits.AlertsOverLimit); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	return nil
}

func writeTable(w io.Writer, r *Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ALERT\tSEVERITY\tNAMESPACE\tTARGET\tFIGURE\tSUMMARY")
	for _, a := range r.Firing {
		var target []string
		for _, k := range identityLabels {
			if v := a.Labels[k]; v != "" {
				target = append(target, k+"="+v)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.4g\t%s\n", a.Labels[alerting.LabelAlertname], a.Labels[alerting.LabelSeverity], a.Labels[LabelNamespace],
			strings.Join(target, " "), a.Figure, a.Annotations["summary"])
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	counts := map[string]int{}
	for _, a := range r.Firing {
		counts[a.Labels[alerting.LabelSeverity]]++
	}
	sevs := make([]string, 0, len(counts))
	for s := range counts {
		sevs = append(sevs, fmt.Sprintf("%d %s", counts[s], s))
	}
	sort.Strings(sevs)
	_, err := fmt.Fprintf(w, "\n%d alerts firing (%s) over the last %s.\n", len(r.Firing), strings.Join(sevs, ", "), r.Window)
	return err
}
