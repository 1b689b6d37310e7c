package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/checks"
	"github.com/meshguard/meshguard/internal/alerting"
	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/test/harness"
	"github.com/meshguard/meshguard/test/meshsim"
)

// checkAnswerSizes records how many series each PromQL query brought back from Prometheus.
type checkAnswerSizes struct {
	promv1.API
	mu    sync.Mutex
	sizes map[string]int
}

func (c *checkAnswerSizes) Query(ctx context.Context, q string, ts time.Time, opts ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error) {
	v, w, i, err := c.API.Query(ctx, q, ts, opts...)
	if vec, ok := v.(model.Vector); ok {
		c.mu.Lock()
		c.sizes[q] = len(vec)
		c.mu.Unlock()
	}
	return v, w, i, err
}

// TestCheckLimits runs one cycle against a real Prometheus holding backfilled plaintext traffic
// into 3 or 4 workloads of a STRICT mesh, with limits just below that: Prometheus sends at most
// one series more than the limit, and what is over is counted, reported and alerted on.
func TestCheckLimits(t *testing.T) {
	start := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	at := start.Add(10 * time.Minute)
	var flows []meshsim.Flow
	for i := range 4 {
		flows = append(flows, meshsim.Flow{Source: checkLegacy, Rate: float64(i + 1), Plaintext: true,
			Destination: meshsim.Workload{Name: fmt.Sprintf("api-%d", i), Namespace: "strict", App: fmt.Sprintf("api-%d", i)}})
	}
	render := func(t *testing.T, fl []meshsim.Flow) string {
		om, err := meshsim.RenderOpenMetrics(fl, meshsim.Span{Start: start, End: at, Step: 10 * time.Second}, meshsim.Options{OmitHistograms: true})
		require.NoError(t, err)
		return om
	}
	proms := map[int]*harness.Prometheus{
		3: harness.StartPrometheus(t, harness.PrometheusOptions{DataDir: harness.Backfill(t, render(t, flows[:3]))}),
		4: harness.StartPrometheus(t, harness.PrometheusOptions{DataDir: harness.Backfill(t, render(t, flows))}),
	}

	tests := []struct {
		name                 string
		workloads            int
		maxSeries, maxAlerts int
		wantAnswer           int // series Prometheus sent for the plaintext signal
		wantDropped          int
		wantAlertsOver       int
		wantFiring           int // MeshPlaintextTraffic alerts
	}{
		{name: "one series over the limit is counted with a count() query and not evaluated",
			workloads: 3, maxSeries: 2, maxAlerts: 100, wantAnswer: 3, wantDropped: 1, wantFiring: 2},
		{name: "two series over the limit never leave Prometheus: it sends one more than the limit",
			workloads: 4, maxSeries: 2, maxAlerts: 100, wantAnswer: 3, wantDropped: 2, wantFiring: 2},
		{name: "one alert over the limit is counted and not raised",
			workloads: 3, maxSeries: 100, maxAlerts: 2, wantAnswer: 3, wantAlertsOver: 1, wantFiring: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prom := proms[tt.workloads]
			cfg := config.Default()
			cfg.Check.Limits = config.CheckLimits{MaxSeriesPerSignal: tt.maxSeries, MaxAlertsPerCycle: tt.maxAlerts}
			s := checks.SettingsFrom(cfg)
			s.PrometheusURL, s.CheckerNamespace = prom.URL(), "meshguard-system"
			api, err := checks.NewPrometheus(config.Endpoint{URL: prom.URL()}, nil)
			require.NoError(t, err)
			sizes := &checkAnswerSizes{API: api, sizes: map[string]int{}}
			metrics := checks.NewMetrics(nil)
			c, err := checks.New(checks.Options{Settings: s, Querier: sizes, Metrics: metrics,
				Config: checks.StaticSource{Config: checkMeshConfigOf(t, checkMeshStrictPA)}, Clock: func() time.Time { return at }})
			require.NoError(t, err)

			res := c.Cycle(context.Background())
			require.False(t, res.Degraded(), "%v", res.Errors())
			var plain checks.QueryResult
			for _, q := range res.Queries {
				if q.Signal == checks.SignalPlaintextRequests {
					plain = q
				}
			}
			require.Equal(t, min(tt.workloads, tt.maxSeries), plain.Series)
			require.Equal(t, tt.wantDropped, plain.Dropped)
			require.Equal(t, tt.wantAlertsOver, res.AlertsOverLimit)
			answers := 0
			for q, n := range sizes.sizes {
				if strings.HasPrefix(q, "topk(") && strings.Contains(q, plain.Query) {
					answers = n
				}
			}
			require.Equal(t, tt.wantAnswer, answers, "series Prometheus sent for the bounded plaintext query")

			byName := map[string][]*alerting.Alert{}
			for _, a := range res.Firing {
				byName[a.Name()] = append(byName[a.Name()], a)
			}
			require.Len(t, byName[checks.AlertPlaintextTraffic], tt.wantFiring)
			for _, a := range byName[checks.AlertPlaintextTraffic] {
				require.NotEqual(t, "api-0", a.Labels["destination_workload"], "the lowest rate is the one left out")
			}
			over := byName[checks.AlertCheckerOverLimit]
			require.Len(t, over, 1, "the excess is alerted on")
			require.Equal(t, "meshguard-system", over[0].Labels["namespace"])
			// Other signals with a series per flow may be over the limit too: the totals add them.
			require.Equal(t, float64(res.SeriesOverLimit()+tt.wantAlertsOver), over[0].Value)
			require.GreaterOrEqual(t, res.SeriesOverLimit(), tt.wantDropped)
			if tt.wantDropped > 0 {
				require.Contains(t, over[0].Annotations["description"],
					fmt.Sprintf("plaintext_requests: %d series over check.limits.maxSeriesPerSignal (%d)", tt.wantDropped, tt.maxSeries))
			}
			rep := checks.NewReport(res, s)
			require.Equal(t, checks.ReportLimits{MaxSeriesPerSignal: tt.maxSeries, MaxAlertsPerCycle: tt.maxAlerts,
				SeriesOverLimit: res.SeriesOverLimit(), AlertsOverLimit: tt.wantAlertsOver}, rep.Limits)
			require.Equal(t, float64(tt.wantDropped), checkMetric(t, metrics.SeriesOverLimit.WithLabelValues(checks.SignalPlaintextRequests)))
			require.Equal(t, float64(tt.wantAlertsOver), checkMetric(t, metrics.AlertsOverLimit))
		})
	}
}
