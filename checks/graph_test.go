package checks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

const graphConfig = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: bookinfo}
spec:
  hosts: [ratings]
  http:
  - name: primary
    timeout: 10s
    retries: {attempts: 3, perTryTimeout: 2s, retryOn: 5xx}
    route: [{destination: {host: ratings}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings-for-legacy, namespace: legacy}
spec:
  hosts: [ratings.bookinfo.svc.cluster.local]
  http:
  - timeout: 1s
    route: [{destination: {host: ratings.bookinfo.svc.cluster.local}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ingress-only, namespace: bookinfo}
spec:
  hosts: [details]
  gateways: [bookinfo-gateway]
  http:
  - timeout: 3s
    route: [{destination: {host: details}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: bookinfo}
spec:
  host: ratings
  trafficPolicy:
    connectionPool: {http: {maxRetries: 10}}
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}
  subsets:
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      outlierDetection: {consecutive5xxErrors: 2}
`

func edgeSample(v float64, reporter, srcNS, srcWL, host string, extra ...string) *model.Sample {
	name, ns := serviceOf(host, "cluster.local")
	labels := append([]string{"reporter", reporter, "source_workload_namespace", srcNS, "source_workload", srcWL,
		"destination_service", host, "destination_service_name", name, "destination_service_namespace", ns}, extra...)
	return sample(v, labels...)
}

func TestBuildGraph(t *testing.T) {
	const ratings = "ratings.bookinfo.svc.cluster.local"
	const details = "details.bookinfo.svc.cluster.local"
	const db = "db.data.svc.cluster.local"
	s := testSettings()
	q := newFakeQuerier(s, map[string]model.Vector{
		graphRequests: {
			edgeSample(10, "source", "bookinfo", "reviews-v2", ratings), edgeSample(9.5, "destination", "bookinfo", "reviews-v2", ratings),
			edgeSample(2, "destination", "unknown", "unknown", details),
			edgeSample(1, "source", "legacy", "batch", ratings),
			edgeSample(0, "source", "bookinfo", "idle", details),
		},
		graphErrors: {edgeSample(0.5, "source", "bookinfo", "reviews-v2", ratings, "response_code", "503")},
		graphP99:    {edgeSample(42, "source", "bookinfo", "reviews-v2", ratings), edgeSample(7, "destination", "unknown", "unknown", details)},
		graphSecurity: {
			edgeSample(9.5, "destination", "bookinfo", "reviews-v2", ratings, "connection_security_policy", "mutual_tls"),
			edgeSample(2, "destination", "unknown", "unknown", details, "connection_security_policy", "none"),
		},
		graphTCP: {
			edgeSample(0.2, "source", "bookinfo", "ratings-v1", db, "connection_security_policy", "unknown"),
			edgeSample(0.2, "destination", "bookinfo", "ratings-v1", db, "connection_security_policy", "mutual_tls"),
		},
	})
	g, err := BuildGraph(context.Background(), GraphOptions{Querier: q, Config: meshFrom(t, graphConfig), Window: time.Minute,
		At: t0, MeshDomain: "cluster.local", RootNamespace: "istio-system"})
	require.NoError(t, err)
	require.EqualValues(t, len(GraphSignals(time.Minute)), q.calls.Load(), "one query per figure")
	byEdge := map[string]Edge{}
	for _, e := range g.Edges {
		byEdge[e.Source+" -> "+e.Destination] = e
	}
	require.Len(t, byEdge, 4, "the idle edge has no traffic and is left out")

	tests := []struct {
		name  string
		edge  string
		check func(t *testing.T, e Edge)
	}{
		{name: "an edge takes the client's figures and the destination's mTLS verdict, and its VirtualService and DestinationRule",
			edge: "workload:bookinfo/reviews-v2 -> service:" + ratings, check: func(t *testing.T, e Edge) {
				require.Equal(t, "source", e.Reporter)
				require.Equal(t, 10.0, e.RequestRate)
				require.InDelta(t, 0.05, e.ErrorRate, 1e-9)
				require.Equal(t, 42.0, *e.P99Ms)
				require.Equal(t, "mutual_tls", e.MTLS)
				require.Equal(t, "bookinfo/ratings", e.Config.VirtualService)
				require.Equal(t, []RoutePolicy{{Route: "primary", Timeout: "10s",
					Retries: &RetryPolicy{Attempts: 3, PerTryTimeout: "2s", RetryOn: "5xx"}}}, e.Config.Routes)
				require.Equal(t, "bookinfo/ratings", e.Config.DestinationRule)
				require.Equal(t, int64(10), e.Config.MaxRetries)
				require.Equal(t, []OutlierPolicy{
					{Consecutive5xxErrors: 5, Interval: "10s", BaseEjectionTime: "30s", MaxEjectionPercent: 50},
					{Subset: "v2", Consecutive5xxErrors: 2}}, e.Config.OutlierDetection)
			}},
		{name: "a VirtualService in the client's namespace takes precedence",
			edge: "workload:legacy/batch -> service:" + ratings, check: func(t *testing.T, e Edge) {
				require.Equal(t, "legacy/ratings-for-legacy", e.Config.VirtualService)
				require.Equal(t, "1s", e.Config.Routes[0].Timeout)
				require.True(t, e.Config.Routes[0].Retries.Default, "a route without retries gets Istio's default")
				require.Equal(t, "unknown", e.MTLS, "no destination proxy reported this edge")
			}},
		{name: "a client without a sidecar is seen by the destination, in plaintext; a gateway-only VirtualService does not apply",
			edge: "workload:unknown -> service:" + details, check: func(t *testing.T, e Edge) {
				require.Equal(t, "destination", e.Reporter)
				require.Equal(t, "plaintext", e.MTLS)
				require.Equal(t, 7.0, *e.P99Ms)
				require.Empty(t, e.Config.VirtualService)
				require.Equal(t, int64(2), e.Config.Routes[0].Retries.Attempts)
				require.True(t, e.Config.Routes[0].Retries.Default)
			}},
		{name: "a TCP edge has connections, not requests",
			edge: "workload:bookinfo/ratings-v1 -> service:" + db, check: func(t *testing.T, e Edge) {
				require.Equal(t, "tcp", e.Protocol)
				require.Equal(t, 0.2, e.ConnectionRate)
				require.Equal(t, "mutual_tls", e.MTLS)
				require.Empty(t, e.Config.Routes)
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, ok := byEdge[tc.edge]
			require.True(t, ok, "no edge %s in %v", tc.edge, byEdge)
			tc.check(t, e)
		})
	}

	t.Run("json round-trips", func(t *testing.T) {
		var b bytes.Buffer
		require.NoError(t, WriteGraph(&b, g, "json"))
		var back Graph
		require.NoError(t, json.Unmarshal(b.Bytes(), &back))
		require.Equal(t, len(g.Edges), len(back.Edges))
		require.Len(t, back.Queries, len(GraphSignals(time.Minute)))
	})
	t.Run("dot is a Graphviz digraph with plaintext in red", func(t *testing.T) {
		var b bytes.Buffer
		require.NoError(t, WriteGraph(&b, g, "dot"))
		out := b.String()
		require.True(t, strings.Contains(out, "digraph mesh {") && strings.HasSuffix(out, "}\n"))
		require.Contains(t, out, `"workload:bookinfo/reviews-v2" -> "service:ratings.bookinfo.svc.cluster.local"`)
		require.Contains(t, out, `primary: retries 3×2s, timeout 10s`)
		require.Contains(t, out, `outlier [v2]: 2×5xx`)
		require.Regexp(t, `"workload:unknown" -> "service:details[^\n]*color="red"`, out)
		require.Equal(t, strings.Count(out, "{"), strings.Count(out, "}"))
	})
	t.Run("an unknown format is an error", func(t *testing.T) {
		require.ErrorContains(t, WriteGraph(&bytes.Buffer{}, g, "svg"), `"svg"`)
	})
}

func TestBuildGraphFailsOnAFailedQuery(t *testing.T) {
	q := newFakeQuerier(testSettings(), nil)
	q.fail(errors.New("connection refused"))
	_, err := BuildGraph(context.Background(), GraphOptions{Querier: q, Window: time.Minute, At: t0})
	require.ErrorContains(t, err, "connection refused")
}
