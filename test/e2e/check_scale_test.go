package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/checks"
	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/internal/graph"
	"github.com/meshguard/meshguard/test/harness"
	"github.com/meshguard/meshguard/test/meshsim"
)

// checkCountingAPI counts the PromQL queries the checker sends to a real Prometheus.
type checkCountingAPI struct {
	promv1.API
	queries atomic.Int64
}

func (c *checkCountingAPI) Query(ctx context.Context, q string, ts time.Time, opts ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error) {
	c.queries.Add(1)
	return c.API.Query(ctx, q, ts, opts...)
}

// checkQueryStats asks Prometheus for a query's statistics (stats=all): the samples it read to
// answer it and the time its evaluation took.
func checkQueryStats(t *testing.T, promURL, query string, ts time.Time) (int64, time.Duration) {
	t.Helper()
	form := url.Values{"query": {query}, "time": {strconv.FormatInt(ts.Unix(), 10)}, "stats": {"all"}}
	resp, err := http.PostForm(promURL+"/api/v1/query", form)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Stats struct {
				Timings struct {
					EvalTotalTime float64 `json:"evalTotalTime"`
				} `json:"timings"`
				Samples struct {
					TotalQueryableSamples int64 `json:"totalQueryableSamples"`
				} `json:"samples"`
			} `json:"stats"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return body.Data.Stats.Samples.TotalQueryableSamples, time.Duration(body.Data.Stats.Timings.EvalTotalTime * float64(time.Second))
}

// TestCheckScale measures one cycle against a Prometheus holding a backfilled mesh of 10, 1,000
// and 10,000 destination services (meshsim.Generate): the number of PromQL queries per cycle
// must not change with the mesh, and the cycle time is reported.
func TestCheckScale(t *testing.T) {
	const (
		window = 2 * time.Minute
		cycles = 3
	)
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	span := meshsim.Span{Start: start, End: start.Add(4 * time.Minute), Step: 15 * time.Second}
	var perCycle, perFullCycle []int64
	for _, n := range []int{10, 1000, 10000} {
		t.Run(fmt.Sprintf("%d destination services", n), func(t *testing.T) {
			began := time.Now()
			flows := meshsim.Generate(n)
			input := filepath.Join(t.TempDir(), "mesh.om")
			f, err := os.Create(input)
			require.NoError(t, err)
			require.NoError(t, meshsim.WriteOpenMetrics(f, flows, span, meshsim.Options{OmitHistograms: true}))
			require.NoError(t, f.Close())
			info, err := os.Stat(input)
			require.NoError(t, err)
			dataDir := filepath.Join(t.TempDir(), "data")
			require.NoError(t, harness.PromBackfillFile(t, input, dataDir))
			prom := harness.StartPrometheus(t, harness.PrometheusOptions{DataDir: dataDir})
			prepared := time.Since(began)

			api, err := checks.NewPrometheus(config.Endpoint{URL: prom.URL()}, nil)
			require.NoError(t, err)
			counting := &checkCountingAPI{API: api}
			s := checks.SettingsFrom(config.Default())
			s.Window, s.PrometheusURL = window, prom.URL()
			// call_chains has a series per HTTP flow (9,000 at 10,000 services) and the chains need
			// every one: with the default 1,000 the checker would leave most out and say so
			// (MeshCheckerOverLimit, and one more query to count them).
			s.MaxSeriesPerSignal = max(s.MaxSeriesPerSignal, n)
			newChecker := func() *checks.Checker {
				c, err := checks.New(checks.Options{Settings: s, Querier: counting, Config: checks.StaticSource{Config: checkMeshConfigOf(t, checkMeshStrictPA)},
					Clock: func() time.Time { return span.End }, QueryTimeout: 2 * time.Minute})
				require.NoError(t, err)
				return c
			}
			// A cycle that asks every signal (the first of each window, and --once), then the
			// cycles within a window, which reuse the call chains (Signal.Refresh).
			cycle := func(c *checks.Checker, queries *[]int64) (*checks.Result, time.Duration) {
				before := counting.queries.Load()
				res := c.Cycle(context.Background())
				require.False(t, res.Degraded(), "%v", res.Errors())
				*queries = append(*queries, counting.queries.Load()-before)
				return res, res.Duration
			}
			var durations, fullDurations []time.Duration
			var res *checks.Result
			for range cycles {
				r, d := cycle(newChecker(), &perFullCycle)
				fullDurations = append(fullDurations, d)
				res = r
			}
			warm := newChecker()
			warm.Cycle(context.Background())
			for range cycles {
				_, d := cycle(warm, &perCycle)
				durations = append(durations, d)
			}
			sort.Slice(fullDurations, func(i, j int) bool { return fullDurations[i] < fullDurations[j] })
			sort.Slice(durations, func(i, j int) bool { return durations[i] < durations[j] })
			counts := map[string]int{}
			for _, a := range res.Firing {
				counts[a.Name()]++
			}
			var slowest checks.QueryResult
			for _, q := range res.Queries {
				if q.Duration > slowest.Duration {
					slowest = q
				}
			}
			// Asked one at a time, after the cycles: what each query costs Prometheus on its own.
			var samples int64
			perSignal := map[string]string{}
			for _, q := range res.Queries {
				n, eval := checkQueryStats(t, prom.URL(), q.Query, span.End)
				perSignal[q.Signal] = fmt.Sprintf("%d samples in %s", n, eval.Round(time.Millisecond))
				samples += n
			}
			t.Logf("%d services: a cycle within the window: %d queries, median %s (min %s, max %s); the first cycle of a window: %d queries, "+
				"median %s (min %s, max %s), slowest query %s %s; %d samples touched %v; %d alerts firing %v; %d MB OpenMetrics backfilled and served in %s",
				n, perCycle[len(perCycle)-1], durations[cycles/2].Round(time.Millisecond), durations[0].Round(time.Millisecond),
				durations[cycles-1].Round(time.Millisecond), perFullCycle[len(perFullCycle)-1], fullDurations[cycles/2].Round(time.Millisecond),
				fullDurations[0].Round(time.Millisecond), fullDurations[cycles-1].Round(time.Millisecond), slowest.Signal, slowest.Duration.Round(time.Millisecond),
				samples, perSignal, len(res.Firing), counts, info.Size()>>20, prepared.Round(time.Second))

			// Generate's shape: plaintext at i%100==37, storms at 59, timeouts at i%200==83,
			// ejections at i%250==11.
			want := map[string]int{
				checks.AlertPlaintextTraffic: (n + 62) / 100,
				checks.AlertRetryStorm:       (n + 40) / 100,
				checks.AlertUpstreamTimeouts: (n + 116) / 200,
				checks.AlertCircuitOpen:      (n + 238) / 250,
				// Each namespace is one chain from its frontend through its services (TCP hops go on
				// at ×1) at Istio's default retries: over the budget of 10 at its third service
				// (×27), where the alert reports it, once.
				checks.AlertRetryAmplification: (n + 99) / 100,
			}
			for name, w := range want {
				if w == 0 {
					delete(want, name)
				}
			}
			require.Equal(t, want, counts)

			// The service map of the same mesh: its queries, once each, and the model built from them.
			before := counting.queries.Load()
			began = time.Now()
			g, err := checks.BuildGraph(context.Background(), checks.GraphOptions{Querier: counting, Window: window, At: span.End,
				MeshDomain: "cluster.local", RootNamespace: "istio-system", QueryTimeout: 2 * time.Minute, Thresholds: graph.DefaultThresholds()})
			require.NoError(t, err)
			built := time.Since(began)
			began = time.Now()
			amp := g.Amplification()
			_, err = g.Impact(fmt.Sprintf("svc-%05d.mesh-000", min(n-1, 50)))
			require.NoError(t, err)
			t.Logf("%d services: service map in %s from %d queries (%d nodes, %d edges); amplification (%d chains) and one impact set in %s",
				n, built.Round(time.Millisecond), counting.queries.Load()-before, len(g.Nodes), len(g.Edges), len(amp.Chains),
				time.Since(began).Round(time.Millisecond))
			require.EqualValues(t, len(checks.GraphSignals(window, graph.ClusterLabels{})), counting.queries.Load()-before)
			require.Equal(t, 2*n+(n+99)/100, len(g.Nodes), "a workload and a service per destination, and each namespace's frontend")
		})
	}
	signals := checks.Signals(checks.SettingsFrom(config.Default()))
	reused := 0
	for _, sig := range signals {
		if sig.Refresh > 0 {
			reused++
		}
	}
	for _, q := range perFullCycle {
		require.EqualValues(t, len(signals), q, "queries per cycle must not grow with the mesh: %v", perFullCycle)
	}
	for _, q := range perCycle {
		require.EqualValues(t, len(signals)-reused, q, "within a window, the signals asked once per window are not asked again: %v", perCycle)
	}
	require.LessOrEqual(t, len(signals), 7, "a cycle runs at most seven queries")
}
