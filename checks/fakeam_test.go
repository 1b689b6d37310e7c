package checks

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// fakeAM is an httptest Alertmanager v2 API: it records posted alerts, can be made to fail, and
// answers GET /api/v2/alerts with the alerts it holds that have not ended.
type fakeAM struct {
	srv *httptest.Server

	mu       sync.Mutex
	status   int
	posts    [][]postedAlert
	auth     []string
	attempts int
	current  map[string]postedAlert // by labels
}

type postedAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
}

func newFakeAM(t *testing.T) *fakeAM {
	am := &fakeAM{status: http.StatusOK, current: map[string]postedAlert{}}
	am.srv = httptest.NewServer(http.HandlerFunc(am.serve))
	t.Cleanup(am.srv.Close)
	return am
}

func (am *fakeAM) serve(w http.ResponseWriter, r *http.Request) {
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
	var batch []postedAlert
	if err := json.NewDecoder(r.Body).Decode(&batch); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	am.posts = append(am.posts, batch)
	for _, a := range batch {
		am.current[labelsKey(a.Labels)] = a
	}
	w.WriteHeader(http.StatusOK)
}

func (am *fakeAM) URL() string { return am.srv.URL }

func (am *fakeAM) respondWith(status int) {
	am.mu.Lock()
	defer am.mu.Unlock()
	am.status = status
}

// received returns every alert posted so far, in order.
func (am *fakeAM) received() []postedAlert {
	am.mu.Lock()
	defer am.mu.Unlock()
	var out []postedAlert
	for _, b := range am.posts {
		out = append(out, b...)
	}
	return out
}

func (am *fakeAM) failedAttempts() int {
	am.mu.Lock()
	defer am.mu.Unlock()
	return am.attempts - len(am.posts)
}
