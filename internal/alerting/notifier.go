package alerting

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	httptransport "github.com/go-openapi/runtime/client"
	"github.com/go-openapi/strfmt"
	amclient "github.com/prometheus/alertmanager/api/v2/client"
	amalert "github.com/prometheus/alertmanager/api/v2/client/alert"
	"github.com/prometheus/alertmanager/api/v2/models"

	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/internal/endpoint"
)

// Notifier defaults. Prometheus's notifier sends batches of up to 256 alerts with a 10s timeout.
const (
	DefaultQueueCapacity = 10000
	DefaultMaxBatchSize  = 256
	DefaultSendTimeout   = 10 * time.Second
	DefaultMinBackoff    = 500 * time.Millisecond
	DefaultMaxBackoff    = 30 * time.Second
)

// NotifierOptions configure a Notifier.
type NotifierOptions struct {
	// Alertmanagers each get every alert (an HA pair is two of them).
	Alertmanagers []config.Endpoint
	// Do replaces the network for tests (see endpoint.Transport).
	Do endpoint.DoFunc
	// QueueCapacity bounds the alert updates waiting for one Alertmanager; the oldest are
	// dropped past it (counted in alertmanager_alerts_dropped_total).
	QueueCapacity int
	// MaxBatchSize bounds the alerts of one post.
	MaxBatchSize int
	// Timeout bounds one post.
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the exponential wait between failed posts.
	MinBackoff, MaxBackoff time.Duration
	Metrics                *Metrics
	Logger                 *slog.Logger
}

// Notifier delivers alerts to Alertmanagers through the v2 API: one queue and one goroutine per
// Alertmanager, so a dead one never holds up another. A queue keeps the latest state of each
// alert episode (labels and start time): while an Alertmanager is down, repeated re-sends of a
// firing alert take one slot, and a resolution is never lost behind them.
type Notifier struct {
	senders  []*amSender
	stopOnce sync.Once
	stopErr  error
}

// NewNotifier starts one sender per Alertmanager.
func NewNotifier(opts NotifierOptions) (*Notifier, error) {
	if opts.QueueCapacity <= 0 {
		opts.QueueCapacity = DefaultQueueCapacity
	}
	if opts.MaxBatchSize <= 0 {
		opts.MaxBatchSize = DefaultMaxBatchSize
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultSendTimeout
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(DefaultMaxBackoff, opts.MinBackoff)
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil, "", "")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{}
	for _, ep := range opts.Alertmanagers {
		s, err := newSender(ep, opts)
		if err != nil {
			return nil, err
		}
		n.senders = append(n.senders, s)
	}
	for _, s := range n.senders {
		go s.run()
	}
	return n, nil
}

// newAlertmanagerClient builds the v2 API client for an Alertmanager base URL (the API lives
// under <url>/api/v2).
func newAlertmanagerClient(ep config.Endpoint, do endpoint.DoFunc) (*amclient.AlertmanagerAPI, error) {
	u, err := url.Parse(ep.URL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("alertmanager URL %q: want http(s)://host:port[/prefix]", ep.URL)
	}
	rt, err := endpoint.Transport(ep, do)
	if err != nil {
		return nil, fmt.Errorf("alertmanager %s: %w", ep.URL, err)
	}
	basePath := strings.TrimRight(u.Path, "/") + amclient.DefaultBasePath
	transport := httptransport.NewWithClient(u.Host, basePath, []string{u.Scheme}, &http.Client{Transport: rt})
	return amclient.New(transport, strfmt.Default), nil
}

// Alertmanagers lists the URLs the notifier sends to.
func (n *Notifier) Alertmanagers() []string {
	out := make([]string, len(n.senders))
	for i, s := range n.senders {
		out[i] = s.url
	}
	return out
}

// Send queues alerts for every Alertmanager and returns at once.
func (n *Notifier) Send(alerts []*Alert) {
	if len(alerts) == 0 {
		return
	}
	posts := make([]*models.PostableAlert, len(alerts))
	for i, a := range alerts {
		posts[i] = postable(a)
	}
	for _, s := range n.senders {
		s.enqueue(posts)
	}
}

// Queued returns how many alert updates wait for each Alertmanager, by URL.
func (n *Notifier) Queued() map[string]int {
	out := map[string]int{}
	for _, s := range n.senders {
		out[s.url] = s.queued()
	}
	return out
}

// Drop forgets every queued alert update and returns how many it dropped. A replica that lost
// the leadership drops its queue: the new leader sends the current state, and a stale update
// delivered after it would undo it. Nothing is lost, so alertmanager_alerts_dropped_total (a
// full queue) does not count them.
func (n *Notifier) Drop() int {
	total := 0
	for _, s := range n.senders {
		s.mu.Lock()
		dropped := len(s.pending)
		clear(s.pending)
		s.mu.Unlock()
		s.opts.Metrics.QueueLength.WithLabelValues(s.url).Set(0)
		total += dropped
	}
	return total
}

// Stop delivers what is queued, retrying until ctx ends, then stops the senders. It is safe to
// call more than once; the error names the Alertmanagers left with undelivered alerts.
func (n *Notifier) Stop(ctx context.Context) error {
	n.stopOnce.Do(func() {
		for _, s := range n.senders {
			close(s.draining)
		}
		var errs []error
		for _, s := range n.senders {
			select {
			case <-s.done:
			case <-ctx.Done():
				s.abort()
				<-s.done
			}
			if q := s.queued(); q > 0 {
				errs = append(errs, fmt.Errorf("alertmanager %s: %d alert updates not delivered: %w", s.url, q, s.lastError()))
			}
		}
		n.stopErr = errors.Join(errs...)
	})
	return n.stopErr
}

// Fetch reads back the active alerts that match filter (Alertmanager matcher syntax) from every
// Alertmanager, merged by label set with the earliest start. It fails only when none answers.
func (n *Notifier) Fetch(ctx context.Context, filter []string) ([]*Alert, error) {
	byKey := map[string]*Alert{}
	var errs []error
	answered := 0
	for _, s := range n.senders {
		got, err := s.fetch(ctx, filter)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		answered++
		for _, a := range got {
			k := LabelsKey(a.Labels)
			if old, ok := byKey[k]; !ok || a.ActiveAt.Before(old.ActiveAt) {
				byKey[k] = a
			}
		}
	}
	if answered == 0 && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	out := make([]*Alert, 0, len(byKey))
	for _, a := range byKey {
		out = append(out, a)
	}
	sortAlerts(out)
	return out, nil
}

// postable converts an alert to the v2 API's form: StartsAt is ActiveAt, EndsAt the resolution
// time or ValidUntil.
func postable(a *Alert) *models.PostableAlert {
	p := &models.PostableAlert{
		Annotations: models.LabelSet(a.Annotations),
		StartsAt:    strfmt.DateTime(a.StartsAt()),
		EndsAt:      strfmt.DateTime(a.EndsAt()),
		Alert: models.Alert{
			Labels:       models.LabelSet(a.Labels),
			GeneratorURL: strfmt.URI(a.GeneratorURL),
		},
	}
	return p
}

// queued is one alert update waiting for an Alertmanager; seq orders updates.
type queued struct {
	key   string
	seq   uint64
	alert *models.PostableAlert
}

// amSender owns one Alertmanager's queue and the goroutine that drains it.
type amSender struct {
	url    string
	client amalert.ClientService
	opts   NotifierOptions
	log    *slog.Logger

	mu      sync.Mutex
	pending map[string]*queued // by alert episode: labels and start time
	seq     uint64
	lastErr error

	wake      chan struct{} // capacity 1: "there is work"
	draining  chan struct{} // closed by Stop: deliver what is queued, then exit
	ctx       context.Context
	abort     context.CancelFunc // gives up on the queue (Stop's deadline passed)
	done      chan struct{}
	backoffAt time.Duration
}

func newSender(ep config.Endpoint, opts NotifierOptions) (*amSender, error) {
	c, err := newAlertmanagerClient(ep, opts.Do)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &amSender{
		url:      ep.URL,
		client:   c.Alert,
		opts:     opts,
		log:      opts.Logger.With("alertmanager", ep.URL),
		pending:  map[string]*queued{},
		wake:     make(chan struct{}, 1),
		draining: make(chan struct{}),
		ctx:      ctx,
		abort:    cancel,
		done:     make(chan struct{}),
	}, nil
}

func episodeKey(p *models.PostableAlert) string {
	return LabelsKey(p.Labels) + time.Time(p.StartsAt).UTC().Format(time.RFC3339Nano)
}

func (s *amSender) enqueue(posts []*models.PostableAlert) {
	s.mu.Lock()
	for _, p := range posts {
		s.seq++
		k := episodeKey(p)
		s.pending[k] = &queued{key: k, seq: s.seq, alert: p}
	}
	if over := len(s.pending) - s.opts.QueueCapacity; over > 0 {
		for _, q := range s.oldestLocked(over) {
			delete(s.pending, q.key)
		}
		s.opts.Metrics.Dropped.WithLabelValues(s.url).Add(float64(over))
		s.log.Warn("alertmanager queue full: dropped the oldest alert updates", "dropped", over)
	}
	s.opts.Metrics.QueueLength.WithLabelValues(s.url).Set(float64(len(s.pending)))
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// oldestLocked returns the n oldest updates in send order.
func (s *amSender) oldestLocked(n int) []*queued {
	all := make([]*queued, 0, len(s.pending))
	for _, q := range s.pending {
		all = append(all, q)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].seq < all[j].seq })
	if n < len(all) {
		all = all[:n]
	}
	return all
}

func (s *amSender) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

func (s *amSender) lastError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastErr == nil {
		return errors.New("gave up at shutdown")
	}
	return s.lastErr
}

// run drains the queue until Stop: a batch at a time in queue order, waiting with exponential
// backoff after a failure.
func (s *amSender) run() {
	defer close(s.done)
	defer s.abort()
	kick := s.draining
	for {
		s.mu.Lock()
		batch := s.oldestLocked(s.opts.MaxBatchSize)
		s.mu.Unlock()
		if len(batch) == 0 {
			select {
			case <-s.wake:
				continue
			case <-s.draining:
				return
			case <-s.ctx.Done():
				return
			}
		}
		if err := s.post(batch); err != nil {
			s.mu.Lock()
			s.lastErr = err
			s.mu.Unlock()
			s.opts.Metrics.SendErrors.WithLabelValues(s.url).Inc()
			wait := s.nextBackoff()
			s.log.Warn("send alerts failed; retrying", "alerts", len(batch), "retry_in", wait, "err", err)
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-kick:
				// Shutdown started: try once more at once instead of sleeping away the flush
				// time, then go back to backing off.
				t.Stop()
				kick = nil
			case <-s.ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		s.backoffAt = 0
		s.mu.Lock()
		for _, q := range batch {
			if cur, ok := s.pending[q.key]; ok && cur.seq == q.seq {
				delete(s.pending, q.key)
			}
		}
		s.lastErr = nil
		s.opts.Metrics.QueueLength.WithLabelValues(s.url).Set(float64(len(s.pending)))
		s.mu.Unlock()
		s.opts.Metrics.Sent.WithLabelValues(s.url).Add(float64(len(batch)))
	}
}

func (s *amSender) nextBackoff() time.Duration {
	if s.backoffAt == 0 {
		s.backoffAt = s.opts.MinBackoff
	} else {
		s.backoffAt = min(2*s.backoffAt, s.opts.MaxBackoff)
	}
	return s.backoffAt
}

func (s *amSender) post(batch []*queued) error {
	alerts := make(models.PostableAlerts, len(batch))
	for i, q := range batch {
		alerts[i] = q.alert
	}
	params := amalert.NewPostAlertsParamsWithContext(s.ctx).WithTimeout(s.opts.Timeout).WithAlerts(alerts)
	if _, err := s.client.PostAlerts(params); err != nil {
		return fmt.Errorf("post %d alerts to alertmanager %s: %w", len(batch), s.url, err)
	}
	return nil
}

func (s *amSender) fetch(ctx context.Context, filter []string) ([]*Alert, error) {
	params := amalert.NewGetAlertsParamsWithContext(ctx).WithTimeout(s.opts.Timeout).WithFilter(filter)
	res, err := s.client.GetAlerts(params)
	if err != nil {
		return nil, fmt.Errorf("get alerts from alertmanager %s: %w", s.url, err)
	}
	var out []*Alert
	for _, g := range res.Payload {
		if g == nil || g.StartsAt == nil || g.EndsAt == nil {
			continue
		}
		out = append(out, &Alert{
			Labels:       map[string]string(g.Labels),
			Annotations:  map[string]string(g.Annotations),
			GeneratorURL: string(g.GeneratorURL),
			ActiveAt:     time.Time(*g.StartsAt),
			ValidUntil:   time.Time(*g.EndsAt),
		})
	}
	return out, nil
}
