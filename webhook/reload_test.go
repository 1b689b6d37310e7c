package webhook

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/internal/engine"
	"github.com/meshguard/meshguard/policies"
)

// configMapDir lays out a directory the way the kubelet mounts a ConfigMap: the file is a
// symlink through ..data, and an update points ..data at a new timestamped directory.
type configMapDir struct {
	t   *testing.T
	dir string
	n   int
}

func newConfigMapDir(t *testing.T, content string) *configMapDir {
	c := &configMapDir{t: t, dir: t.TempDir()}
	c.update(content)
	require.NoError(t, os.Symlink(filepath.Join("..data", "config.yaml"), filepath.Join(c.dir, "config.yaml")))
	return c
}

func (c *configMapDir) path() string { return filepath.Join(c.dir, "config.yaml") }

// update swaps the content in as the kubelet does: new dir, new symlink, atomic rename.
func (c *configMapDir) update(content string) {
	c.n++
	ts := fmt.Sprintf("..2026_06_01_12_00_%02d.%d", c.n, c.n)
	require.NoError(c.t, os.Mkdir(filepath.Join(c.dir, ts), 0o755))
	require.NoError(c.t, os.WriteFile(filepath.Join(c.dir, ts, "config.yaml"), []byte(content), 0o644))
	tmp := filepath.Join(c.dir, "..data_tmp")
	require.NoError(c.t, os.Symlink(ts, tmp))
	require.NoError(c.t, os.Rename(tmp, filepath.Join(c.dir, "..data")))
}

func TestReloaderFollowsAConfigMapSwapAndKeepsTheOldConfigOnErrors(t *testing.T) {
	cm := newConfigMapDir(t, "webhook: {enforcement: deny}\n")
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	require.NoError(t, err)
	r := &Reloader{
		Path: cm.path(),
		Build: func(ctx context.Context, cfg *config.Config) (*engine.Engine, error) {
			return policies.Engine(ctx, cfg, nil, nil)
		},
		Log:     logr.Discard(),
		Metrics: m,
		// A poll far longer than the test: only the directory watch can pass it.
		Poll:     time.Hour,
		Debounce: 20 * time.Millisecond,
	}
	rs, err := r.Load(context.Background())
	require.NoError(t, err)
	require.Equal(t, config.EnforceDeny, rs.Config.Webhook.Enforcement)
	r.Rules = NewRules(rs)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Start(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()

	enforcement := func() config.Enforcement { return r.Rules.Load().Config.Webhook.Enforcement }
	cm.update("webhook: {enforcement: warn}\n")
	require.Eventually(t, func() bool { return enforcement() == config.EnforceWarn }, 10*time.Second, 10*time.Millisecond,
		"the new ConfigMap content must take effect")

	for _, bad := range []string{
		"webhook: {enforcement: maybe}\n",    // invalid value
		"rules: {MG999: {enabled: false}}\n", // unknown rule: the engine refuses it
		"webhook: [\n",                       // not YAML
	} {
		before := r.Rules.Load()
		failures := counterValue(t, reg, "meshguard_webhook_config_reloads_total", "failure")
		cm.update(bad)
		require.Eventually(t, func() bool {
			return counterValue(t, reg, "meshguard_webhook_config_reloads_total", "failure") > failures
		}, 10*time.Second, 10*time.Millisecond, "a bad config must be noticed: %q", bad)
		require.Same(t, before, r.Rules.Load(), "a bad config must leave the one in force: %q", bad)
	}

	cm.update("webhook: {enforcement: audit}\n")
	require.Eventually(t, func() bool { return enforcement() == config.EnforceAudit }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, 2.0, counterValue(t, reg, "meshguard_webhook_config_reloads_total", "success"))
}

func TestReloaderRefusesABadFileAtStart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte("webhook: {failurePolicy: sometimes}\n"), 0o644))
	r := &Reloader{Path: path, Build: func(ctx context.Context, cfg *config.Config) (*engine.Engine, error) {
		return policies.Engine(ctx, cfg, nil, nil)
	}, Log: logr.Discard()}
	_, err := r.Load(context.Background())
	require.ErrorContains(t, err, "webhook.failurePolicy")
	require.ErrorContains(t, err, path)
}

func counterValue(t *testing.T, reg *prometheus.Registry, name, result string) float64 {
	t.Helper()
	f := &fixture{reg: reg}
	return f.counter(t, name, map[string]string{"result": result})
}
