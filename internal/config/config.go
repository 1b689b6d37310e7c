// Package config reads the one meshguard configuration file shared by `lint`, `serve`, `audit`
// and `check`: rule switches, severities and parameters, webhook enforcement, and the runtime
// checker's settings.
package config

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"sigs.k8s.io/yaml"
)

// Enforcement is what the webhook does with a rule's error findings.
type Enforcement string

const (
	// EnforceDeny refuses the object (error findings only; warnings stay warnings).
	EnforceDeny Enforcement = "deny"
	// EnforceWarn turns every finding into an admission warning and never denies.
	EnforceWarn Enforcement = "warn"
	// EnforceAudit admits silently; findings are logged and counted only.
	EnforceAudit Enforcement = "audit"
)

// Config is the whole file. Every field has a default (Default()), so an empty file is valid.
type Config struct {
	// RootNamespace is Istio's root config namespace: policies there without a selector are mesh-wide.
	RootNamespace string `json:"rootNamespace,omitempty"`
	// MeshDomain is the cluster DNS domain used to expand short host names.
	MeshDomain string `json:"meshDomain,omitempty"`
	// Rules tunes individual rules by ID.
	Rules map[string]RuleConfig `json:"rules,omitempty"`
	// Evaluation bounds how rules are evaluated, in every command.
	Evaluation Evaluation `json:"evaluation,omitempty"`
	// Webhook configures `meshguard serve`.
	Webhook Webhook `json:"webhook,omitempty"`
	// Check configures `meshguard check`.
	Check Check `json:"check,omitempty"`
}

// RuleConfig overrides one rule's defaults.
type RuleConfig struct {
	// Enabled switches the rule off when false.
	Enabled *bool `json:"enabled,omitempty"`
	// Severity overrides the default severity: error, warning or info.
	Severity string `json:"severity,omitempty"`
	// Enforcement overrides the webhook's global enforcement for this rule.
	Enforcement Enforcement `json:"enforcement,omitempty"`
	// Params overrides the rule's parameters by name.
	Params map[string]any `json:"params,omitempty"`
}

// Evaluation bounds the evaluation of one object. The object's author is not trusted: what it
// writes must not make a review unbounded.
type Evaluation struct {
	// Timeout bounds the evaluation of one object. An object whose evaluation does not finish
	// in time gets an MG002 error finding (the webhook refuses it). In the webhook, the whole
	// review is also bounded by webhook.timeout.
	Timeout Duration `json:"timeout,omitempty"`
	// UnsafeRegoBuiltins lets Rego policies call OPA's built-ins that reach outside the
	// evaluation: http.send, net.lookup_ip_addr, time.now_ns, rand.*, uuid.*, opa.runtime, and
	// the others OPA marks non-deterministic. Off by default: with them, a policy can send
	// requests from the webhook's network position and verdicts stop being reproducible.
	UnsafeRegoBuiltins bool `json:"unsafeRegoBuiltins,omitempty"`
}

// Webhook configures the admission webhook.
type Webhook struct {
	// Enforcement is the default for every rule: deny, warn or audit.
	Enforcement Enforcement `json:"enforcement,omitempty"`
	// FailurePolicy is the answer when evaluation fails (a policy error, a panic, the deadline):
	// "allow" (admit with a warning) or "deny".
	FailurePolicy string `json:"failurePolicy,omitempty"`
	// Timeout bounds one evaluation; keep it below the API server's webhook timeoutSeconds.
	Timeout Duration `json:"timeout,omitempty"`
	// MaxRequestBytes bounds an AdmissionReview body.
	MaxRequestBytes int64 `json:"maxRequestBytes,omitempty"`
	// MaxConcurrentReviews bounds evaluations in flight.
	MaxConcurrentReviews int `json:"maxConcurrentReviews,omitempty"`
	// MaxInFlightBytes bounds the request bodies of the reviews in flight, taken before a body
	// is read: a decoded object holds up to ~30 times its JSON size, so this bounds memory.
	MaxInFlightBytes int64 `json:"maxInFlightBytes,omitempty"`
	// IstiodValidation says when the webhook runs istiod's own validation of an object:
	// "auto" (leave it to istiod's validating webhook where the cluster has one that fails
	// closed and is sure to see the object, which refuses the same objects with the same
	// words) or "always".
	IstiodValidation string `json:"istiodValidation,omitempty"`
}

// Values of Webhook.IstiodValidation.
const (
	IstiodValidationAuto   = "auto"
	IstiodValidationAlways = "always"
)

// Check configures the runtime checker.
type Check struct {
	Prometheus    Endpoint          `json:"prometheus,omitempty"`
	Alertmanagers []Endpoint        `json:"alertmanagers,omitempty"`
	Interval      Duration          `json:"interval,omitempty"`
	Window        Duration          `json:"window,omitempty"`
	Namespaces    NamespaceFilter   `json:"namespaces,omitempty"`
	ExtraLabels   map[string]string `json:"extraLabels,omitempty"`
	Thresholds    Thresholds        `json:"thresholds,omitempty"`
	// RunbookBaseURL prefixes each alert's runbook anchor.
	RunbookBaseURL string `json:"runbookBaseURL,omitempty"`
	// PrometheusExternalURL is used for alerts' generatorURL when Prometheus is reached under
	// another address than users open (defaults to the Prometheus URL).
	PrometheusExternalURL string `json:"prometheusExternalURL,omitempty"`
	// Limits bound what the checker holds in memory.
	Limits CheckLimits `json:"limits,omitempty"`
	// Graph configures the service map (`meshguard graph`, and /graph of the daemon).
	Graph CheckGraph `json:"graph,omitempty"`
	// ClusterLabels name the labels that carry the cluster of a series' two ends in a
	// multi-cluster mesh (Istio's source_cluster and destination_cluster by default).
	ClusterLabels ClusterLabels `json:"clusterLabels,omitempty"`
	// Clusters are the clusters of a multi-cluster mesh, each read through its own kubeconfig
	// context; empty reads the one cluster of --kubeconfig (or in-cluster).
	Clusters []CheckCluster `json:"clusters,omitempty"`
	// PartialResponse is sent to Prometheus as Thanos' partial_response parameter (unset: the
	// backend's default). true: Thanos answers with what the stores it reached hold, plus
	// warnings; false: it fails the query instead. Either way a partial answer resolves nothing
	// and the cycle is degraded.
	PartialResponse *bool `json:"partialResponse,omitempty"`
	// LeaderElection lets several replicas run with one sending to Alertmanager.
	LeaderElection LeaderElection `json:"leaderElection,omitempty"`
}

// ClusterLabels name the source and destination cluster labels of Istio's metrics.
type ClusterLabels struct {
	Source      string `json:"source,omitempty"`
	Destination string `json:"destination,omitempty"`
}

// CheckCluster is one cluster of the mesh: Name is its cluster ID, the destination_cluster
// value of its series; an empty Kubeconfig or Context takes the default one.
type CheckCluster struct {
	Name       string `json:"name"`
	Kubeconfig string `json:"kubeconfig,omitempty"`
	Context    string `json:"context,omitempty"`
}

// LeaderElection configures the checker replicas' election on a coordination.k8s.io Lease.
// Every replica queries and serves /metrics and /readyz; only the leader sends alerts, and a new
// leader first reads the firing alerts back from Alertmanager. The durations follow client-go's
// leaderelection: a dead leader is replaced within LeaseDuration plus RetryPeriod.
type LeaderElection struct {
	Enabled bool `json:"enabled,omitempty"`
	// LeaseName and LeaseNamespace name the Lease (namespace default: $POD_NAMESPACE).
	LeaseName      string `json:"leaseName,omitempty"`
	LeaseNamespace string `json:"leaseNamespace,omitempty"`
	// LeaseDuration is how long followers wait after the last renewal before taking over;
	// RenewDeadline how long the leader keeps retrying a renewal before it stops sending;
	// RetryPeriod the time between two attempts.
	LeaseDuration Duration `json:"leaseDuration,omitempty"`
	RenewDeadline Duration `json:"renewDeadline,omitempty"`
	RetryPeriod   Duration `json:"retryPeriod,omitempty"`
}

// CheckGraph configures the service map.
type CheckGraph struct {
	// Enabled serves the map at /graph of `meshguard check`, rebuilt every cycle (read-only).
	Enabled bool `json:"enabled,omitempty"`
	// Health colours nodes and edges: red at or above a critical figure, yellow at or above a
	// warning one.
	Health GraphHealth `json:"health,omitempty"`
	// TeamKeys and TierKeys name the labels or annotations that give a workload's owner team
	// and tier, tried in order on its pod template's labels, then its own labels and
	// annotations; the first one set wins.
	TeamKeys []string `json:"teamKeys,omitempty"`
	TierKeys []string `json:"tierKeys,omitempty"`
}

// GraphHealth are the service map's health thresholds.
type GraphHealth struct {
	ErrorRateWarning  float64  `json:"errorRateWarning,omitempty"`
	ErrorRateCritical float64  `json:"errorRateCritical,omitempty"`
	P99Warning        Duration `json:"p99Warning,omitempty"`
	P99Critical       Duration `json:"p99Critical,omitempty"`
}

// CheckLimits bound the checker's memory whatever the size of the mesh. What is over a limit is
// counted and reported (check report, metrics, MeshCheckerOverLimit), never dropped silently.
type CheckLimits struct {
	// MaxSeriesPerSignal bounds the series one signal's query may return; Prometheus is asked
	// for the ones with the highest values (topk).
	MaxSeriesPerSignal int `json:"maxSeriesPerSignal,omitempty"`
	// MaxAlertsPerCycle bounds the alerts the checker holds; past it, new alerts are not raised
	// (critical ones first, then the highest figures, are kept).
	MaxAlertsPerCycle int `json:"maxAlertsPerCycle,omitempty"`
	// MaxWorkloadLabelSets bounds the distinct pod label sets kept per cluster to match
	// PeerAuthentication selectors (0: 20,000); past it, workloads fall back to telemetry's
	// app and version labels and the alerts say so.
	MaxWorkloadLabelSets int `json:"maxWorkloadLabelSets,omitempty"`
}

// Endpoint is an HTTP server the checker talks to, with its credentials.
type Endpoint struct {
	URL             string     `json:"url,omitempty"`
	BearerToken     string     `json:"bearerToken,omitempty"`
	BearerTokenFile string     `json:"bearerTokenFile,omitempty"`
	BasicAuth       *BasicAuth `json:"basicAuth,omitempty"`
	TLS             *TLS       `json:"tls,omitempty"`
	// Headers are sent with every request, e.g. X-Scope-OrgID for a Mimir or Cortex tenant;
	// HeaderFiles take a header's value from a file, read on each request like a token file.
	// Their values are secrets: they are never logged.
	Headers     map[string]string `json:"headers,omitempty"`
	HeaderFiles map[string]string `json:"headerFiles,omitempty"`
}

// BasicAuth holds basic-auth credentials.
type BasicAuth struct {
	Username     string `json:"username"`
	Password     string `json:"password,omitempty"`
	PasswordFile string `json:"passwordFile,omitempty"`
}

// TLS holds client TLS options.
type TLS struct {
	CAFile             string `json:"caFile,omitempty"`
	InsecureSkipVerify bool   `json:"insecureSkipVerify,omitempty"`
}

// NamespaceFilter narrows the namespaces the checker looks at.
type NamespaceFilter struct {
	Include []string `json:"include,omitempty"`
	Exclude []string `json:"exclude,omitempty"`
}

// Thresholds are the checker's alert thresholds.
type Thresholds struct {
	// RetryRatio: retries / requests above which MeshRetryStorm fires.
	RetryRatio float64 `json:"retryRatio,omitempty"`
	// UpstreamTimeoutRatio: share of UT responses above which MeshUpstreamTimeouts fires.
	UpstreamTimeoutRatio float64 `json:"upstreamTimeoutRatio,omitempty"`
	// RetryAmplification: the most requests one call at a chain's entry may cause at a service
	// (the product of attempts + 1 over the hops) before MeshRetryAmplification fires.
	RetryAmplification float64 `json:"retryAmplification,omitempty"`
}

// Duration is a time.Duration written as "30s" in YAML.
type Duration struct{ time.Duration }

// UnmarshalJSON reads "30s"-style durations.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := yaml.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return []byte(`"` + d.String() + `"`), nil }

// Default returns the built-in defaults.
func Default() *Config {
	return &Config{
		RootNamespace: "istio-system",
		MeshDomain:    "cluster.local",
		Evaluation:    Evaluation{Timeout: Duration{5 * time.Second}},
		Webhook: Webhook{
			Enforcement:          EnforceDeny,
			FailurePolicy:        "allow",
			Timeout:              Duration{8 * time.Second},
			MaxRequestBytes:      3 << 20,
			MaxConcurrentReviews: 64,
			MaxInFlightBytes:     6 << 20,
			IstiodValidation:     IstiodValidationAuto,
		},
		Check: Check{
			Interval:       Duration{30 * time.Second},
			Window:         Duration{5 * time.Minute},
			Thresholds:     Thresholds{RetryRatio: 0.05, UpstreamTimeoutRatio: 0.01, RetryAmplification: 10},
			RunbookBaseURL: "https://github.com/meshguard/meshguard/blob/main/docs/runbooks.md",
			// Measured at 20,000 series per signal: a daemon holding these peaks at 134 MB RSS,
			// room under the chart's 256Mi for Alertmanager queues and longer labels.
			Limits: CheckLimits{MaxSeriesPerSignal: 1000, MaxAlertsPerCycle: 500},
			// Green under 1% errors: yellow from half of it; latency goals likewise.
			Graph: CheckGraph{Health: GraphHealth{ErrorRateWarning: 0.005, ErrorRateCritical: 0.01,
				P99Warning: Duration{500 * time.Millisecond}, P99Critical: Duration{time.Second}},
				TeamKeys: []string{"team"}, TierKeys: []string{"tier"}},
			ClusterLabels: ClusterLabels{Source: "source_cluster", Destination: "destination_cluster"},
			// client-go's defaults for controllers: a dead leader is replaced within ~17 s,
			// well inside the 4 intervals a firing alert stays valid in Alertmanager.
			LeaderElection: LeaderElection{LeaseName: "meshguard-checker", LeaseDuration: Duration{15 * time.Second},
				RenewDeadline: Duration{10 * time.Second}, RetryPeriod: Duration{2 * time.Second}},
		},
	}
}

// Load reads path over the defaults; an empty path gives the defaults. Unknown keys are errors:
// a misspelt setting must not be silently ignored.
func Load(path string) (*Config, error) {
	c := Default()
	if path == "" {
		return c, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	if err := Parse(data, c); err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	return c, nil
}

// Parse reads YAML data over c and validates the result. Unknown keys are reported with their
// line and the closest known key.
func Parse(data []byte, c *Config) error {
	if err := checkKeys(data); err != nil {
		return err
	}
	if err := yaml.UnmarshalStrict(data, c); err != nil {
		return decodeError(data, err)
	}
	return c.Validate()
}

// Validate checks the values that are not rule-specific (rules validate their own params).
func (c *Config) Validate() error {
	var errs []error
	switch c.Webhook.Enforcement {
	case EnforceDeny, EnforceWarn, EnforceAudit:
	default:
		errs = append(errs, fmt.Errorf("webhook.enforcement: %q is not deny, warn or audit", c.Webhook.Enforcement))
	}
	switch c.Webhook.FailurePolicy {
	case "allow", "deny":
	default:
		errs = append(errs, fmt.Errorf("webhook.failurePolicy: %q is not allow or deny", c.Webhook.FailurePolicy))
	}
	switch c.Webhook.IstiodValidation {
	case IstiodValidationAuto, IstiodValidationAlways:
	default:
		errs = append(errs, fmt.Errorf("webhook.istiodValidation: %q is not auto or always", c.Webhook.IstiodValidation))
	}
	for id, r := range c.Rules {
		switch r.Severity {
		case "", "error", "warning", "info":
		default:
			errs = append(errs, fmt.Errorf("rules.%s.severity: %q is not error, warning or info", id, r.Severity))
		}
		switch r.Enforcement {
		case "", EnforceDeny, EnforceWarn, EnforceAudit:
		default:
			errs = append(errs, fmt.Errorf("rules.%s.enforcement: %q is not deny, warn or audit", id, r.Enforcement))
		}
	}
	// A zero deadline would turn the bound off, which the object's author could then exploit.
	if c.Webhook.Timeout.Duration <= 0 {
		errs = append(errs, fmt.Errorf("webhook.timeout: %s must be positive", c.Webhook.Timeout.Duration))
	}
	if c.Evaluation.Timeout.Duration <= 0 {
		errs = append(errs, fmt.Errorf("evaluation.timeout: %s must be positive", c.Evaluation.Timeout.Duration))
	}
	if c.Webhook.MaxRequestBytes <= 0 || c.Webhook.MaxConcurrentReviews <= 0 {
		errs = append(errs, errors.New("webhook.maxRequestBytes and webhook.maxConcurrentReviews must be positive"))
	}
	if c.Webhook.MaxInFlightBytes < c.Webhook.MaxRequestBytes {
		errs = append(errs, fmt.Errorf("webhook.maxInFlightBytes (%d) must be at least webhook.maxRequestBytes (%d)", c.Webhook.MaxInFlightBytes, c.Webhook.MaxRequestBytes))
	}
	if c.Check.Interval.Duration < 0 || c.Check.Window.Duration < 0 {
		errs = append(errs, errors.New("check.interval and check.window must be positive"))
	}
	// Zero would mean no bound: the checker's memory would grow with the mesh again.
	if c.Check.Limits.MaxSeriesPerSignal <= 0 || c.Check.Limits.MaxAlertsPerCycle <= 0 {
		errs = append(errs, errors.New("check.limits.maxSeriesPerSignal and check.limits.maxAlertsPerCycle must be positive"))
	}
	if slices.Contains(c.Check.Graph.TeamKeys, "") || slices.Contains(c.Check.Graph.TierKeys, "") {
		errs = append(errs, errors.New("check.graph.teamKeys and check.graph.tierKeys: a key must not be empty"))
	}
	if le := c.Check.LeaderElection; le.Enabled {
		if le.LeaseName == "" || le.RetryPeriod.Duration <= 0 || le.RenewDeadline.Duration <= le.RetryPeriod.Duration ||
			le.LeaseDuration.Duration <= le.RenewDeadline.Duration {
			errs = append(errs, errors.New("check.leaderElection: want a leaseName and leaseDuration > renewDeadline > retryPeriod > 0"))
		}
	}
	return errors.Join(errs...)
}

// EnforcementFor returns the webhook enforcement of a rule.
func (c *Config) EnforcementFor(rule string) Enforcement {
	if r, ok := c.Rules[rule]; ok && r.Enforcement != "" {
		return r.Enforcement
	}
	return c.Webhook.Enforcement
}
