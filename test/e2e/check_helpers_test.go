package e2e

// Helpers of the runtime checker's end-to-end tests (check_*_test.go): a synthetic mesh scraped
// by a real Prometheus, real Alertmanagers with a webhook receiver, and the checker run
// in-process through the checks package or as the meshguard binary.

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-openapi/strfmt"
	amalert "github.com/prometheus/alertmanager/api/v2/client/alert"
	"github.com/prometheus/alertmanager/api/v2/models"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/checks"
	"github.com/meshguard/meshguard/internal/alerting"
	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/meshguard/meshguard/test/harness"
	"github.com/meshguard/meshguard/test/meshsim"
)

// Timing of the live tests: a 1 s scrape, a 1 s cycle and a 10 s window keep a fire-and-resolve
// round under half a minute. Prometheus's first scrape comes ~5 s after it starts.
const (
	checkInterval = time.Second
	checkWindow   = 10 * time.Second
	// checkFireWait bounds the wait for an alert to fire: first scrape, two samples in the
	// window, a cycle, Alertmanager's dispatch.
	checkFireWait = 45 * time.Second
	// checkResolveWait bounds the wait for a resolution: the window has to slide past the last
	// sample with traffic, plus a window of grace after a Prometheus restart.
	checkResolveWait = 60 * time.Second
	checkPoll        = 100 * time.Millisecond
)

// Workloads of the live scenarios; each scenario has its own namespace so they can share a mesh.
var (
	checkLegacy   = meshsim.Workload{Name: "batch", Namespace: "legacy", App: "batch"}
	checkFrontend = meshsim.Workload{Name: "frontend", Namespace: "storm", App: "frontend"}
	checkBackend  = meshsim.Workload{Name: "backend-v1", Namespace: "storm", App: "backend"}
)

// checkMeshConfig is the configuration of the live scenarios: STRICT mesh-wide, a STRICT
// namespace with no traffic (quiet), and a PERMISSIVE workload policy under an exception
// (except/legacy-api).
const checkMeshConfig = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: quiet}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: legacy-api-migration
  namespace: except
  annotations:
    exceptions.meshguard.io/MG301: "reason=batch clients move to mTLS in Q4; expires=2099-12-31"
spec:
  selector: {matchLabels: {app: legacy-api}}
  mtls: {mode: PERMISSIVE}
`

// checkMeshStrictPA makes the whole mesh STRICT.
const checkMeshStrictPA = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
`

// checkMeshConfigOf parses manifests into the checker's view of the mesh.
func checkMeshConfigOf(t *testing.T, yaml string) *checks.MeshConfig {
	t.Helper()
	objects, problems := manifest.Parse("mesh.yaml", []byte(yaml))
	require.Empty(t, problems)
	return checks.NewMeshConfig("istio-system", objects, nil)
}

// checkStack is a running synthetic mesh: the meshsim exporter on loopback, Prometheus scraping
// it every second, and Alertmanagers that notify one webhook receiver.
type checkStack struct {
	exporter *meshsim.Exporter
	prom     *harness.Prometheus
	ams      []*harness.Alertmanager
	receiver *harness.AlertReceiver
}

func checkStartStack(t *testing.T, alertmanagers int, flows ...meshsim.Flow) *checkStack {
	t.Helper()
	exp, err := meshsim.NewExporter(meshsim.Options{}, flows...)
	require.NoError(t, err)
	srv := httptest.NewServer(exp)
	t.Cleanup(srv.Close)
	st := &checkStack{exporter: exp, receiver: harness.NewAlertReceiver(t)}
	st.prom = harness.StartPrometheus(t, harness.PrometheusOptions{ScrapeTargets: []string{srv.Listener.Addr().String()}})
	for range alertmanagers {
		st.ams = append(st.ams, harness.StartAlertmanager(t, harness.AlertmanagerOptions{WebhookURL: st.receiver.URL()}))
	}
	return st
}

// checkConfigDir writes manifests into a directory for --config-from / checks.FileSource.
func checkConfigDir(t *testing.T, yaml string) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "mesh.yaml"), []byte(yaml), 0o644))
	return dir
}

// checkRunner is an in-process checker daemon: the checks package's loop and notifier, as
// `meshguard check` runs them.
type checkRunner struct {
	checker  *checks.Checker
	notifier *alerting.Notifier
	metrics  *checks.Metrics
	cancel   context.CancelFunc
	done     chan struct{}
	stopped  bool
}

type checkRunnerOptions struct {
	prometheusURL string
	alertmanagers []string
	configDir     string
	// restore reads firing alerts back from Alertmanager before the first cycle.
	restore bool
	// interval overrides checkInterval.
	interval time.Duration
}

func checkStartChecker(t *testing.T, o checkRunnerOptions) *checkRunner {
	t.Helper()
	cfg := config.Default()
	s := checks.SettingsFrom(cfg)
	s.Interval, s.Window, s.PrometheusURL = checkInterval, checkWindow, o.prometheusURL
	if o.interval > 0 {
		s.Interval = o.interval
	}
	s.CheckerNamespace = "meshguard-system"
	prom, err := checks.NewPrometheus(config.Endpoint{URL: o.prometheusURL}, nil)
	require.NoError(t, err)
	metrics := checks.NewMetrics(prometheus.NewRegistry())
	var eps []config.Endpoint
	for _, u := range o.alertmanagers {
		eps = append(eps, config.Endpoint{URL: u})
	}
	n, err := alerting.NewNotifier(alerting.NotifierOptions{Alertmanagers: eps, Metrics: metrics.Alerting,
		MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, Timeout: 5 * time.Second})
	require.NoError(t, err)
	c, err := checks.New(checks.Options{Settings: s, Querier: prom, Metrics: metrics, Notifier: n,
		Config: checks.FileSource{Paths: []string{o.configDir}, RootNamespace: cfg.RootNamespace}})
	require.NoError(t, err)
	if o.restore {
		_, err := c.Restore(context.Background())
		require.NoError(t, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &checkRunner{checker: c, notifier: n, metrics: metrics, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		c.Run(ctx)
	}()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop ends the loop and delivers what is queued, as SIGTERM does to the daemon.
func (r *checkRunner) stop(t *testing.T) {
	t.Helper()
	if r.stopped {
		return
	}
	r.stopped = true
	r.cancel()
	<-r.done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.notifier.Stop(ctx); err != nil {
		t.Logf("checker stop: %v", err)
	}
}

// firing returns the checker's firing alert named alertname after its last cycle, or nil.
func (r *checkRunner) firing(alertname string) *alerting.Alert {
	last := r.checker.Last()
	if last == nil {
		return nil
	}
	for _, a := range last.Firing {
		if a.Name() == alertname {
			return a
		}
	}
	return nil
}

// checkActiveAlerts asks an Alertmanager, through its own v2 API, for its active alerts that have
// every label in labels.
func checkActiveAlerts(t *testing.T, am *harness.Alertmanager, labels map[string]string) []*models.GettableAlert {
	t.Helper()
	var filter []string
	for k, v := range labels {
		filter = append(filter, k+"=\""+v+"\"")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := am.Client().Alert.GetAlerts(amalert.NewGetAlertsParamsWithContext(ctx).WithFilter(filter))
	require.NoError(t, err)
	return res.Payload
}

// checkAwaitActive waits until every Alertmanager holds an active alert with labels and returns
// the first one's copy of it.
func checkAwaitActive(t *testing.T, ams []*harness.Alertmanager, labels map[string]string, wait time.Duration) *models.GettableAlert {
	t.Helper()
	var got *models.GettableAlert
	require.Eventually(t, func() bool {
		for i, am := range ams {
			as := checkActiveAlerts(t, am, labels)
			if len(as) == 0 {
				return false
			}
			if i == 0 {
				got = as[0]
			}
		}
		return true
	}, wait, checkPoll, "no active alert %v in every Alertmanager", labels)
	return got
}

func checkStartsAt(a *models.GettableAlert) time.Time { return time.Time(*a.StartsAt) }

func checkDateTime(d *strfmt.DateTime) time.Time { return time.Time(*d) }

// checkMetric reads a counter or gauge of the checker's own metrics.
func checkMetric(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	require.NoError(t, m.Write(&d))
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// checkAlertnames maps the label sets of a scenario's alerts for receiver matching.
func checkLabels(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}
