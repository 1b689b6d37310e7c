package harness

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// AlertmanagerStub is an in-process Alertmanager v2 API for unit tests, where starting the real
// Alertmanager (StartAlertmanager) is too slow: it records posted alerts, can be made to fail,
// and answers GET /api/v2/alerts with the alerts it holds that have not ended.
type AlertmanagerStub struct {
	srv *httptest.Server

	mu       sync.Mutex
	status   int
	posts    [][]PostedAlert
	auth     []string
	attempts int
	current  map[string]PostedAlert // by labels
}

// PostedAlert is an alert as posted to the API.
type PostedAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
}

// NewAlertmanagerStub starts a stub, stopped at the end of the test.
func NewAlertmanagerStub(t *testing.T) *AlertmanagerStub {
	am := &AlertmanagerStub{status: http.StatusOK, current: map[string]PostedAlert{}}
	am.srv = httptest.NewServer(http.HandlerFunc(am.serve))
	t.Cleanup(am.srv.Close)
	return am
}

func (am *AlertmanagerStub) serve(w http.ResponseWriter, r *http.Request) {
	am.mu.Lock()
	defer am.mu.Unlock()
	if r.URL.Path != "/api/v2/alerts" {
		http.NotFound(w, r)
		return
	}
	am.auth = append(am.auth, r.Header.Get("Authorization"))
	if r.Method == http.MethodGet {
		var out []map[string]any
		for _, a := range am.current {
			if a.EndsAt.After(time.Now()) {
				out = append(out, map[string]any{"labels": a.Labels, "annotations": a.Annotations,
					"startsAt": a.StartsAt, "endsAt": a.EndsAt, "updatedAt": a.StartsAt, "fingerprint": "f",
					"receivers": []map[string]string{{"name": "r"}}, "status": map[string]any{"state": "active", "silencedBy": []string{}, "inhibitedBy": []string{}}})
			}
		}
		w.Header().Set("Content-Type", "application/json")
		if out == nil {
			out = []map[string]any{}
		}
		_ = json.NewEncoder(w).Encode(out)
		return
	}
	am.attempts++
	if am.status != http.StatusOK {
		http.Error(w, "down", am.status)
		return
	}
	var batch []PostedAlert
	if err := json.NewDecoder(r.Body).Decode(&batch); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	am.posts = append(am.posts, batch)
	for _, a := range batch {
		am.current[fmt.Sprint(a.Labels)] = a // fmt prints a map sorted by key
	}
	w.WriteHeader(http.StatusOK)
}

// URL is the stub's base URL.
func (am *AlertmanagerStub) URL() string { return am.srv.URL }

// RespondWith makes every later post answer status (http.StatusOK: accept again).
func (am *AlertmanagerStub) RespondWith(status int) {
	am.mu.Lock()
	defer am.mu.Unlock()
	am.status = status
}

// Received returns every alert posted so far, in order.
func (am *AlertmanagerStub) Received() []PostedAlert {
	am.mu.Lock()
	defer am.mu.Unlock()
	var out []PostedAlert
	for _, b := range am.posts {
		out = append(out, b...)
	}
	return out
}

// FailedAttempts counts the posts refused by RespondWith.
func (am *AlertmanagerStub) FailedAttempts() int {
	am.mu.Lock()
	defer am.mu.Unlock()
	return am.attempts - len(am.posts)
}

// Authorizations returns the Authorization header of every request so far.
func (am *AlertmanagerStub) Authorizations() []string {
	am.mu.Lock()
	defer am.mu.Unlock()
	return append([]string(nil), am.auth...)
}

// SetStartsAt rewrites the start of every alert the stub holds, as another Alertmanager of a
// pair that heard of them later would have it.
func (am *AlertmanagerStub) SetStartsAt(ts time.Time) {
	am.mu.Lock()
	defer am.mu.Unlock()
	for k, v := range am.current {
		v.StartsAt = ts
		am.current[k] = v
	}
}
