// Package checkd runs `meshguard check` as a daemon: the HTTP endpoints, the cycle loop, the
// leader election among replicas, the read-back of firing alerts when this replica starts
// sending, and the delivery of queued alerts at shutdown.
package checkd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshguard/meshguard/checks"
	"github.com/meshguard/meshguard/internal/alerting"
)

// restoreTimeout bounds the read-back of firing alerts from the Alertmanagers.
const restoreTimeout = 10 * time.Second

// Gate tells the checker whether it may send (checks.Options.MaySend). Run opens it once this
// replica leads and has read the firing alerts back, and closes it the moment it stops leading.
type Gate struct {
	open     atomic.Bool
	election *Election
}

// Open tells whether alerts may be sent: the gate is open and, in an election, the lease is
// still fresh.
func (g *Gate) Open() bool { return g.open.Load() && (g.election == nil || g.election.valid()) }

// Options configure Run.
type Options struct {
	Checker *checks.Checker
	// Gate must be the one the checker was built with.
	Gate *Gate
	// Notifier is the checker's notifier; nil sends nothing.
	Notifier *alerting.Notifier
	// Registry serves /metrics; Run adds meshguard_check_leader to it.
	Registry *prometheus.Registry
	// Listener serves /metrics, /healthz, /readyz (and /graph).
	Listener net.Listener
	// Interval is the time between two cycles.
	Interval time.Duration
	// Restore reads the firing alerts back from the Alertmanagers each time this replica starts
	// sending, so that their start times are kept and those that cleared are resolved at once.
	Restore bool
	// Election, when set, lets only the elected replica send; nil: this replica always sends.
	Election *Election
	// FlushTimeout bounds the delivery of queued alerts at shutdown.
	FlushTimeout time.Duration
	Logger       *slog.Logger
}

// Run serves HTTP and runs cycles until ctx ends, then delivers the queued alerts within
// FlushTimeout (still holding the lease, so that a successor does not send meanwhile), releases
// the lease and stops the HTTP server. The error tells what could not be done at shutdown.
func Run(ctx context.Context, o Options) error {
	leader := prometheus.NewGauge(prometheus.GaugeOpts{Name: "meshguard_check_leader",
		Help: "1 while this replica sends alerts (the leader, or the only replica), else 0."})
	if err := o.Registry.Register(leader); err != nil {
		return fmt.Errorf("register the leader metric: %w", err)
	}
	srv := &http.Server{Handler: checks.Handler(o.Checker, o.Registry), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(o.Listener) }()

	// leading is what the election says; the loop turns it into sending, in its own goroutine,
	// because the read-back must not run concurrently with a cycle.
	var leading atomic.Bool
	changed := make(chan struct{}, 1)
	signal := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	electionCtx, stopElection := context.WithCancel(context.Background())
	defer stopElection()
	electionDone := make(chan struct{})
	if o.Election == nil {
		leading.Store(true)
		close(electionDone)
	} else {
		o.Gate.election = o.Election
		go func() {
			defer close(electionDone)
			o.Election.run(electionCtx, func(l bool) {
				leading.Store(l)
				if !l {
					// Stop sending now, not at the next cycle: the successor may be taking over.
					o.Gate.open.Store(false)
				}
				signal()
			})
		}()
	}

	loopCtx, stopLoop := context.WithCancel(ctx)
	defer stopLoop()
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		t := time.NewTicker(o.Interval)
		defer t.Stop()
		sending := false
		for {
			if l := leading.Load(); l != sending {
				sending = l
				if l {
					o.startSending()
				} else {
					o.stopSending()
				}
				leader.Set(0)
				if l {
					leader.Set(1)
				}
			}
			res := o.Checker.Cycle(loopCtx)
			o.Logger.Debug("check cycle", "firing", len(res.Firing), "sent", len(res.Sent), "duration", res.Duration)
			select {
			case <-loopCtx.Done():
				return
			case <-t.C:
			case <-changed:
				// A new leader evaluates at once: its predecessor's alerts are valid for a few
				// intervals only.
				t.Reset(o.Interval)
			}
		}
	}()

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		o.Logger.Error("HTTP server failed", "err", err)
	}
	stopLoop()
	<-loopDone
	var errs []error
	if o.Notifier != nil {
		o.Logger.Info("shutting down: delivering queued alerts", "timeout", o.FlushTimeout)
		fctx, cancel := context.WithTimeout(context.Background(), o.FlushTimeout)
		if err := o.Notifier.Stop(fctx); err != nil {
			errs = append(errs, err)
		}
		cancel()
	}
	stopElection()
	<-electionDone
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		errs = append(errs, fmt.Errorf("stop HTTP server: %w", err))
	}
	return errors.Join(errs...)
}

// startSending reads the firing alerts back, then opens the gate.
func (o *Options) startSending() {
	if o.Restore && o.Notifier != nil {
		ctx, cancel := context.WithTimeout(context.Background(), restoreTimeout)
		n, err := o.Checker.Restore(ctx)
		cancel()
		if err != nil {
			o.Logger.Warn("could not read back firing alerts; they will be re-sent as found", "err", err)
		} else {
			o.Logger.Info("read back firing alerts from Alertmanager", "alerts", n)
		}
	}
	o.Gate.open.Store(true)
	o.Logger.Info("sending alerts")
}

// stopSending closes the gate and drops what is queued.
func (o *Options) stopSending() {
	o.Gate.open.Store(false)
	dropped := 0
	if o.Notifier != nil {
		dropped = o.Notifier.Drop()
	}
	o.Logger.Warn("not leading any more: alerts are left to the leader", "dropped_updates", dropped)
}
