package checks

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/meshguard/meshguard/internal/alerting"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// thanosFake answers /api/v1/query in the Prometheus HTTP API's shape from a fakeQuerier's
// answers, adding the warnings a Thanos querier gives when a store could not be reached.
type thanosFake struct {
	q *fakeQuerier

	mu       sync.Mutex
	warnings []string
	partial  []string // the partial_response parameter of each query
}

func (f *thanosFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/query" {
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	f.partial = append(f.partial, r.FormValue("partial_response"))
	warnings := f.warnings
	f.mu.Unlock()
	f.q.mu.Lock()
	v, ok := f.q.answers[r.FormValue("query")]
	f.q.mu.Unlock()
	if !ok {
		http.Error(w, `{"status":"error","errorType":"bad_data","error":"unexpected query"}`, http.StatusBadRequest)
		return
	}
	if v == nil {
		v = model.Vector{}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success",
		"data": map[string]any{"resultType": "vector", "result": v}, "warnings": warnings})
}

// TestCheckerPartialResponse: a Thanos answer with warnings lacks some stores' series. What it
// holds still raises alerts, what it lacks resolves nothing, and the cycle is degraded.
func TestCheckerPartialResponse(t *testing.T) {
	s := testSettings()
	fake := &thanosFake{q: newFakeQuerier(s, stormResults())}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	allow := true
	prom, err := NewPrometheus(endpointAt(srv.URL), nil, PartialResponse(&allow))
	require.NoError(t, err)
	clk := &clock{now: t0}
	c, _ := newTestChecker(t, prom, StaticSource{meshFrom(t, meshStrict)}, nil, clk)

	res := c.Cycle(context.Background())
	require.False(t, res.Degraded(), "%v", res.Errors())
	require.Len(t, res.Firing, 2)
	fake.mu.Lock()
	require.NotEmpty(t, fake.partial)
	for _, p := range fake.partial {
		require.Equal(t, "true", p, "partial_response goes with every query")
	}
	fake.mu.Unlock()

	// The store holding the storm's series is unreachable: Thanos answers without them.
	results := stormResults()
	delete(results, SignalEnvoyStats)
	results[SignalPlaintextRequests] = model.Vector{plaintextInto(1, "bookinfo", "details-v1", "details", "legacy", "legacy-client")}
	fake.q.set(s, results)
	fake.mu.Lock()
	fake.warnings = []string{"receive series from Addr: 10.0.0.7:10901: rpc error: code = Unavailable"}
	fake.mu.Unlock()
	clk.advance(s.Interval)
	res = c.Cycle(context.Background())
	require.True(t, res.Degraded())
	require.ErrorIs(t, res.Errors()[0], ErrPartialResponse)
	var names []string
	for _, a := range res.Firing {
		names = append(names, a.Name()+"/"+a.Labels["destination_workload"])
	}
	require.ElementsMatch(t, []string{AlertRetryStorm + "/", AlertPlaintextTraffic + "/reviews-v1", AlertPlaintextTraffic + "/details-v1",
		AlertCheckerDegraded + "/"}, names, "the storm and reviews-v1 are kept, details-v1 is raised from what the answer holds")
	for _, a := range res.Firing {
		if a.Name() == AlertCheckerDegraded {
			require.Contains(t, a.Annotations["description"], "partial response: receive series from Addr: 10.0.0.7:10901")
		}
	}
	require.Error(t, c.Ready())

	// Every store answers again: what cleared is resolved at once, with no recovery window.
	fake.mu.Lock()
	fake.warnings = nil
	fake.mu.Unlock()
	clk.advance(s.Interval)
	res = c.Cycle(context.Background())
	require.False(t, res.Degraded())
	resolved := map[string]bool{}
	for _, a := range res.Sent {
		if a.State == alerting.StateInactive {
			resolved[a.Name()+"/"+a.Labels["destination_workload"]] = true
		}
	}
	require.Equal(t, map[string]bool{AlertRetryStorm + "/": true, AlertPlaintextTraffic + "/reviews-v1": true, AlertCheckerDegraded + "/": true}, resolved)
}
