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

	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/internal/engine"
)

// RuleSet is one configuration compiled: what every review in flight evaluates with. A reload
// builds a new RuleSet and swaps it in; reviews that started with the old one finish with it.
type RuleSet struct {
	Config *config.Config
	Engine *engine.Engine
	// sem bounds the reviews in flight (webhook.maxConcurrentReviews). A new configuration
	// brings a new bound, so it belongs to the RuleSet.
	sem chan struct{}
}

// NewRuleSet pairs a configuration with the engine compiled from it.
func NewRuleSet(cfg *config.Config, eng *engine.Engine) *RuleSet {
	n := cfg.Webhook.MaxConcurrentReviews
	if n <= 0 {
		n = config.Default().Webhook.MaxConcurrentReviews
	}
	return &RuleSet{Config: cfg, Engine: eng, sem: make(chan struct{}, n)}
}

// errBusy is returned when no review slot frees up before the deadline.
var errBusy = errors.New("too many reviews in flight (webhook.maxConcurrentReviews)")

// acquire takes a review slot, giving up when ctx ends.
func (rs *RuleSet) acquire(ctx context.Context) (release func(), err error) {
	select {
	case rs.sem <- struct{}{}:
		return func() { <-rs.sem }, nil
	default:
	}
	select {
	case rs.sem <- struct{}{}:
		return func() { <-rs.sem }, nil
	case <-ctx.Done():
		return nil, errors.Join(errBusy, ctx.Err())
	}
}

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
