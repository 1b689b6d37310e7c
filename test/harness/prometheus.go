// This file owns the Prometheus harness: a real Prometheus server (Debian's 2.42 package) on a
// loopback port scraping test targets, and promtool backfill for deterministic data.

package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

const (
	// promStartAttempts is how many ports StartPrometheus tries: FreePort's port can be taken
	// by another process before Prometheus binds it.
	promStartAttempts = 3
	// promBackfillTimeout bounds one promtool run. It writes a block per 2 h of data and a few
	// hours of a small mesh take a second or two; the margin is for busy machines.
	promBackfillTimeout = 5 * time.Minute
	// promQueryPoll is how often AwaitQuery re-runs its query: a bit under the default 1s scrape
	// interval, so a new scrape is noticed promptly without hammering the server.
	promQueryPoll = 250 * time.Millisecond
	// promAwaitTimeout bounds AwaitQuery when its context has no deadline. The first scrape
	// comes ~5 s after startup (service discovery batches its first update), so results appear
	// after ~6.5 s; the margin is for busy machines.
	promAwaitTimeout = 60 * time.Second
	// promLongRetention keeps backfilled samples, which are usually older than the default 15 d
	// (or simply "old" relative to block boundaries), from being deleted at startup.
	promLongRetention = "100y"
)

// PrometheusOptions configures StartPrometheus. The zero value is a Prometheus with no targets.
type PrometheusOptions struct {
	// ScrapeTargets are host:port addresses scraped at /metrics under job JobName.
	ScrapeTargets []string
	// JobName is the scrape job's name; default "meshsim".
	JobName string
	// ScrapeInterval is the global scrape and rule evaluation interval; default 1s.
	ScrapeInterval time.Duration
	// DataDir is an existing TSDB directory to serve (for example one from Backfill). It is used
	// in place, not copied; by default Prometheus gets a fresh directory under t.TempDir().
	DataDir string
	// Retention is --storage.tsdb.retention.time in Prometheus's duration syntax ("15d", "100y").
	// Default: "100y" when DataDir is set (backfilled samples must survive), else Prometheus's own.
	Retention string
	// RuleFiles are added to rule_files (absolute paths).
	RuleFiles []string
	// ExtraArgs are appended to the command line.
	ExtraArgs []string
}

// Prometheus is a running Prometheus server. It is stopped in t.Cleanup.
type Prometheus struct {
	proc       *Process
	port       int
	dataDir    string
	configPath string
}

// StartPrometheus writes a config, starts Prometheus on 127.0.0.1 and waits for /-/ready.
func StartPrometheus(t testing.TB, opts PrometheusOptions) *Prometheus {
	t.Helper()
	bin := PrometheusBinary(t)
	dir := t.TempDir()
	configPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configPath, []byte(promConfig(opts)), 0o644); err != nil {
		t.Fatalf("start prometheus: write config: %v", err)
	}
	dataDir := opts.DataDir
	retention := opts.Retention
	if dataDir == "" {
		dataDir = filepath.Join(dir, "data")
	} else if retention == "" {
		retention = promLongRetention
	}

	var lastErr error
	for attempt := 1; attempt <= promStartAttempts; attempt++ {
		port, err := procFreePort()
		if err != nil {
			t.Fatalf("start prometheus: %v", err)
		}
		args := []string{
			"--config.file=" + configPath,
			"--storage.tsdb.path=" + dataDir,
			"--web.listen-address=127.0.0.1:" + strconv.Itoa(port),
			"--log.level=info",
		}
		if retention != "" {
			args = append(args, "--storage.tsdb.retention.time="+retention)
		}
		args = append(args, opts.ExtraArgs...)
		p := &Prometheus{
			proc:       NewProcess(t, fmt.Sprintf("prometheus-%d", attempt), bin, args...),
			port:       port,
			dataDir:    dataDir,
			configPath: configPath,
		}
		if lastErr = p.Start(); lastErr == nil {
			return p
		}
		// Only a lost port race is worth another attempt; anything else would fail again.
		if !p.proc.LogContains("address already in use") {
			break
		}
		_ = p.proc.Stop()
	}
	t.Fatalf("start prometheus: %v", lastErr)
	return nil
}

// promConfig renders prometheus.yml. The scrape timeout must not exceed the interval.
func promConfig(opts PrometheusOptions) string {
	interval := opts.ScrapeInterval
	if interval <= 0 {
		interval = time.Second
	}
	job := opts.JobName
	if job == "" {
		job = "meshsim"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\n",
		promDuration(interval), promDuration(interval), promDuration(interval))
	if len(opts.RuleFiles) > 0 {
		b.WriteString("rule_files:\n")
		for _, f := range opts.RuleFiles {
			fmt.Fprintf(&b, "  - %q\n", f)
		}
	}
	if len(opts.ScrapeTargets) > 0 {
		fmt.Fprintf(&b, "scrape_configs:\n  - job_name: %q\n    static_configs:\n      - targets:\n", job)
		for _, target := range opts.ScrapeTargets {
			fmt.Fprintf(&b, "          - %q\n", target)
		}
	}
	return b.String()
}

// promDuration formats d in Prometheus's duration syntax, which has no fractional units.
func promDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}

// URL is the server's base URL, e.g. http://127.0.0.1:40123.
func (p *Prometheus) URL() string { return "http://127.0.0.1:" + strconv.Itoa(p.port) }

// Addr is the server's host:port.
func (p *Prometheus) Addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

// DataDir is the TSDB directory in use.
func (p *Prometheus) DataDir() string { return p.dataDir }

// ConfigPath is the prometheus.yml the server reads.
func (p *Prometheus) ConfigPath() string { return p.configPath }

// Process exposes the underlying process (log, pid) for tests that need it.
func (p *Prometheus) Process() *Process { return p.proc }

// API returns a client for the HTTP API (the client the checker uses). v1.25's Query returns
// value, warnings, infos and error.
func (p *Prometheus) API() promv1.API {
	c, err := promapi.NewClient(promapi.Config{Address: p.URL()})
	if err != nil {
		// NewClient only fails to parse the address, which URL() builds: a harness bug.
		panic(fmt.Sprintf("prometheus api client for %s: %v", p.URL(), err))
	}
	return promv1.NewAPI(c)
}

// AwaitQuery runs an instant query (at the current time) until ok accepts its result, and
// returns that result. Query errors are retried until ctx ends (promAwaitTimeout when ctx has no
// deadline); the error then names the last result or query error.
func (p *Prometheus) AwaitQuery(ctx context.Context, query string, ok func(model.Value) bool) (model.Value, error) {
	if _, has := ctx.Deadline(); !has {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, promAwaitTimeout)
		defer cancel()
	}
	api := p.API()
	ticker := time.NewTicker(promQueryPoll)
	defer ticker.Stop()
	var last string
	for {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		v, warnings, _, err := api.Query(qctx, query, time.Now())
		cancel()
		switch {
		case err != nil:
			last = "error: " + err.Error()
		case ok(v):
			return v, nil
		default:
			last = fmt.Sprintf("result %v (warnings %v)", v, warnings)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("await query %q: %w; last %s", query, ctx.Err(), last)
		case <-ticker.C:
		}
	}
}

// Stop stops the server gracefully (its head block and WAL are kept in DataDir).
func (p *Prometheus) Stop() error {
	if err := p.proc.Stop(); err != nil {
		return fmt.Errorf("stop prometheus: %w", err)
	}
	return nil
}

// Start (re)starts a stopped server on the same port and data dir and waits for /-/ready.
func (p *Prometheus) Start() error {
	if err := p.proc.Start(); err != nil {
		return fmt.Errorf("start prometheus: %w", err)
	}
	if err := p.proc.WaitHTTP(context.Background(), p.URL()+"/-/ready"); err != nil {
		return fmt.Errorf("start prometheus: %w", err)
	}
	return nil
}

// Backfill writes openMetricsText (OpenMetrics: timestamps in seconds, each metric family
// contiguous, a final "# EOF") to a file and turns it into TSDB blocks with
// `promtool tsdb create-blocks-from openmetrics`. It returns the new data directory, ready for
// PrometheusOptions.DataDir.
func Backfill(t testing.TB, openMetricsText string) (dataDir string) {
	t.Helper()
	dir := t.TempDir()
	input := filepath.Join(dir, "backfill.om")
	if err := os.WriteFile(input, []byte(openMetricsText), 0o644); err != nil {
		t.Fatalf("backfill: write input: %v", err)
	}
	dataDir = filepath.Join(dir, "data")
	if err := PromBackfillFile(t, input, dataDir); err != nil {
		t.Fatalf("%v", err)
	}
	return dataDir
}

// PromBackfillFile runs promtool on an OpenMetrics file already on disk (for large inputs that
// are better streamed to a file than held in a string) and writes blocks into dataDir.
func PromBackfillFile(t testing.TB, inputPath, dataDir string) error {
	t.Helper()
	promtool := PromtoolBinary(t)
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), promBackfillTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet", inputPath, dataDir)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("backfill: promtool tsdb create-blocks-from openmetrics %s: %w\n%s",
			inputPath, err, promTail(string(out), 40))
	}
	// An input without samples makes promtool exit 0 without writing a block, which would
	// otherwise surface later as a puzzling empty query result.
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	blocks := 0
	for _, e := range entries {
		if e.IsDir() && len(e.Name()) == 26 { // block directories are ULIDs
			blocks++
		}
	}
	if blocks == 0 {
		return fmt.Errorf("backfill: promtool wrote no blocks into %s; its output:\n%s", dataDir, promTail(string(out), 40))
	}
	return nil
}

func promTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
