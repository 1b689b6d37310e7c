package checks

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/internal/graph"
	"github.com/meshguard/meshguard/internal/mesh"
)

// Settings are the checker's parameters, read from the shared config file (SettingsFrom) and
// overridden by flags.
type Settings struct {
	// Interval is the time between two cycles; EndsAt of a firing alert is 4 intervals ahead.
	Interval time.Duration
	// Window is the range every rate is taken over.
	Window time.Duration
	// RetryRatio is retries / requests above which MeshRetryStorm fires.
	RetryRatio float64
	// UpstreamTimeoutRatio is the share of UT responses above which MeshUpstreamTimeouts fires.
	UpstreamTimeoutRatio float64
	// Include and Exclude filter namespaces by name or glob (path.Match); an empty Include means
	// every namespace. Exclude wins.
	Include, Exclude []string
	// ExtraLabels are added to every alert (never overriding the alert's own labels), for
	// example the cluster's name.
	ExtraLabels map[string]string
	// RunbookBaseURL prefixes each alert's runbook anchor.
	RunbookBaseURL string
	// PrometheusURL is the Prometheus that generatorURL links open.
	PrometheusURL string
	// RootNamespace is Istio's root config namespace (mesh-wide policies live there).
	RootNamespace string
	// MeshDomain is the cluster DNS domain of service hosts.
	MeshDomain string
	// CheckerNamespace is the namespace label of MeshCheckerDegraded (where the checker runs).
	CheckerNamespace string
	// MaxSeriesPerSignal bounds the series kept from one signal's query; the rest are counted.
	MaxSeriesPerSignal int
	// MaxAlertsPerCycle bounds the alerts the checker holds; new ones past it are counted.
	MaxAlertsPerCycle int
	// RetryAmplification is the worst case (requests per entry call at one service) above which
	// MeshRetryAmplification fires.
	RetryAmplification float64
	// Graph builds the service map every cycle, for /graph.
	Graph bool
	// GraphThresholds colour the service map.
	GraphThresholds graph.Thresholds
	// GraphKeys name the labels or annotations of a workload's team and tier on the map.
	GraphKeys graph.MetadataKeys
	// ClusterLabels name the labels of a series' source and destination cluster; every query
	// that raises alerts aggregates by the destination one, and alerts carry it as "cluster".
	ClusterLabels config.ClusterLabels
}

// SettingsFrom reads the check section of the shared config. The generatorURL base is the
// configured external URL, or the Prometheus URL.
func SettingsFrom(c *config.Config) Settings {
	s := Settings{
		Interval:             c.Check.Interval.Duration,
		Window:               c.Check.Window.Duration,
		RetryRatio:           c.Check.Thresholds.RetryRatio,
		UpstreamTimeoutRatio: c.Check.Thresholds.UpstreamTimeoutRatio,
		Include:              c.Check.Namespaces.Include,
		Exclude:              c.Check.Namespaces.Exclude,
		ExtraLabels:          c.Check.ExtraLabels,
		RunbookBaseURL:       c.Check.RunbookBaseURL,
		PrometheusURL:        c.Check.PrometheusExternalURL,
		RootNamespace:        c.RootNamespace,
		MeshDomain:           c.MeshDomain,
		MaxSeriesPerSignal:   c.Check.Limits.MaxSeriesPerSignal,
		MaxAlertsPerCycle:    c.Check.Limits.MaxAlertsPerCycle,
		RetryAmplification:   c.Check.Thresholds.RetryAmplification,
		Graph:                c.Check.Graph.Enabled,
		GraphThresholds:      GraphThresholds(c),
		GraphKeys:            GraphKeys(c),
		ClusterLabels:        c.Check.ClusterLabels,
	}
	if s.PrometheusURL == "" {
		s.PrometheusURL = c.Check.Prometheus.URL
	}
	return s
}

// Validate reports settings the checker cannot run with.
func (s Settings) Validate() error {
	var errs []error
	if s.Interval <= 0 {
		errs = append(errs, fmt.Errorf("interval %s must be positive", s.Interval))
	}
	// rate() needs two samples in the window, and PromQL durations have no sub-second units
	// that every Prometheus accepts.
	if s.Window < time.Second || s.Window%time.Millisecond != 0 {
		errs = append(errs, fmt.Errorf("window %s must be at least 1s (whole milliseconds)", s.Window))
	}
	if s.RetryRatio <= 0 || s.RetryRatio >= 1 {
		errs = append(errs, fmt.Errorf("retry ratio %v must be in (0, 1)", s.RetryRatio))
	}
	if s.UpstreamTimeoutRatio <= 0 || s.UpstreamTimeoutRatio >= 1 {
		errs = append(errs, fmt.Errorf("upstream timeout ratio %v must be in (0, 1)", s.UpstreamTimeoutRatio))
	}
	if s.MaxSeriesPerSignal <= 0 || s.MaxAlertsPerCycle <= 0 {
		errs = append(errs, fmt.Errorf("limits (%d series per signal, %d alerts) must be positive", s.MaxSeriesPerSignal, s.MaxAlertsPerCycle))
	}
	if s.RetryAmplification < 1 {
		errs = append(errs, fmt.Errorf("retry amplification budget %v must be at least 1 (one call, no retry)", s.RetryAmplification))
	}
	for _, l := range []string{s.ClusterLabels.Source, s.ClusterLabels.Destination} {
		if !model.LegacyValidation.IsValidLabelName(l) {
			errs = append(errs, fmt.Errorf("cluster label %q is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)", l))
		}
	}
	if err := s.GraphThresholds.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("graph health: %w", err))
	}
	for _, p := range append(append([]string(nil), s.Include...), s.Exclude...) {
		if _, err := path.Match(p, ""); err != nil {
			errs = append(errs, fmt.Errorf("namespace pattern %q: %w", p, err))
		}
	}
	for k := range s.ExtraLabels {
		if reservedLabel(k) {
			errs = append(errs, fmt.Errorf("extra label %q would override the alert's own label", k))
		}
	}
	return errors.Join(errs...)
}

// GraphThresholds reads the service map's health thresholds from the config.
func GraphThresholds(c *config.Config) graph.Thresholds {
	h := c.Check.Graph.Health
	return graph.Thresholds{ErrorRateWarning: h.ErrorRateWarning, ErrorRateCritical: h.ErrorRateCritical,
		P99WarningMs: float64(h.P99Warning.Milliseconds()), P99CriticalMs: float64(h.P99Critical.Milliseconds())}
}

// GraphKeys reads the labels or annotations of a workload's team and tier from the config.
func GraphKeys(c *config.Config) graph.MetadataKeys {
	return graph.MetadataKeys{Team: c.Check.Graph.TeamKeys, Tier: c.Check.Graph.TierKeys}
}

func (s Settings) domain() string {
	if s.MeshDomain == "" {
		return mesh.DefaultDomain
	}
	return s.MeshDomain
}

// watches tells whether the checker looks at namespace ns. Findings about workloads outside the
// filter are dropped; a host outside the mesh (no namespace) is kept unless Include is set.
func (s Settings) watches(ns string) bool {
	for _, p := range s.Exclude {
		if ok, _ := path.Match(p, ns); ok {
			return false
		}
	}
	if len(s.Include) == 0 {
		return true
	}
	for _, p := range s.Include {
		if ok, _ := path.Match(p, ns); ok {
			return true
		}
	}
	return false
}

// explicitlyIncluded tells whether ns is named by an Include pattern (the root namespace is only
// checked for blindness when it is).
func (s Settings) explicitlyIncluded(ns string) bool {
	for _, p := range s.Include {
		if ok, _ := path.Match(p, ns); ok {
			return true
		}
	}
	return false
}

// runbook returns the runbook link of an alert: the base URL with the alert name as anchor.
func (s Settings) runbook(alertname string) string {
	if s.RunbookBaseURL == "" {
		return ""
	}
	return strings.TrimRight(s.RunbookBaseURL, "#") + "#" + strings.ToLower(alertname)
}
