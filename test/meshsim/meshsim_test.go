package meshsim_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/test/meshsim"
)

// fakeClock is a settable time source for exact counter values.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// scraped is one series from a scrape: metric name, labels and value (counter/gauge value, or
// histogram count).
type scraped struct {
	name   string
	labels map[string]string
	value  float64
	hist   *dto.Histogram
}

// scrape GETs /metrics from srv and parses it with expfmt's text parser, as Prometheus would.
func scrape(t *testing.T, srv *httptest.Server) []scraped {
	t.Helper()
	resp, err := http.Get(srv.URL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/plain", "Prometheus text format expected")
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	var out []scraped
	for name, fam := range families {
		for _, m := range fam.GetMetric() {
			s := scraped{name: name, labels: map[string]string{}}
			for _, lp := range m.GetLabel() {
				s.labels[lp.GetName()] = lp.GetValue()
			}
			switch fam.GetType() {
			case dto.MetricType_COUNTER:
				s.value = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				s.value = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				s.hist = m.GetHistogram()
				s.value = float64(s.hist.GetSampleCount())
			default:
				t.Fatalf("unexpected type %s for %s", fam.GetType(), name)
			}
			out = append(out, s)
		}
	}
	return out
}

func find(series []scraped, name string, labels map[string]string) []scraped {
	var out []scraped
	for _, s := range series {
		if s.name != name {
			continue
		}
		match := true
		for k, v := range labels {
			if s.labels[k] != v {
				match = false
				break
			}
		}
		if match {
			out = append(out, s)
		}
	}
	return out
}

func sum(series []scraped) float64 {
	total := 0.0
	for _, s := range series {
		total += s.value
	}
	return total
}

func labelNames(s scraped) []string {
	var names []string
	for k := range s.labels {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

func sorted(names []string) []string {
	out := append([]string(nil), names...)
	sort.Strings(out)
	return out
}

// The workloads most tests use; functions rather than package variables so no test can change
// another's.
func productpage() meshsim.Workload {
	return meshsim.Workload{Name: "productpage-v1", Namespace: "bookinfo", App: "productpage", ServiceAccount: "bookinfo-productpage"}
}

func reviews() meshsim.Workload {
	return meshsim.Workload{Name: "reviews-v1", Namespace: "bookinfo", App: "reviews", ServiceAccount: "bookinfo-reviews"}
}

func legacy() meshsim.Workload { return meshsim.Workload{Name: "legacy-client", Namespace: "legacy"} }

// expectation is one assertion about a scrape: the summed value of the series of name matching
// labels, or their absence (count 0).
type expectation struct {
	name   string
	labels map[string]string
	count  int     // number of matching series; -1 for "at least one"
	value  float64 // summed value, checked when count != 0
}

func TestExporterLabelSets(t *testing.T) {
	const elapsed = 10 // seconds between start and scrape
	tests := []struct {
		name   string
		flows  []meshsim.Flow
		expect []expectation
	}{
		{
			name:  "mTLS HTTP: mutual_tls and principals on the destination side, unknown policy on the source side",
			flows: []meshsim.Flow{{Source: productpage(), Destination: reviews(), Subset: "v1", Rate: 10}},
			expect: []expectation{
				{meshsim.MetricRequests, map[string]string{"reporter": "destination", "connection_security_policy": "mutual_tls",
					"source_workload": "productpage-v1", "source_workload_namespace": "bookinfo", "source_app": "productpage",
					"source_principal":      "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage",
					"destination_principal": "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews",
					"destination_workload":  "reviews-v1", "destination_service": "reviews.bookinfo.svc.cluster.local",
					"destination_service_name": "reviews", "destination_service_namespace": "bookinfo", "destination_version": "v1",
					"source_cluster": "Kubernetes", "destination_cluster": "Kubernetes",
					"request_protocol": "http", "response_code": "200", "grpc_response_status": "", "response_flags": "-"}, 1, 100},
				{meshsim.MetricRequests, map[string]string{"reporter": "source", "connection_security_policy": "unknown"}, 1, 100},
				{meshsim.MetricRequests, map[string]string{"reporter": "destination", "connection_security_policy": "none"}, 0, 0},
				{meshsim.MetricRequestDuration, map[string]string{"reporter": "destination"}, 1, 100},
				{meshsim.MetricUpstreamRq, map[string]string{"namespace": "bookinfo", "pod": productpage().PodName(),
					"cluster_name": "outbound|9080|v1|reviews.bookinfo.svc.cluster.local"}, 1, 100},
				{meshsim.MetricUpstreamRq, map[string]string{"pod": reviews().PodName(), "cluster_name": "inbound|9080||"}, 1, 100},
				{meshsim.MetricEjectionsActive, map[string]string{"pod": productpage().PodName(),
					"cluster_name": "outbound|9080|v1|reviews.bookinfo.svc.cluster.local"}, 1, 0},
				// Noise clusters are there, with retries, for the checker to ignore.
				{meshsim.MetricUpstreamRetry, map[string]string{"pod": productpage().PodName(), "cluster_name": "xds-grpc"}, 1, 1},
				{meshsim.MetricUpstreamRq, map[string]string{"pod": reviews().PodName(), "cluster_name": "PassthroughCluster"}, 1, 5},
				{meshsim.MetricUpstreamRq, map[string]string{"pod": reviews().PodName(), "cluster_name": "BlackHoleCluster"}, 1, 0},
			},
		},
		{
			name:  "plaintext from a sidecar client: none on the destination side, no principals",
			flows: []meshsim.Flow{{Source: legacy(), Destination: reviews(), Rate: 2, Plaintext: true}},
			expect: []expectation{
				{meshsim.MetricRequests, map[string]string{"reporter": "destination", "connection_security_policy": "none",
					"source_workload": "legacy-client", "source_workload_namespace": "legacy",
					"source_principal": "unknown", "destination_principal": "unknown"}, 1, 20},
				{meshsim.MetricRequests, map[string]string{"reporter": "source", "connection_security_policy": "unknown"}, 1, 20},
				{meshsim.MetricRequests, map[string]string{"connection_security_policy": "mutual_tls"}, 0, 0},
			},
		},
		{
			name: "client without a sidecar: destination side only, source unknown",
			flows: []meshsim.Flow{{Source: meshsim.Workload{Name: "curl", Namespace: "outside", NoSidecar: true},
				Destination: reviews(), Rate: 1}},
			expect: []expectation{
				{meshsim.MetricRequests, map[string]string{"reporter": "destination", "connection_security_policy": "none",
					"source_workload": "unknown", "source_workload_namespace": "unknown", "source_principal": "unknown"}, 1, 10},
				{meshsim.MetricRequests, map[string]string{"reporter": "source"}, 0, 0},
				{meshsim.MetricUpstreamRq, map[string]string{"namespace": "outside"}, 0, 0},
			},
		},
		{
			name:  "upstream timeouts: UT 504 on the source side, DC 0 on the destination side",
			flows: []meshsim.Flow{{Source: productpage(), Destination: reviews(), Rate: 10, TimeoutShare: 0.2}},
			expect: []expectation{
				{meshsim.MetricRequests, map[string]string{"reporter": "source", "response_flags": "UT", "response_code": "504"}, 1, 20},
				{meshsim.MetricRequests, map[string]string{"reporter": "destination", "response_flags": "DC", "response_code": "0"}, 1, 20},
				{meshsim.MetricRequests, map[string]string{"reporter": "destination", "response_flags": "UT"}, 0, 0},
				{meshsim.MetricRequests, map[string]string{"reporter": "source", "response_flags": "DC"}, 0, 0},
				{meshsim.MetricRequests, map[string]string{"reporter": "source"}, -1, 100},
			},
		},
		{
			name:  "retries: Envoy counters and URX on the source side; retried attempts reach the server",
			flows: []meshsim.Flow{{Source: productpage(), Destination: reviews(), Rate: 8, RetryShare: 0.2, URXShare: 0.25}},
			expect: []expectation{
				{meshsim.MetricUpstreamRetry, map[string]string{"cluster_name": "outbound|9080||reviews.bookinfo.svc.cluster.local"}, 1, 20},
				{meshsim.MetricUpstreamRq, map[string]string{"cluster_name": "outbound|9080||reviews.bookinfo.svc.cluster.local"}, 1, 100},
				{meshsim.MetricRequests, map[string]string{"reporter": "source", "response_flags": "URX", "response_code": "503"}, 1, 20},
				{meshsim.MetricRequests, map[string]string{"reporter": "destination", "response_flags": "URX"}, 0, 0},
				{meshsim.MetricRequests, map[string]string{"reporter": "source"}, -1, 80},
				{meshsim.MetricRequests, map[string]string{"reporter": "destination"}, -1, 100},
			},
		},
		{
			name:  "gRPC errors carry a grpc_response_status",
			flows: []meshsim.Flow{{Source: productpage(), Destination: reviews(), Protocol: meshsim.GRPC, Rate: 10, ErrorShare: 0.5}},
			expect: []expectation{
				{meshsim.MetricRequests, map[string]string{"reporter": "source", "request_protocol": "grpc", "grpc_response_status": "14"}, 1, 50},
				{meshsim.MetricRequests, map[string]string{"reporter": "source", "request_protocol": "grpc", "grpc_response_status": "0"}, 1, 50},
			},
		},
		{
			name: "TCP: connections opened, no request metrics",
			flows: []meshsim.Flow{{Source: productpage(), Destination: meshsim.Workload{Name: "mysql-v1", Namespace: "db", App: "mysql"},
				Port: 3306, Protocol: meshsim.TCP, Rate: 3, EjectionsActive: 2}},
			expect: []expectation{
				{meshsim.MetricTCPOpened, map[string]string{"reporter": "destination", "request_protocol": "tcp",
					"connection_security_policy": "mutual_tls", "destination_service": "mysql.db.svc.cluster.local"}, 1, 30},
				{meshsim.MetricTCPOpened, map[string]string{"reporter": "source", "connection_security_policy": "unknown"}, 1, 30},
				{meshsim.MetricRequests, nil, 0, 0},
				{meshsim.MetricEjectionsActive, map[string]string{"cluster_name": "outbound|3306||mysql.db.svc.cluster.local"}, 1, 2},
			},
		},
		{
			name:  "proxies without Envoy stats export no envoy_cluster_* series",
			flows: []meshsim.Flow{{Source: productpage(), Destination: reviews(), Rate: 10, URXShare: 0.1, OmitEnvoyStats: true}},
			expect: []expectation{
				{meshsim.MetricUpstreamRq, nil, 0, 0},
				{meshsim.MetricUpstreamRetry, nil, 0, 0},
				{meshsim.MetricEjectionsActive, nil, 0, 0},
				{meshsim.MetricRequests, map[string]string{"reporter": "source", "response_flags": "URX"}, 1, 10},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			exp, err := meshsim.NewExporter(meshsim.Options{Clock: clock.Now}, tc.flows...)
			require.NoError(t, err)
			srv := httptest.NewServer(exp)
			defer srv.Close()
			clock.Advance(elapsed * time.Second)
			series := scrape(t, srv)

			for _, s := range series {
				switch s.name {
				case meshsim.MetricRequests, meshsim.MetricRequestDuration:
					require.Equal(t, sorted(meshsim.RequestLabelNames()), labelNames(s), "labels of %s", s.name)
				case meshsim.MetricTCPOpened:
					require.Equal(t, sorted(meshsim.TCPLabelNames()), labelNames(s))
				default:
					require.Equal(t, sorted(meshsim.EnvoyClusterLabelNames()), labelNames(s), "labels of %s", s.name)
				}
				// Istio fact: the security policy is only known on the server side.
				if p, ok := s.labels["connection_security_policy"]; ok {
					if s.labels["reporter"] == "source" {
						require.Equal(t, "unknown", p)
					} else {
						require.Contains(t, []string{"mutual_tls", "none"}, p)
					}
				}
			}
			for _, e := range tc.expect {
				got := find(series, e.name, e.labels)
				switch {
				case e.count == 0:
					require.Empty(t, got, "%s%v", e.name, e.labels)
					continue
				case e.count > 0:
					require.Len(t, got, e.count, "%s%v", e.name, e.labels)
				default:
					require.NotEmpty(t, got, "%s%v", e.name, e.labels)
				}
				require.Equal(t, e.value, sum(got), "%s%v", e.name, e.labels)
			}
		})
	}
}

func TestExporterHistogram(t *testing.T) {
	clock := newFakeClock()
	exp, err := meshsim.NewExporter(meshsim.Options{Clock: clock.Now}, meshsim.Flow{
		Source: productpage(), Destination: reviews(), Rate: 10, TimeoutShare: 0.5, Latency: 30 * time.Millisecond, Timeout: 2 * time.Second,
	})
	require.NoError(t, err)
	srv := httptest.NewServer(exp)
	defer srv.Close()
	clock.Advance(10 * time.Second)
	series := scrape(t, srv)

	ok := find(series, meshsim.MetricRequestDuration, map[string]string{"reporter": "source", "response_flags": "-"})
	require.Len(t, ok, 1)
	ut := find(series, meshsim.MetricRequestDuration, map[string]string{"reporter": "source", "response_flags": "UT"})
	require.Len(t, ut, 1)
	for _, tc := range []struct {
		name     string
		h        *dto.Histogram
		latency  float64
		count    uint64
		firstHit float64 // first bucket bound holding every observation
	}{
		{"answered requests", ok[0].hist, 30, 50, 50},
		{"timed-out requests", ut[0].hist, 2000, 50, 2500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.count, tc.h.GetSampleCount())
			require.Equal(t, tc.latency*float64(tc.count), tc.h.GetSampleSum())
			// The parsed histogram has Istio's bounds plus the +Inf bucket.
			bounds := append(meshsim.DurationBuckets(), math.Inf(1))
			require.Len(t, tc.h.GetBucket(), len(bounds))
			for i, b := range tc.h.GetBucket() {
				require.Equal(t, bounds[i], b.GetUpperBound())
				want := uint64(0)
				if b.GetUpperBound() >= tc.firstHit {
					want = tc.count
				}
				require.Equal(t, want, b.GetCumulativeCount(), "le=%v", b.GetUpperBound())
			}
		})
	}
	// istio_requests_total and the histogram's _count agree.
	require.Equal(t, sum(find(series, meshsim.MetricRequests, nil)), sum(find(series, meshsim.MetricRequestDuration, nil)))
}

// TestExporterScript scripts "plaintext appears, then stops" and "a retry storm starts, then
// stops" on a fake clock and checks each scrape's counters.
func TestExporterScript(t *testing.T) {
	clock := newFakeClock()
	secure := meshsim.Flow{Source: productpage(), Destination: reviews(), Rate: 10}
	exp, err := meshsim.NewExporter(meshsim.Options{Clock: clock.Now}, secure)
	require.NoError(t, err)
	srv := httptest.NewServer(exp)
	defer srv.Close()
	plaintext := meshsim.Flow{Source: legacy(), Destination: reviews(), Rate: 2, Plaintext: true}
	cluster := secure.ClusterName()

	plain := map[string]string{"reporter": "destination", "connection_security_policy": "none"}
	secureDst := map[string]string{"reporter": "destination", "source_workload": "productpage-v1"}
	retries := map[string]string{"cluster_name": cluster}
	ejections := map[string]string{"cluster_name": cluster}

	steps := []struct {
		name      string
		change    func() error
		advance   time.Duration
		plaintext float64 // cumulative plaintext requests, -1 for "no series"
		secureDst float64 // cumulative destination-side requests from productpage (incl. retried attempts)
		retries   float64
		ejections float64
	}{
		{"steady mTLS", nil, 10 * time.Second, -1, 100, 0, 0},
		{"plaintext appears", func() error { return exp.Set(plaintext) }, 10 * time.Second, 20, 200, 0, 0},
		{"plaintext stops: its counter freezes", func() error { return exp.Remove(plaintext.Key()) }, 10 * time.Second, 20, 300, 0, 0},
		{"retry storm starts", func() error {
			return exp.Update(secure.Key(), func(f *meshsim.Flow) { f.RetryShare, f.EjectionsActive = 0.5, 1 })
		}, 10 * time.Second, 20, 500, 100, 1},
		{"retry storm stops", func() error {
			return exp.Update(secure.Key(), func(f *meshsim.Flow) { f.RetryShare, f.EjectionsActive = 0, 0 })
		}, 10 * time.Second, 20, 600, 100, 0},
		{"clock standing still changes nothing", nil, 0, 20, 600, 100, 0},
	}
	for _, step := range steps {
		if step.change != nil {
			require.NoError(t, step.change(), step.name)
		}
		clock.Advance(step.advance)
		series := scrape(t, srv)
		if step.plaintext < 0 {
			require.Empty(t, find(series, meshsim.MetricRequests, plain), step.name)
		} else {
			require.Equal(t, step.plaintext, sum(find(series, meshsim.MetricRequests, plain)), step.name)
		}
		require.Equal(t, step.secureDst, sum(find(series, meshsim.MetricRequests, secureDst)), step.name)
		require.Equal(t, step.retries, sum(find(series, meshsim.MetricUpstreamRetry, retries)), step.name)
		require.Equal(t, step.ejections, sum(find(series, meshsim.MetricEjectionsActive, ejections)), step.name)
	}

	require.Error(t, exp.Remove("no such flow"))
	require.Error(t, exp.Update(secure.Key(), func(f *meshsim.Flow) { f.Name = "renamed" }))
	require.Error(t, exp.Update(secure.Key(), func(f *meshsim.Flow) { f.RetryShare = 1 }))
	require.Len(t, exp.Flows(), 1)
}

// TestExporterRealClock checks that with the real clock two scrapes a moment apart see rising
// counters, which is what a live Prometheus relies on.
func TestExporterRealClock(t *testing.T) {
	exp, err := meshsim.NewExporter(meshsim.Options{}, meshsim.Flow{Source: productpage(), Destination: reviews(), Rate: 50})
	require.NoError(t, err)
	srv := httptest.NewServer(exp)
	defer srv.Close()
	labels := map[string]string{"reporter": "destination"}
	first := sum(find(scrape(t, srv), meshsim.MetricRequests, labels))
	time.Sleep(300 * time.Millisecond)
	second := sum(find(scrape(t, srv), meshsim.MetricRequests, labels))
	require.Greater(t, second, first)
	// 50/s over ≥ 300 ms is ≥ 15 (minus one for the floor of each reading).
	require.GreaterOrEqual(t, second-first, 14.0)
}

// TestExporterConcurrentUse changes flows while scraping; under -race it also checks locking.
// Every counter must be non-decreasing from one scrape to the next.
func TestExporterConcurrentUse(t *testing.T) {
	exp, err := meshsim.NewExporter(meshsim.Options{}, meshsim.Demo()...)
	require.NoError(t, err)
	srv := httptest.NewServer(exp)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		flow := meshsim.Flow{Source: legacy(), Destination: productpage(), Rate: 100}
		for i := 0; ctx.Err() == nil; i++ {
			var err error
			if i%2 == 0 {
				err = exp.Set(flow)
			} else {
				err = exp.Remove(flow.Key())
			}
			if err != nil {
				select {
				case errs <- err:
				default:
				}
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	last := map[string]float64{}
	scrapes := 0
	for ctx.Err() == nil {
		for _, s := range scrape(t, srv) {
			if s.name == meshsim.MetricEjectionsActive {
				continue
			}
			key := s.name + fmt.Sprint(s.labels)
			require.GreaterOrEqual(t, s.value, last[key], "%s went down", key)
			last[key] = s.value
		}
		scrapes++
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	require.Greater(t, scrapes, 1)
}

func TestFlowValidate(t *testing.T) {
	ok := meshsim.Flow{Source: productpage(), Destination: reviews(), Rate: 1}
	tests := []struct {
		name    string
		mutate  func(*meshsim.Flow)
		wantErr string
	}{
		{"valid", func(*meshsim.Flow) {}, ""},
		{"no source", func(f *meshsim.Flow) { f.Source = meshsim.Workload{} }, "source name and namespace"},
		{"no sidecars at all", func(f *meshsim.Flow) { f.Source.NoSidecar, f.Destination.NoSidecar = true, true }, "neither side"},
		{"negative rate", func(f *meshsim.Flow) { f.Rate = -1 }, "rate"},
		{"shares above 1", func(f *meshsim.Flow) { f.ErrorShare, f.TimeoutShare = 0.6, 0.6 }, "add up"},
		{"retry share 1", func(f *meshsim.Flow) { f.RetryShare = 1 }, "retry share"},
		{"TCP with errors", func(f *meshsim.Flow) { f.Protocol, f.ErrorShare = meshsim.TCP, 0.1 }, "TCP"},
		{"unknown protocol", func(f *meshsim.Flow) { f.Protocol = "udp" }, "protocol"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := ok
			tc.mutate(&f)
			err := f.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
			_, err = meshsim.NewExporter(meshsim.Options{}, f)
			require.Error(t, err, "NewExporter must reject what Validate rejects")
		})
	}
	_, err := meshsim.NewExporter(meshsim.Options{}, ok, ok)
	require.ErrorContains(t, err, "defined twice")
}

func TestDemo(t *testing.T) {
	clock := newFakeClock()
	exp, err := meshsim.NewExporter(meshsim.Options{Clock: clock.Now}, meshsim.Demo()...)
	require.NoError(t, err)
	srv := httptest.NewServer(exp)
	defer srv.Close()
	clock.Advance(time.Minute)
	series := scrape(t, srv)

	plain := find(series, meshsim.MetricRequests, map[string]string{"reporter": "destination", "connection_security_policy": "none"})
	require.NotEmpty(t, plain)
	for _, s := range plain {
		require.Equal(t, "legacy-client", s.labels["source_workload"])
		require.Equal(t, "legacy", s.labels["source_workload_namespace"])
		require.Equal(t, "reviews", s.labels["destination_service_name"])
	}
	ratings := map[string]string{"cluster_name": "outbound|9080||ratings.bookinfo.svc.cluster.local"}
	share := sum(find(series, meshsim.MetricUpstreamRetry, ratings)) / sum(find(series, meshsim.MetricUpstreamRq, ratings))
	require.InDelta(t, 0.3, share, 0.01, "retry storm on ratings")
	// Nothing else storms: every other outbound cluster has no retries.
	for _, s := range find(series, meshsim.MetricUpstreamRetry, nil) {
		if strings.HasPrefix(s.labels["cluster_name"], "outbound|") && !strings.Contains(s.labels["cluster_name"], "ratings") {
			require.Zero(t, s.value, "%v", s.labels)
		}
	}
}

func TestGenerate(t *testing.T) {
	const n = 10000
	flows := meshsim.Generate(n)
	require.Len(t, flows, n)
	services, keys := map[string]bool{}, map[string]bool{}
	counts := map[string]int{}
	for _, f := range flows {
		require.NoError(t, f.Validate())
		services[f.ServiceHost()] = true
		keys[f.Key()] = true
		switch {
		case f.Protocol == meshsim.TCP:
			counts["tcp"]++
		case f.Plaintext:
			counts["plaintext"]++
		case f.RetryShare > 0:
			counts["retry"]++
		case f.TimeoutShare > 0:
			counts["timeout"]++
		}
		if f.EjectionsActive > 0 {
			counts["ejections"]++
		}
	}
	require.Len(t, services, n, "every flow has its own destination service")
	require.Len(t, keys, n)
	require.Equal(t, map[string]int{"tcp": 1000, "plaintext": 100, "retry": 100, "timeout": 50, "ejections": 40}, counts)
	require.Equal(t, flows, meshsim.Generate(n), "Generate is deterministic")

	// One scrape of the whole mesh, counters only, to show it is servable and how big it is.
	clock := newFakeClock()
	exp, err := meshsim.NewExporter(meshsim.Options{Clock: clock.Now, OmitHistograms: true}, flows...)
	require.NoError(t, err)
	srv := httptest.NewServer(exp)
	defer srv.Close()
	clock.Advance(time.Minute)
	begin := time.Now()
	series := scrape(t, srv)
	t.Logf("Generate(%d): one scrape of %d series (histograms omitted) took %s", n, len(series), time.Since(begin).Round(time.Millisecond))
	dst := map[string]bool{}
	for _, s := range find(series, meshsim.MetricRequests, map[string]string{"reporter": "destination"}) {
		dst[s.labels["destination_service"]] = true
	}
	for _, s := range find(series, meshsim.MetricTCPOpened, map[string]string{"reporter": "destination"}) {
		dst[s.labels["destination_service"]] = true
	}
	require.Len(t, dst, n)
}

// omSample is one sample line of an OpenMetrics rendering.
type omSample struct {
	name   string
	labels map[string]string
	value  float64
	tsMs   int64
}

// parseOpenMetrics checks the rules promtool's backfill depends on and returns the samples:
// only HELP/TYPE/EOF comments, each family declared once and contiguous, sample names that belong
// to the declared family and type, timestamps in seconds inside the span, "# EOF" last.
func parseOpenMetrics(t *testing.T, r io.Reader, span meshsim.Span) (map[string]string, []omSample) {
	t.Helper()
	types := map[string]string{}
	var samples []omSample
	current := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	sawEOF := false
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		require.False(t, sawEOF, "line %d after # EOF", lineNo)
		switch {
		case line == "# EOF":
			sawEOF = true
		case strings.HasPrefix(line, "# HELP "):
			current = strings.Fields(line)[2]
		case strings.HasPrefix(line, "# TYPE "):
			f := strings.Fields(line)
			require.Len(t, f, 4, "line %d", lineNo)
			require.Equal(t, current, f[2], "line %d: TYPE after another family's HELP", lineNo)
			_, dup := types[f[2]]
			require.False(t, dup, "line %d: family %s declared twice (not contiguous)", lineNo, f[2])
			require.Contains(t, []string{"counter", "gauge", "histogram", "unknown"}, f[3])
			types[f[2]] = f[3]
		case strings.HasPrefix(line, "#"):
			t.Fatalf("line %d: unexpected comment %q", lineNo, line)
		default:
			s := parseOMSample(t, line, lineNo)
			switch types[current] {
			case "counter":
				require.Equal(t, current+"_total", s.name, "line %d", lineNo)
			case "histogram":
				require.Contains(t, []string{current + "_bucket", current + "_count", current + "_sum"}, s.name, "line %d", lineNo)
			case "gauge", "unknown":
				require.Equal(t, current, s.name, "line %d", lineNo)
			default:
				t.Fatalf("line %d: sample before any TYPE", lineNo)
			}
			require.GreaterOrEqual(t, s.tsMs, span.Start.UnixMilli(), "line %d", lineNo)
			require.LessOrEqual(t, s.tsMs, span.End.UnixMilli(), "line %d", lineNo)
			samples = append(samples, s)
		}
	}
	require.NoError(t, sc.Err())
	require.True(t, sawEOF, "no # EOF")
	return types, samples
}

func parseOMSample(t *testing.T, line string, lineNo int) omSample {
	t.Helper()
	open := strings.IndexByte(line, '{')
	require.Positive(t, open, "line %d: %q", lineNo, line)
	s := omSample{name: line[:open], labels: map[string]string{}}
	rest := line[open+1:]
	for !strings.HasPrefix(rest, "}") {
		eq := strings.IndexByte(rest, '=')
		require.Positive(t, eq, "line %d", lineNo)
		name := rest[:eq]
		require.True(t, model.LegacyValidation.IsValidLabelName(name), "line %d: label name %q", lineNo, name)
		rest = rest[eq+1:]
		require.True(t, strings.HasPrefix(rest, `"`), "line %d", lineNo)
		var value strings.Builder
		i := 1
		for ; rest[i] != '"'; i++ {
			if rest[i] == '\\' {
				i++
				switch rest[i] {
				case 'n':
					value.WriteByte('\n')
				case '\\', '"':
					value.WriteByte(rest[i])
				default:
					t.Fatalf("line %d: bad escape", lineNo)
				}
				continue
			}
			value.WriteByte(rest[i])
		}
		s.labels[name] = value.String()
		rest = strings.TrimPrefix(rest[i+1:], ",")
	}
	fields := strings.Fields(rest[1:])
	require.Len(t, fields, 2, "line %d: want value and timestamp: %q", lineNo, line)
	var err error
	s.value, err = strconv.ParseFloat(fields[0], 64)
	require.NoError(t, err, "line %d", lineNo)
	ts, err := strconv.ParseFloat(fields[1], 64)
	require.NoError(t, err, "line %d", lineNo)
	require.Less(t, ts, 1e11, "line %d: timestamp %s is not in seconds", lineNo, fields[1])
	s.tsMs = int64(math.Round(ts * 1000))
	return s
}

// seriesID identifies a series the way Prometheus does: a label with an empty value (Istio's
// grpc_response_status on HTTP series) is the same as no label, and the TSDB does not store it.
func seriesID(name string, labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k, v := range labels {
		if v != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(name)
	for _, k := range keys {
		fmt.Fprintf(&b, ",%s=%q", k, labels[k])
	}
	return b.String()
}

func TestWriteOpenMetrics(t *testing.T) {
	start := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	span := meshsim.Span{Start: start, End: start.Add(5 * time.Minute), Step: 15 * time.Second}
	flows := append(meshsim.Demo(), meshsim.Flow{
		Source:      productpage(),
		Destination: meshsim.Workload{Name: "mysql-v1", Namespace: "db", App: "mysql"},
		Port:        3306, Protocol: meshsim.TCP, Rate: 0.5, EjectionsActive: 1,
	}, meshsim.Flow{
		Source:      meshsim.Workload{Name: "curl", Namespace: "outside", NoSidecar: true},
		Destination: reviews(), Rate: 0.3, TimeoutShare: 0.1,
	})
	text, err := meshsim.RenderOpenMetrics(flows, span, meshsim.Options{})
	require.NoError(t, err)
	types, samples := parseOpenMetrics(t, strings.NewReader(text), span)
	require.Equal(t, map[string]string{
		"istio_requests": "counter", meshsim.MetricRequestDuration: "histogram", "istio_tcp_connections_opened": "counter", "istio_tcp_connections_closed": "counter",
		"envoy_cluster_upstream_rq": "counter", meshsim.MetricUpstreamRetry: "unknown", meshsim.MetricEjectionsActive: "gauge",
	}, types)

	// Group per series: timestamps strictly increasing on the span's grid, counters monotonic.
	bySeries := map[string][]omSample{}
	var order []string
	for _, s := range samples {
		id := seriesID(s.name, s.labels)
		if _, ok := bySeries[id]; !ok {
			order = append(order, id)
		}
		bySeries[id] = append(bySeries[id], s)
	}
	wantPoints := int(span.End.Sub(span.Start)/span.Step) + 1
	for _, id := range order {
		points := bySeries[id]
		require.Len(t, points, wantPoints, id)
		for i, p := range points {
			require.Equal(t, span.Start.Add(time.Duration(i)*span.Step).UnixMilli(), p.tsMs, id)
			if i > 0 && p.name != meshsim.MetricEjectionsActive {
				require.GreaterOrEqual(t, p.value, points[i-1].value, "%s decreased", id)
			}
		}
		if points[0].name != meshsim.MetricEjectionsActive {
			require.Zero(t, points[0].value, "%s must start at 0", id)
		}
	}

	t.Run("matches what the exporter serves at the same instants", func(t *testing.T) {
		clock := &fakeClock{now: start}
		exp, err := meshsim.NewExporter(meshsim.Options{Clock: clock.Now}, flows...)
		require.NoError(t, err)
		srv := httptest.NewServer(exp)
		defer srv.Close()
		for _, offset := range []time.Duration{0, 15 * time.Second, 150 * time.Second, 5 * time.Minute} {
			clock.mu.Lock()
			clock.now = start.Add(offset)
			clock.mu.Unlock()
			tsMs := start.Add(offset).UnixMilli()
			rendered := map[string]float64{}
			for _, s := range samples {
				if s.tsMs == tsMs && !strings.HasSuffix(s.name, "_bucket") && !strings.HasSuffix(s.name, "_sum") {
					rendered[seriesID(strings.TrimSuffix(s.name, "_count"), s.labels)] = s.value
				}
			}
			served := map[string]float64{}
			for _, s := range scrape(t, srv) {
				served[seriesID(s.name, s.labels)] = s.value
			}
			require.Equal(t, served, rendered, "at +%s", offset)
		}
	})

	t.Run("promtool backfills it sample for sample", func(t *testing.T) {
		promtool := promtoolBinary(t)
		dir := t.TempDir()
		input := filepath.Join(dir, "input.om")
		require.NoError(t, os.WriteFile(input, []byte(text), 0o644))
		data := filepath.Join(dir, "data")
		runTool(t, promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet", input, data)
		// promtool 2.42's dump insists on a WAL directory even for a backfilled TSDB.
		require.NoError(t, os.MkdirAll(filepath.Join(data, "wal"), 0o755))
		dumped := parseDump(t, runTool(t, promtool, "tsdb", "dump", data))
		want := map[string]float64{}
		for _, s := range samples {
			want[seriesID(s.name, s.labels)+"@"+strconv.FormatInt(s.tsMs, 10)] = s.value
		}
		require.Empty(t, diffSamples(want, dumped), "rendered vs promtool tsdb dump")
		require.Equal(t, len(want), len(dumped), "sample count")
	})

	t.Run("without histograms", func(t *testing.T) {
		text, err := meshsim.RenderOpenMetrics(flows, span, meshsim.Options{OmitHistograms: true})
		require.NoError(t, err)
		types, _ := parseOpenMetrics(t, strings.NewReader(text), span)
		require.NotContains(t, types, meshsim.MetricRequestDuration)
		require.Contains(t, types, "istio_requests")
	})

	t.Run("rejects bad input", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			flows []meshsim.Flow
			span  meshsim.Span
		}{
			{"zero step", flows, meshsim.Span{Start: start, End: start.Add(time.Minute)}},
			{"end before start", flows, meshsim.Span{Start: start, End: start.Add(-time.Minute), Step: time.Second}},
			{"invalid flow", []meshsim.Flow{{Rate: 1}}, span},
		} {
			_, err := meshsim.RenderOpenMetrics(tc.flows, tc.span, meshsim.Options{})
			require.Error(t, err, tc.name)
		}
	})
}

// diffSamples lists (at most 10) differences between two sample maps, readable on failure.
func diffSamples(want, got map[string]float64) []string {
	var diffs []string
	for k, v := range want {
		if g, ok := got[k]; !ok {
			diffs = append(diffs, "missing "+k)
		} else if g != v {
			diffs = append(diffs, fmt.Sprintf("%s: want %v, got %v", k, v, g))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, "unexpected "+k)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 10 {
		diffs = append(diffs[:10], fmt.Sprintf("... and %d more", len(diffs)-10))
	}
	return diffs
}

// promtoolBinary finds promtool like the harness does; CI must run it, so a missing one fails.
func promtoolBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PROMTOOL_BIN"); p != "" {
		return p
	}
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found on PATH and PROMTOOL_BIN is not set: run `make tools` to install it (Debian package prometheus)")
	}
	return p
}

func runTool(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "%s %v: %s", bin, args, stderr.String())
	return string(out)
}

// parseDump reads `promtool tsdb dump` lines: {__name__="x", a="b"} VALUE TIMESTAMP_MS.
func parseDump(t *testing.T, out string) map[string]float64 {
	t.Helper()
	samples := map[string]float64{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		end := strings.LastIndexByte(line, '}')
		require.Positive(t, end, "dump line %q", line)
		labels := map[string]string{}
		rest := line[1:end]
		for rest != "" {
			eq := strings.IndexByte(rest, '=')
			require.Positive(t, eq, "dump line %q", line)
			name := rest[:eq]
			quoted, err := strconv.QuotedPrefix(rest[eq+1:])
			require.NoError(t, err, "dump line %q", line)
			value, err := strconv.Unquote(quoted)
			require.NoError(t, err)
			labels[name] = value
			rest = strings.TrimPrefix(rest[eq+1+len(quoted):], ", ")
		}
		fields := strings.Fields(line[end+1:])
		require.Len(t, fields, 2, "dump line %q", line)
		v, err := strconv.ParseFloat(fields[0], 64)
		require.NoError(t, err)
		name := labels["__name__"]
		delete(labels, "__name__")
		samples[seriesID(name, labels)+"@"+fields[1]] = v
	}
	return samples
}
