// This file owns the Alertmanager harness: a real Alertmanager (Debian's 0.25 package) on a
// loopback port, clustering off, routing every alert at once to one webhook.

package harness

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-openapi/strfmt"
	amclient "github.com/prometheus/alertmanager/api/v2/client"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// amStartAttempts is how many ports StartAlertmanager tries (see promStartAttempts).
const amStartAttempts = 3

// AlertmanagerOptions configures StartAlertmanager.
type AlertmanagerOptions struct {
	// WebhookURL receives every notification (with send_resolved: true). Empty: alerts are
	// accepted and grouped but sent nowhere.
	WebhookURL string
	// GroupInterval is the route's group_interval (default 1s): the least time between two
	// notifications for one group, so also the delay before a resolved notification.
	GroupInterval time.Duration
	// RepeatInterval is the route's repeat_interval (default 1h, so a test sees one firing
	// notification per alert unless it waits that long).
	RepeatInterval time.Duration
	// ExtraArgs are appended to the command line.
	ExtraArgs []string
}

// Alertmanager is a running Alertmanager. It is stopped in t.Cleanup.
type Alertmanager struct {
	proc       *Process
	port       int
	storageDir string
	configPath string
}

// StartAlertmanager writes a config, starts Alertmanager on 127.0.0.1 with clustering disabled
// (with it on, Alertmanager waits for the gossip to settle and notifications take ~10 s), and
// waits for /-/ready.
func StartAlertmanager(t testing.TB, opts AlertmanagerOptions) *Alertmanager {
	t.Helper()
	bin := AlertmanagerBinary(t)
	dir := t.TempDir()
	configPath := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(configPath, []byte(amConfig(opts)), 0o644); err != nil {
		t.Fatalf("start alertmanager: write config: %v", err)
	}
	storageDir := filepath.Join(dir, "data")
	if err := os.MkdirAll(storageDir, 0o755); err != nil {
		t.Fatalf("start alertmanager: %v", err)
	}

	var lastErr error
	for attempt := 1; attempt <= amStartAttempts; attempt++ {
		port, err := procFreePort()
		if err != nil {
			t.Fatalf("start alertmanager: %v", err)
		}
		args := []string{
			"--config.file=" + configPath,
			"--storage.path=" + storageDir,
			"--web.listen-address=127.0.0.1:" + strconv.Itoa(port),
			"--cluster.listen-address=",
			"--log.level=debug",
		}
		args = append(args, opts.ExtraArgs...)
		am := &Alertmanager{
			proc:       NewProcess(t, fmt.Sprintf("alertmanager-%d", attempt), bin, args...),
			port:       port,
			storageDir: storageDir,
			configPath: configPath,
		}
		if lastErr = am.Start(); lastErr == nil {
			return am
		}
		if !am.proc.LogContains("address already in use") {
			break
		}
		_ = am.proc.Stop()
	}
	t.Fatalf("start alertmanager: %v", lastErr)
	return nil
}

// amConfig renders alertmanager.yml: group_by ['...'] makes every alert its own group, so each
// one is notified alone and at once (group_wait 0s).
func amConfig(opts AlertmanagerOptions) string {
	groupInterval := opts.GroupInterval
	if groupInterval <= 0 {
		groupInterval = time.Second
	}
	repeat := opts.RepeatInterval
	if repeat <= 0 {
		repeat = time.Hour
	}
	var b strings.Builder
	fmt.Fprintf(&b, `route:
  receiver: test
  group_by: ['...']
  group_wait: 0s
  group_interval: %s
  repeat_interval: %s
receivers:
  - name: test
`, promDuration(groupInterval), promDuration(repeat))
	if opts.WebhookURL != "" {
		fmt.Fprintf(&b, "    webhook_configs:\n      - url: %q\n        send_resolved: true\n", opts.WebhookURL)
	}
	return b.String()
}

// URL is the server's base URL, e.g. http://127.0.0.1:40123 (the v2 API is under /api/v2).
func (am *Alertmanager) URL() string { return "http://127.0.0.1:" + strconv.Itoa(am.port) }

// Addr is the server's host:port.
func (am *Alertmanager) Addr() string { return "127.0.0.1:" + strconv.Itoa(am.port) }

// StorageDir holds the notification log and silences snapshots that survive a restart.
func (am *Alertmanager) StorageDir() string { return am.storageDir }

// ConfigPath is the alertmanager.yml the server reads.
func (am *Alertmanager) ConfigPath() string { return am.configPath }

// Process exposes the underlying process (log, pid) for tests that need it.
func (am *Alertmanager) Process() *Process { return am.proc }

// Client returns a v2 API client for this server, the same client the checker uses.
func (am *Alertmanager) Client() *amclient.AlertmanagerAPI {
	cfg := amclient.DefaultTransportConfig().
		WithHost(am.Addr()).
		WithBasePath(amclient.DefaultBasePath).
		WithSchemes([]string{"http"})
	return amclient.NewHTTPClientWithConfig(strfmt.Default, cfg)
}

// Metric sums the samples of a counter or gauge on Alertmanager's own /metrics whose labels
// include labels, e.g. ("alertmanager_notifications_total", {"integration": "webhook"}).
func (am *Alertmanager) Metric(ctx context.Context, name string, labels map[string]string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, am.URL()+"/metrics", nil)
	if err != nil {
		return 0, fmt.Errorf("alertmanager metric %s: %w", name, err)
	}
	// Ask for the text format: the parser below reads nothing else.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("alertmanager metric %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("alertmanager metric %s: GET /metrics: %s", name, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("alertmanager metric %s: parse /metrics: %w", name, err)
	}
	fam, ok := families[name]
	if !ok {
		return 0, nil // counters with labels appear only once incremented
	}
	total := 0.0
metrics:
	for _, m := range fam.GetMetric() {
		got := map[string]string{}
		for _, lp := range m.GetLabel() {
			got[lp.GetName()] = lp.GetValue()
		}
		for k, v := range labels {
			if got[k] != v {
				continue metrics
			}
		}
		total += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
	}
	return total, nil
}

// Stop stops the server gracefully; Alertmanager writes its silences and notification log to
// StorageDir on the way out. Active alerts are held in memory only and do not survive.
func (am *Alertmanager) Stop() error {
	if err := am.proc.Stop(); err != nil {
		return fmt.Errorf("stop alertmanager: %w", err)
	}
	return nil
}

// Start (re)starts a stopped server on the same port and storage dir and waits for /-/ready.
func (am *Alertmanager) Start() error {
	if err := am.proc.Start(); err != nil {
		return fmt.Errorf("start alertmanager: %w", err)
	}
	if err := am.proc.WaitHTTP(context.Background(), am.URL()+"/-/ready"); err != nil {
		return fmt.Errorf("start alertmanager: %w", err)
	}
	return nil
}
