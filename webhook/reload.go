package webhook

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"

	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/internal/engine"
)

// Reloader loads the configuration file, and reloads it when it changes: it rebuilds the
// engine and swaps the RuleSet in force; a configuration that does not parse or compile is
// logged and the one in force stays.
//
// It watches the file's directory rather than the file: a mounted ConfigMap is updated by
// pointing the `..data` symlink at a new directory, so the file itself is never written and a
// watch on it would follow the old inode. Every event in the directory triggers a re-read, and
// the content hash decides whether anything changed. A slow poll covers file systems without
// inotify events.
type Reloader struct {
	// Path is the configuration file; empty means the defaults, never reloaded.
	Path string
	// Build compiles an engine for a configuration (policies.Engine with the policy dirs).
	Build func(ctx context.Context, cfg *config.Config) (*engine.Engine, error)
	// Rules receives every successfully reloaded RuleSet.
	Rules *Rules
	Log   logr.Logger
	// Metrics counts reloads; may be nil.
	Metrics *Metrics
	// Poll is the fallback re-read interval (default 30s); Debounce waits for a burst of
	// events (a ConfigMap swap is several) to settle (default 200ms).
	Poll, Debounce time.Duration

	loaded [sha256.Size]byte // hash of the content in force (or last refused)
}

// Load reads and compiles the configuration once, for the start of the server. Errors are the
// user's: a bad file at start is a usage error, unlike at reload.
func (r *Reloader) Load(ctx context.Context) (*RuleSet, error) {
	cfg := config.Default()
	if r.Path != "" {
		data, err := os.ReadFile(r.Path)
		if err != nil {
			return nil, fmt.Errorf("read config %s: %w", r.Path, err)
		}
		if err := config.Parse(data, cfg); err != nil {
			return nil, fmt.Errorf("read config %s: %w", r.Path, err)
		}
		r.loaded = sha256.Sum256(data)
	}
	eng, err := r.Build(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return NewRuleSet(cfg, eng), nil
}

// NeedLeaderElection tells the manager every replica reloads its own configuration.
func (r *Reloader) NeedLeaderElection() bool { return false }

// Start watches until ctx ends (a manager.Runnable).
func (r *Reloader) Start(ctx context.Context) error {
	if r.Path == "" {
		return nil
	}
	poll, debounce := r.Poll, r.Debounce
	if poll <= 0 {
		poll = 30 * time.Second
	}
	if debounce <= 0 {
		debounce = 200 * time.Millisecond
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch config %s: %w", r.Path, err)
	}
	defer w.Close()
	dir := filepath.Dir(r.Path)
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("watch config directory %s: %w", dir, err)
	}
	r.Log.Info("watching the configuration for changes", "path", r.Path)
	// A change between Load and the watch is caught by checking once now.
	r.check(ctx)

	ticker := time.NewTicker(poll)
	defer ticker.Stop()
	settle := time.NewTimer(debounce)
	settle.Stop()
	defer settle.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			r.Log.V(2).Info("config directory event", "event", ev.String())
			settle.Reset(debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			r.Log.Error(err, "config watch error; polling continues", "path", r.Path)
		case <-settle.C:
			r.check(ctx)
		case <-ticker.C:
			r.check(ctx)
		}
	}
}

// check re-reads the file and reloads when its content changed.
func (r *Reloader) check(ctx context.Context) {
	data, err := os.ReadFile(r.Path)
	if err != nil {
		// Mid-swap, or removed: keep what is in force and look again at the next event.
		r.Log.Error(err, "cannot read the configuration; keeping the one in force", "path", r.Path)
		return
	}
	sum := sha256.Sum256(data)
	if sum == r.loaded {
		return
	}
	// Remembered even when refused, so a bad file is reported once, not at every poll.
	r.loaded = sum
	cfg := config.Default()
	if err := config.Parse(data, cfg); err != nil {
		r.refused(fmt.Errorf("read config %s: %w", r.Path, err))
		return
	}
	began := time.Now()
	eng, err := r.Build(ctx, cfg)
	if err != nil {
		r.refused(err)
		return
	}
	r.Rules.Store(NewRuleSet(cfg, eng))
	if r.Metrics != nil {
		r.Metrics.reloads.WithLabelValues("success").Inc()
	}
	r.Log.Info("configuration reloaded", "path", r.Path, "compile", time.Since(began).String(),
		"enforcement", cfg.Webhook.Enforcement, "failurePolicy", cfg.Webhook.FailurePolicy)
}

func (r *Reloader) refused(err error) {
	if r.Metrics != nil {
		r.Metrics.reloads.WithLabelValues("failure").Inc()
	}
	r.Log.Error(err, "new configuration refused; keeping the one in force", "path", r.Path)
}
