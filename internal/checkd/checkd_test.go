package checkd

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/checks"
	"github.com/meshguard/meshguard/internal/alerting"
	"github.com/meshguard/meshguard/internal/config"
)

// emptyQuerier answers every query with no series: complete data in which nothing fires.
type emptyQuerier struct{}

func (emptyQuerier) Query(context.Context, string, time.Time, ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error) {
	return model.Vector{}, nil, nil, nil
}

// previousRunAM is an Alertmanager holding one alert a previous checker left firing; it records
// what is posted.
type previousRunAM struct {
	mu     sync.Mutex
	posted []map[string]any
}

func (am *previousRunAM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.Method == http.MethodGet {
		start, end := time.Now().Add(-time.Hour).Format(time.RFC3339), time.Now().Add(time.Minute).Format(time.RFC3339)
		_, _ = io.WriteString(w, `[{"labels":{"alertname":"MeshRetryStorm","rule":"retry-storm","namespace":"shop","service":"cart"},
			"annotations":{},"startsAt":"`+start+`","endsAt":"`+end+`","updatedAt":"`+start+`","fingerprint":"f",
			"receivers":[{"name":"r"}],"status":{"state":"active","silencedBy":[],"inhibitedBy":[]}}]`)
		return
	}
	var batch []map[string]any
	if err := json.NewDecoder(r.Body).Decode(&batch); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	am.mu.Lock()
	am.posted = append(am.posted, batch...)
	am.mu.Unlock()
}

func (am *previousRunAM) posts() []map[string]any {
	am.mu.Lock()
	defer am.mu.Unlock()
	return append([]map[string]any(nil), am.posted...)
}

// TestRunAlone: a single replica reads back what a previous run left firing before its first
// cycle, resolves it at once since it cleared, serves /metrics as the sender, and stops cleanly.
func TestRunAlone(t *testing.T) {
	am := &previousRunAM{}
	amSrv := httptest.NewServer(am)
	t.Cleanup(amSrv.Close)
	s := checks.SettingsFrom(config.Default())
	s.Interval, s.PrometheusURL = time.Hour, "http://prometheus:9090"
	reg := prometheus.NewRegistry()
	metrics := checks.NewMetrics(reg)
	n, err := alerting.NewNotifier(alerting.NotifierOptions{Alertmanagers: []config.Endpoint{{URL: amSrv.URL}}, Metrics: metrics.Alerting})
	require.NoError(t, err)
	gate := &Gate{}
	c, err := checks.New(checks.Options{Settings: s, Querier: emptyQuerier{}, Config: checks.StaticSource{Config: checks.NewMeshConfig("istio-system", nil, nil)},
		Notifier: n, MaySend: gate.Open, Metrics: metrics})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Checker: c, Gate: gate, Notifier: n, Registry: reg, Listener: ln, Interval: s.Interval,
			Restore: true, FlushTimeout: 5 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	}()
	require.Eventually(t, func() bool { return len(am.posts()) > 0 }, 10*time.Second, 10*time.Millisecond)
	p := am.posts()[0]
	require.Equal(t, "MeshRetryStorm", p["labels"].(map[string]any)["alertname"])
	ends, err := time.Parse(time.RFC3339Nano, p["endsAt"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), ends, 5*time.Second, "resolved at the first cycle, not left to expire")
	require.True(t, gate.Open())

	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Contains(t, strings.Split(string(body), "\n"), "meshguard_check_leader 1")

	cancel()
	require.NoError(t, <-done)
	_, err = net.Dial("tcp", ln.Addr().String())
	require.Error(t, err, "the HTTP server is stopped")
}
