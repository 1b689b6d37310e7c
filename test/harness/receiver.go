// This file owns the webhook receiver: an httptest server that records Alertmanager's webhook
// notifications so tests can wait for a given alert to fire or resolve.

package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Alert statuses in Alertmanager's webhook payload.
const (
	AlertFiring   = "firing"
	AlertResolved = "resolved"
)

// amMaxWebhookBody bounds one notification body; group_by ['...'] keeps them to one alert.
const amMaxWebhookBody = 10 << 20

// WebhookMessage is Alertmanager's webhook payload (version "4").
type WebhookMessage struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []WebhookAlert    `json:"alerts"`

	// ReceivedAt is when the receiver got the message (not part of the payload).
	ReceivedAt time.Time `json:"-"`
}

// WebhookAlert is one alert in a webhook notification.
type WebhookAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`

	// ReceivedAt is when the message carrying this alert arrived (not part of the payload).
	ReceivedAt time.Time `json:"-"`
}

// Matches reports whether the alert has the given status ("" matches any) and every label in
// labels (a subset match, so tests name only the labels they care about).
func (a WebhookAlert) Matches(status string, labels map[string]string) bool {
	if status != "" && a.Status != status {
		return false
	}
	for k, v := range labels {
		if got, ok := a.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// String renders the alert compactly for test failure messages.
func (a WebhookAlert) String() string {
	keys := make([]string, 0, len(a.Labels))
	for k := range a.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%q", k, a.Labels[k]))
	}
	return fmt.Sprintf("%s{%s} startsAt=%s endsAt=%s", a.Status, strings.Join(parts, ","),
		a.StartsAt.Format(time.RFC3339), a.EndsAt.Format(time.RFC3339))
}

// AlertReceiver records webhook notifications. Create it with NewAlertReceiver; it is closed in
// t.Cleanup. Its methods are safe for concurrent use.
type AlertReceiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	messages []WebhookMessage
	errors   []string
	status   int           // HTTP status to answer with; 200 unless set by RespondWith
	changed  chan struct{} // closed and replaced whenever messages changes
}

// NewAlertReceiver starts the receiver on a loopback port. Use URL() as the webhook URL.
func NewAlertReceiver(t testing.TB) *AlertReceiver {
	t.Helper()
	r := &AlertReceiver{status: http.StatusOK, changed: make(chan struct{})}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() {
		r.srv.Close()
		if t.Failed() {
			t.Logf("alert receiver: notifications received:\n%s", r.Dump())
		}
		if errs := r.Errors(); len(errs) > 0 {
			t.Errorf("alert receiver: malformed notifications: %s", strings.Join(errs, "; "))
		}
	})
	return r
}

func (r *AlertReceiver) serve(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, amMaxWebhookBody))
	if err != nil {
		r.recordError(fmt.Sprintf("read body: %v", err))
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var msg WebhookMessage
	if err := json.Unmarshal(body, &msg); err != nil {
		r.recordError(fmt.Sprintf("decode %q: %v", body, err))
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	msg.ReceivedAt = time.Now()
	for i := range msg.Alerts {
		msg.Alerts[i].ReceivedAt = msg.ReceivedAt
	}
	r.mu.Lock()
	status := r.status
	// A message answered with an error is not recorded: Alertmanager will send it again, and
	// tests waiting for it should see the retry, not the rejected attempt.
	if status == http.StatusOK {
		r.messages = append(r.messages, msg)
		close(r.changed)
		r.changed = make(chan struct{})
	}
	r.mu.Unlock()
	w.WriteHeader(status)
}

func (r *AlertReceiver) recordError(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, s)
}

// URL is the webhook URL to give Alertmanager.
func (r *AlertReceiver) URL() string { return r.srv.URL + "/webhook" }

// RespondWith makes the receiver answer every notification with the given HTTP status (and not
// record it) until called again with 200, to test Alertmanager's retries.
func (r *AlertReceiver) RespondWith(status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = status
}

// Messages returns a copy of the notifications received so far, oldest first.
func (r *AlertReceiver) Messages() []WebhookMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]WebhookMessage(nil), r.messages...)
}

// Alerts returns every received alert with the given status ("" for any) and labels, oldest first.
func (r *AlertReceiver) Alerts(status string, labels map[string]string) []WebhookAlert {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.matchLocked(status, labels)
}

func (r *AlertReceiver) matchLocked(status string, labels map[string]string) []WebhookAlert {
	var out []WebhookAlert
	for _, m := range r.messages {
		for _, a := range m.Alerts {
			if a.Matches(status, labels) {
				out = append(out, a)
			}
		}
	}
	return out
}

// Errors returns descriptions of requests that were not valid webhook notifications.
func (r *AlertReceiver) Errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errors...)
}

// Reset forgets every notification received so far, so a later wait only sees new ones.
func (r *AlertReceiver) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.messages = nil
}

// Await blocks until an alert with the given status and labels has been received (including
// before the call, since the last Reset) and returns the first such alert, or fails when ctx ends.
func (r *AlertReceiver) Await(ctx context.Context, status string, labels map[string]string) (WebhookAlert, error) {
	for {
		r.mu.Lock()
		found := r.matchLocked(status, labels)
		changed := r.changed
		r.mu.Unlock()
		if len(found) > 0 {
			return found[0], nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return WebhookAlert{}, fmt.Errorf("no %s alert matching %v received: %w; received:\n%s",
				amStatusOrAny(status), labels, ctx.Err(), r.Dump())
		}
	}
}

// WaitForAlert is Await bounded by timeout that fails the test instead of returning an error.
func (r *AlertReceiver) WaitForAlert(t testing.TB, status string, labels map[string]string, timeout time.Duration) WebhookAlert {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	a, err := r.Await(ctx, status, labels)
	if err != nil {
		t.Fatalf("waited %s: %v", timeout, err)
	}
	return a
}

// RequireNoAlert fails the test if an alert with the given status and labels arrives (or has
// arrived since the last Reset) within d. It always waits the full d when none arrives.
func (r *AlertReceiver) RequireNoAlert(t testing.TB, status string, labels map[string]string, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if a, err := r.Await(ctx, status, labels); err == nil {
		t.Fatalf("unexpected alert received: %s", a)
	}
}

// Dump renders every received alert, one per line, for failure messages.
func (r *AlertReceiver) Dump() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, m := range r.messages {
		for _, a := range m.Alerts {
			fmt.Fprintf(&b, "  %s %s\n", m.ReceivedAt.Format("15:04:05.000"), a)
		}
	}
	if b.Len() == 0 {
		return "  (nothing)"
	}
	return b.String()
}

func amStatusOrAny(status string) string {
	if status == "" {
		return "(any status)"
	}
	return status
}
