// Package webhook is meshguard's validating admission webhook: a thin adapter from
// AdmissionReviews to the same engine `meshguard lint` runs. It decodes the object, reviews it
// against the cluster's inventory, and maps findings to the answer (error findings deny,
// warnings become admission warnings, per-rule enforcement from the config), with a bound on
// concurrent reviews, a deadline, a failure policy for evaluation faults, and metrics.
package webhook

import (
	"context"
	"errors"
	"sync/atomic"

	"golang.org/x/sync/semaphore"

	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/internal/engine"
)

// RuleSet is one configuration compiled: what every review in flight evaluates with. A reload
// builds a new RuleSet and swaps it in; reviews that started with the old one finish with it.
type RuleSet struct {
	Config *config.Config
	Engine *engine.Engine
	// sem bounds the reviews in flight (webhook.maxConcurrentReviews) and bytes the bytes of
	// their request bodies (webhook.maxInFlightBytes): both are taken before a body is read, so
	// that what the reviews in flight hold in memory is bounded whatever their authors send. A
	// new configuration brings new bounds, so they belong to the RuleSet.
	sem   chan struct{}
	bytes *semaphore.Weighted
}

// NewRuleSet pairs a configuration with the engine compiled from it.
func NewRuleSet(cfg *config.Config, eng *engine.Engine) *RuleSet {
	n := cfg.Webhook.MaxConcurrentReviews
	if n <= 0 {
		n = config.Default().Webhook.MaxConcurrentReviews
	}
	b := cfg.Webhook.MaxInFlightBytes
	if b <= 0 {
		b = config.Default().Webhook.MaxInFlightBytes
	}
	return &RuleSet{Config: cfg, Engine: eng, sem: make(chan struct{}, n), bytes: semaphore.NewWeighted(b)}
}

// errBusy is returned when no review slot frees up before the deadline.
var errBusy = errors.New("too many reviews in flight (webhook.maxConcurrentReviews, webhook.maxInFlightBytes)")

// acquire takes a review slot and size bytes of the in-flight byte budget, giving up when ctx
// ends. A request larger than the whole budget waits for all of it.
func (rs *RuleSet) acquire(ctx context.Context, size int64) (release func(), err error) {
	select {
	case rs.sem <- struct{}{}:
	default:
		select {
		case rs.sem <- struct{}{}:
		case <-ctx.Done():
			return nil, errors.Join(errBusy, ctx.Err())
		}
	}
	size = max(min(size, rs.Config.Webhook.MaxInFlightBytes), 1)
	if err := rs.bytes.Acquire(ctx, size); err != nil {
		<-rs.sem
		return nil, errors.Join(errBusy, err)
	}
	return func() { rs.bytes.Release(size); <-rs.sem }, nil
}

// slotKey marks a context whose review already holds a slot (taken by the HTTP layer before it
// read the body).
type slotKey struct{}

// Rules holds the RuleSet in force. Reviews load it once per request; reloads replace it.
type Rules struct{ cur atomic.Pointer[RuleSet] }

// NewRules starts with rs.
func NewRules(rs *RuleSet) *Rules {
	r := &Rules{}
	r.cur.Store(rs)
	return r
}

// Load returns the RuleSet in force.
func (r *Rules) Load() *RuleSet { return r.cur.Load() }

// Store puts rs in force for every review that starts from now on.
func (r *Rules) Store(rs *RuleSet) { r.cur.Store(rs) }
