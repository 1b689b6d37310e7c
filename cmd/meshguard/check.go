package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/klog/v2"

	"github.com/meshguard/meshguard/checks"
	"github.com/meshguard/meshguard/internal/alerting"
	"github.com/meshguard/meshguard/internal/checkd"
	"github.com/meshguard/meshguard/internal/cluster"
	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/meshguard/meshguard/internal/report"
)

// checkFlags are the flags of `meshguard check`; zero values leave the config file's settings.
type checkFlags struct {
	configPath       string
	prometheusURL    string
	alertmanagers    []string
	interval         time.Duration
	window           time.Duration
	kubeconfig       string
	configFrom       []string
	once             bool
	output           string
	listenAddress    string
	flushTimeout     time.Duration
	restoreFromAM    bool
	log              logFlags
	checkerNamespace string
	prometheusAuth   endpointFlags
	alertmanagerAuth endpointFlags
}

func (f *checkFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.configPath, "config", "", "meshguard config file (its check section: endpoints, interval, window, thresholds, namespaces, extra labels)")
	fs.StringVar(&f.prometheusURL, "prometheus-url", "", "Prometheus base URL (overrides check.prometheus.url)")
	f.prometheusAuth.register(fs, "prometheus", "Prometheus")
	fs.StringArrayVar(&f.alertmanagers, "alertmanager-url", nil, "Alertmanager base URL; repeatable, every one gets every alert (overrides check.alertmanagers)")
	f.alertmanagerAuth.register(fs, "alertmanager", "the Alertmanagers of --alertmanager-url")
	fs.DurationVar(&f.interval, "interval", 0, "time between two checks (default from config: 30s)")
	fs.DurationVar(&f.window, "window", 0, "range the rates are taken over (default from config: 5m)")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "read PeerAuthentications, VirtualServices and DestinationRules (and, for /graph, the workloads' team, tier and last deploy) from the cluster of this kubeconfig (default: $KUBECONFIG, the in-cluster config, then ~/.kube/config)")
	fs.StringArrayVar(&f.configFrom, "config-from", nil, "read PeerAuthentications, VirtualServices and DestinationRules from manifest files or directories instead of a cluster; repeatable")
	fs.BoolVar(&f.once, "once", false, "check once, print what fires and exit: 0 nothing fires, 1 something fires, 2 usage error or Prometheus unreachable")
	fs.StringVarP(&f.output, "output", "o", "text", "--once output format: "+strings.Join(checks.ReportFormats(), ", "))
	fs.StringVar(&f.listenAddress, "listen-address", ":8080", "daemon mode: address of /metrics, /healthz, /readyz and, with check.graph.enabled, /graph")
	fs.DurationVar(&f.flushTimeout, "flush-timeout", 15*time.Second, "on shutdown, how long to keep trying to deliver queued alerts")
	fs.BoolVar(&f.restoreFromAM, "restore", true, "before sending (at start, on becoming the leader, and with --once), read back from Alertmanager the alerts a previous run left firing (keeps their start times, resolves the ones that cleared)")
	f.log.register(fs, "text")
	fs.StringVar(&f.checkerNamespace, "checker-namespace", os.Getenv("POD_NAMESPACE"), "namespace label of MeshCheckerDegraded (default: $POD_NAMESPACE)")
}

func newCheckCmd() *cobra.Command {
	var f checkFlags
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check live traffic against the configuration (Prometheus in, Alertmanager out)",
		Long: `Query Prometheus for Istio's standard metrics and Envoy's cluster stats, compare them with what the
configuration promises, and raise alerts in Alertmanager (v2 API):

` + checkAlertList() + `
Each cycle runs one PromQL query per signal, aggregated by labels: the number of queries does not
grow with the number of services. Firing alerts are re-sent every cycle with endsAt four intervals
ahead; a cleared alert is sent once more with endsAt = now. A query that fails resolves nothing:
the alerts that depend on it are kept and MeshCheckerDegraded fires. Memory is bounded by
check.limits: a query keeps its maxSeriesPerSignal series with the highest values and the checker
holds maxAlertsPerCycle alerts; what is over is counted, reported and raised as MeshCheckerOverLimit.

The STRICT/PERMISSIVE picture comes from PeerAuthentication objects in the cluster (--kubeconfig,
or in-cluster) or in manifest files (--config-from DIR).

With --once it checks once, prints what fires (-o text or json) and exits 0 (nothing fires), 1
(something fires) or 2 (usage error, or Prometheus could not be queried). Given Alertmanagers, it
first reads back the alerts a previous run left firing, so that those that cleared are resolved
at once, and sends what it found, MeshCheckerDegraded included. Without --once, it runs as a
daemon serving /metrics, /healthz and /readyz on --listen-address, and on SIGTERM delivers the
alerts still queued before it exits. With check.leaderElection enabled, replicas elect a leader
on a Lease: every replica checks, only the leader sends, and a new leader first reads the firing
alerts back from Alertmanager.`,
		Example: `  meshguard check --once --prometheus-url http://prometheus:9090 --config-from k8s/
  meshguard check --once -o json --prometheus-url http://localhost:9090 --kubeconfig ~/.kube/config
  meshguard check --config meshguard.yaml --alertmanager-url http://am-0:9093 --alertmanager-url http://am-1:9093`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runCheck(cmd, &f) },
	}
	f.register(cmd.Flags())
	return cmd
}

func checkAlertList() string {
	var b strings.Builder
	for _, r := range checks.AllAlerts() {
		fmt.Fprintf(&b, "  %-22s %-8s %s\n", r.Alertname, r.Severity, r.Help)
	}
	return b.String()
}

// checkSetup is what both modes need, built from the config file and the flags.
type checkSetup struct {
	cfg      *config.Config
	settings checks.Settings
	source   checks.ConfigSource
	querier  checks.Querier
	ams      []config.Endpoint
}

func buildCheckSetup(f *checkFlags, fs *pflag.FlagSet) (*checkSetup, error) {
	cfg, err := config.Load(f.configPath)
	if err != nil {
		return nil, usageError(err)
	}
	c := &cfg.Check
	c.Prometheus = f.prometheusAuth.endpoint(f.prometheusURL, c.Prometheus)
	if fs.Changed("alertmanager-url") {
		eps := make([]config.Endpoint, 0, len(f.alertmanagers))
		for _, u := range f.alertmanagers {
			eps = append(eps, f.alertmanagerAuth.endpoint(u, c.Alertmanagers...))
		}
		c.Alertmanagers = eps
	}
	if fs.Changed("interval") {
		c.Interval = config.Duration{Duration: f.interval}
	}
	if fs.Changed("window") {
		c.Window = config.Duration{Duration: f.window}
	}
	if c.Prometheus.URL == "" {
		return nil, usageError(errors.New("no Prometheus: give --prometheus-url or check.prometheus.url in --config"))
	}
	settings := checks.SettingsFrom(cfg)
	settings.CheckerNamespace = f.checkerNamespace
	if err := settings.Validate(); err != nil {
		return nil, usageError(fmt.Errorf("check settings: %w", err))
	}
	// VirtualServices and DestinationRules: the retries of each hop for MeshRetryAmplification,
	// and the service map's policies.
	source, err := checkConfigSource(f.configFrom, f.kubeconfig, cfg, manifest.KindPeerAuthentication,
		manifest.KindVirtualService, manifest.KindDestinationRule)
	if err != nil {
		return nil, usageError(err)
	}
	prom, err := checks.NewPrometheus(c.Prometheus, nil, checks.PartialResponse(c.PartialResponse))
	if err != nil {
		return nil, usageError(err)
	}
	return &checkSetup{cfg: cfg, settings: settings, source: source, querier: prom, ams: c.Alertmanagers}, nil
}

// endpointFlags give on the command line the credentials and CA of an endpoint whose URL a flag
// names. Credentials follow their URL: the config file's token, password and TLS settings are
// for the host it names, and are never sent to another one.
type endpointFlags struct {
	tokenFile, caFile string
}

func (e *endpointFlags) register(fs *pflag.FlagSet, prefix, what string) {
	fs.StringVar(&e.tokenFile, prefix+"-bearer-token-file", "", "file holding the bearer token for "+what+
		" (a URL given by flag gets no credentials from --config unless it is the same URL)")
	fs.StringVar(&e.caFile, prefix+"-ca-file", "", "CA certificate file to verify "+what+" with")
}

// endpoint returns the endpoint of url ("" keeps the first configured one's URL): the configured
// endpoint of the same URL with its credentials, or a bare one, then what the flags give.
func (e *endpointFlags) endpoint(url string, configured ...config.Endpoint) config.Endpoint {
	if url == "" && len(configured) > 0 {
		url = configured[0].URL
	}
	ep := config.Endpoint{URL: url}
	for _, c := range configured {
		if strings.TrimRight(c.URL, "/") == strings.TrimRight(url, "/") {
			ep = c
		}
	}
	if e.tokenFile != "" {
		ep.BearerToken, ep.BearerTokenFile, ep.BasicAuth = "", e.tokenFile, nil
	}
	if e.caFile != "" {
		ep.TLS = &config.TLS{CAFile: e.caFile}
	}
	return ep
}

// checkConfigSource picks where the Istio objects come from: files, the cluster, or the
// clusters of check.clusters, each through its own kubeconfig context.
func checkConfigSource(paths []string, kubeconfig string, cfg *config.Config, kinds ...string) (checks.ConfigSource, error) {
	clusters, limit := cfg.Check.Clusters, cfg.Check.Limits.MaxWorkloadLabelSets
	if limit < 0 {
		return nil, fmt.Errorf("check.limits.maxWorkloadLabelSets (%d) must not be negative", limit)
	}
	if len(paths) > 0 && kubeconfig != "" {
		return nil, errors.New("give --config-from or --kubeconfig, not both")
	}
	if len(paths) > 0 && len(clusters) > 0 {
		return nil, errors.New("give --config-from or check.clusters, not both")
	}
	// Without pods from the API server (manifests without workloads, or no right to list
	// pods), the mTLS checks read pod labels from kube-state-metrics through Prometheus.
	mtls := false
	for _, k := range kinds {
		mtls = mtls || k == manifest.KindPeerAuthentication
	}
	withKubeState := func(src checks.ConfigSource) (checks.ConfigSource, error) {
		if cfg.Check.Prometheus.URL == "" || !mtls {
			return src, nil
		}
		prom, err := checks.NewPrometheus(cfg.Check.Prometheus, nil)
		if err != nil {
			return nil, err
		}
		return checks.KubeStateSource{Base: src, Querier: prom, MaxWorkloadLabelSets: limit}, nil
	}
	if len(paths) > 0 {
		src := checks.FileSource{Paths: paths, RootNamespace: cfg.RootNamespace, MaxWorkloadLabelSets: limit}
		// Read once now so a wrong path is a usage error, not a degraded daemon.
		if _, err := src.Load(context.Background()); err != nil {
			return nil, err
		}
		return withKubeState(src)
	}
	if len(clusters) == 0 {
		rc, err := cluster.RESTConfig(kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("%w (or give --config-from DIR)", err)
		}
		src, err := checks.NewClusterSource(rc, cfg.RootNamespace, kinds...)
		if err != nil {
			return nil, err
		}
		src.MaxWorkloadLabelSets = limit
		return withKubeState(src)
	}
	var set checks.ClusterSet
	seen := map[string]bool{}
	for i, c := range clusters {
		if c.Name == "" || seen[c.Name] {
			return nil, fmt.Errorf("check.clusters[%d]: a cluster needs a name of its own (its destination_cluster value), got %q", i, c.Name)
		}
		seen[c.Name] = true
		path := c.Kubeconfig
		if path == "" {
			path = kubeconfig
		}
		rc, err := cluster.ContextConfig(path, c.Context)
		if err != nil {
			return nil, fmt.Errorf("check.clusters[%d] (%s): %w", i, c.Name, err)
		}
		src, err := checks.NewClusterSource(rc, cfg.RootNamespace, kinds...)
		if err != nil {
			return nil, fmt.Errorf("check.clusters[%d] (%s): %w", i, c.Name, err)
		}
		src.Name, src.MaxWorkloadLabelSets = c.Name, limit
		set.Sources = append(set.Sources, src)
	}
	return set, nil
}

func runCheck(cmd *cobra.Command, f *checkFlags) error {
	if f.once {
		if _, err := checkFormat(f.output); err != nil {
			return err
		}
	}
	setup, err := buildCheckSetup(f, cmd.Flags())
	if err != nil {
		return err
	}
	h, err := f.log.handler(cmd.ErrOrStderr(), 0)
	if err != nil {
		return err
	}
	logger := slog.New(h)
	if f.once {
		return runCheckOnce(cmd, f, setup, logger)
	}
	return runCheckDaemon(cmd.Context(), f, setup, logger)
}

func checkFormat(s string) (string, error) {
	for _, f := range checks.ReportFormats() {
		if s == f {
			return s, nil
		}
	}
	return "", usageError(report.UnknownFormat(s, checks.ReportFormats()...))
}

func checkNotifier(ams []config.Endpoint, metrics *checks.Metrics, logger *slog.Logger) (*alerting.Notifier, error) {
	if len(ams) == 0 {
		return nil, nil
	}
	n, err := alerting.NewNotifier(alerting.NotifierOptions{Alertmanagers: ams, Metrics: metrics.Alerting, Logger: logger})
	if err != nil {
		return nil, usageError(err)
	}
	return n, nil
}

// runCheckOnce runs one cycle. With Alertmanagers it first reads back the alerts a previous run
// left firing, so that what cleared meanwhile is resolved now, and sends what the cycle found,
// MeshCheckerDegraded included. A failed query or configuration read makes the result
// untrustworthy for a script: exit 2.
func runCheckOnce(cmd *cobra.Command, f *checkFlags, setup *checkSetup, logger *slog.Logger) error {
	metrics := checks.NewMetrics(nil)
	notifier, err := checkNotifier(setup.ams, metrics, logger)
	if err != nil {
		return err
	}
	checker, err := checks.New(checks.Options{Settings: setup.settings, Querier: setup.querier, Config: setup.source,
		Notifier: notifier, Metrics: metrics, Logger: logger})
	if err != nil {
		return usageError(err)
	}
	if notifier != nil && f.restoreFromAM {
		rctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
		if _, err := checker.Restore(rctx); err != nil {
			logger.Warn("could not read back firing alerts; alerts that cleared are left to expire", "err", err)
		}
		cancel()
	}
	res := checker.Cycle(cmd.Context())
	if notifier != nil {
		ctx, cancel := context.WithTimeout(context.Background(), f.flushTimeout)
		defer cancel()
		if err := notifier.Stop(ctx); err != nil {
			fmt.Fprintln(cmd.ErrOrStderr(), "meshguard: alerts not delivered:", err)
		}
	}
	if res.Degraded() {
		return &exitError{code: 2, err: fmt.Errorf("cannot check: Prometheus at %s or the mesh configuration could not be read: %w",
			setup.cfg.Check.Prometheus.URL, errors.Join(res.Errors()...))}
	}
	if err := checks.WriteReport(cmd.OutOrStdout(), checks.NewReport(res, setup.settings), f.output); err != nil {
		return err
	}
	if len(res.Firing) > 0 {
		return &exitError{code: 1}
	}
	return nil
}

// runCheckDaemon runs the checker as a daemon (internal/checkd) until ctx ends (SIGTERM or
// interrupt), with leader election when check.leaderElection is enabled.
func runCheckDaemon(ctx context.Context, f *checkFlags, setup *checkSetup, logger *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfoCollector())
	metrics := checks.NewMetrics(reg)
	notifier, err := checkNotifier(setup.ams, metrics, logger)
	if err != nil {
		return err
	}
	var election *checkd.Election
	if le := setup.cfg.Check.LeaderElection; le.Enabled {
		rc, err := cluster.RESTConfig(f.kubeconfig)
		if err != nil {
			return usageError(fmt.Errorf("check.leaderElection needs the cluster: %w", err))
		}
		if election, err = checkd.NewElection(rc, le, f.checkerNamespace, setup.settings.Interval, logger); err != nil {
			return usageError(err)
		}
		// client-go's leader election logs through klog: keep one format and level on stderr.
		klog.SetSlogLogger(logger)
	}
	gate := &checkd.Gate{}
	checker, err := checks.New(checks.Options{Settings: setup.settings, Querier: setup.querier, Config: setup.source,
		Notifier: notifier, MaySend: gate.Open, Metrics: metrics, Logger: logger})
	if err != nil {
		return usageError(err)
	}
	// Bind before anything else so a taken port is a usage error at once.
	ln, err := net.Listen("tcp", f.listenAddress)
	if err != nil {
		return usageError(fmt.Errorf("--listen-address %s: %w", f.listenAddress, err))
	}
	logger.Info("meshguard check running", "listen", ln.Addr().String(), "prometheus", setup.cfg.Check.Prometheus.URL,
		"alertmanagers", len(setup.ams), "interval", setup.settings.Interval, "window", setup.settings.Window, "config", setup.source.String(),
		"leader_election", election != nil)
	err = checkd.Run(ctx, checkd.Options{Checker: checker, Gate: gate, Notifier: notifier, Registry: reg, Listener: ln,
		Interval: setup.settings.Interval, Restore: f.restoreFromAM, Election: election, FlushTimeout: f.flushTimeout, Logger: logger})
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	return nil
}
