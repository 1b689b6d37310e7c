package meshsim_test

import (
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/test/meshsim"
)

// shapeFlows are meshsim's scenarios of each fixture: the same workloads doing what the fixture's
// proxies recorded.
func shapeFlows() map[string][]meshsim.Flow {
	wl := func(ns, name, app string) meshsim.Workload {
		return meshsim.Workload{Name: name, Namespace: ns, App: app}
	}
	productpage := wl("default", "productpage-v1", "productpage")
	ratings := wl("default", "ratings-v1", "ratings")
	legacy := meshsim.Workload{Name: "legacy-client", Namespace: "legacy", App: "legacy-client", Version: "latest", NoSidecar: true}
	orders := wl("ambient", "orders-v1", "orders")
	orders.Ambient = true
	clientPP, serverRatings := productpage, ratings
	clientPP.Cluster, serverRatings.Cluster, serverRatings.Ambient = "client-cluster", "server-cluster", true
	pp := productpage
	pp.Pod = "productpage-v1-7d9b6c8f5d-abcde"
	return map[string][]meshsim.Flow{
		"sidecar": {{Source: productpage, Destination: ratings, Rate: 1},
			{Source: productpage, Destination: wl("default", "mysql-v1", "mysql"), Protocol: meshsim.TCP, Rate: 1}},
		"ztunnel":  {{Source: legacy, Destination: orders, Plaintext: true, Denied: true, Protocol: meshsim.TCP, Rate: 1}},
		"waypoint": {{Source: clientPP, Destination: serverRatings, Waypoint: true, URXShare: 0.5, Rate: 1}},
		"grpc":     {{Source: wl("shop", "checkout-v1", "checkout"), Destination: wl("shop", "payments-v1", "payments"), Protocol: meshsim.GRPC, ErrorShare: 0.5, Rate: 1}},
		"passthrough": {{Source: wl("shop", "web", "web"), Destination: meshsim.Workload{Name: "external", Namespace: "external", NoSidecar: true},
			ExternalHost: "api.partner.example", TimeoutShare: 0.5, Rate: 1}},
		"envoy": {{Source: pp, Destination: ratings, RetryShare: 0.1, EjectionsActive: 1, Rate: 1},
			{Source: pp, Destination: wl("default", "reviews-v1", "reviews"), ClusterStatName: "reviews.default_9080", Rate: 1}},
	}
}

// labelSet writes a series' labels as one comparable string.
func labelSet(m *dto.Metric) string {
	var parts []string
	for _, l := range m.GetLabel() {
		parts = append(parts, l.GetName()+"="+l.GetValue())
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// TestShapes holds meshsim to real Istio expositions: every series of every fixture is a series
// meshsim writes for the same scenario, label for label.
func TestShapes(t *testing.T) {
	shapes, err := meshsim.Shapes()
	require.NoError(t, err)
	flows := shapeFlows()
	require.Len(t, shapes, len(flows), "a scenario per fixture")
	for _, s := range shapes {
		t.Run(s.Name+" names its source and meshsim writes its series", func(t *testing.T) {
			require.Contains(t, s.Source, "Source: ", "each fixture names where its shape comes from")
			require.NotEmpty(t, s.Families)
			e, err := meshsim.NewExporter(meshsim.Options{Clock: func() time.Time { return time.Unix(0, 0) }, OmitHistograms: true}, flows[s.Name]...)
			require.NoError(t, err)
			gathered, err := e.Registry().Gather()
			require.NoError(t, err)
			written := map[string]map[string]bool{}
			for _, f := range gathered {
				written[f.GetName()] = map[string]bool{}
				for _, m := range f.GetMetric() {
					written[f.GetName()][labelSet(m)] = true
				}
			}
			for name, f := range s.Families {
				for _, m := range f.GetMetric() {
					require.True(t, written[name][labelSet(m)], "%s{%s} is not among meshsim's series: %v", name, labelSet(m), written[name])
				}
			}
		})
	}
	t.Run("sidecars, ztunnel and waypoints write the same label names", func(t *testing.T) {
		sorted := func(l []string) []string { l = append([]string(nil), l...); sort.Strings(l); return l }
		for _, s := range shapes {
			if l := s.LabelNames(meshsim.MetricRequests); l != nil {
				require.Equal(t, sorted(meshsim.RequestLabelNames()), sorted(l), s.Name)
			}
			for _, metric := range []string{meshsim.MetricTCPOpened, meshsim.MetricTCPClosed} {
				if l := s.LabelNames(metric); l != nil {
					require.Equal(t, sorted(meshsim.TCPLabelNames()), sorted(l), s.Name)
				}
			}
		}
	})
}
