package checks

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSignals(t *testing.T) {
	s := testSettings()
	s.ClusterLabels.Destination = "dst_cluster_id"
	signals := Signals(s)
	t.Run("a cycle runs at most seven queries, whatever the mesh", func(t *testing.T) {
		require.LessOrEqual(t, len(signals), 7)
	})
	t.Run("every query that raises alerts aggregates by the configured destination cluster label", func(t *testing.T) {
		for _, sig := range signals {
			if sig.Name == SignalEnvoyStats {
				continue // Envoy's stats carry no cluster label: the destination is only in cluster_name
			}
			require.Contains(t, sig.Query, "dst_cluster_id", sig.Name)
		}
	})
	t.Run("request outcomes are read from client sidecars and waypoints", func(t *testing.T) {
		for _, sig := range signals {
			if sig.Name == SignalRequestOutcomes {
				require.Equal(t, 2, strings.Count(sig.Query, `reporter=~"source|waypoint"`))
			}
		}
	})
	t.Run("connections ztunnel denied are taken out of plaintext TCP", func(t *testing.T) {
		for _, sig := range signals {
			if sig.Name == SignalPlaintextTCP {
				require.Contains(t, sig.Query, `-rate(istio_tcp_connections_closed_total{reporter="destination",connection_security_policy!="mutual_tls",response_flags="DENY"}`)
			}
		}
	})
}

func TestClusterLabelsAreValidated(t *testing.T) {
	for _, tc := range []struct {
		name, label string
		ok          bool
	}{
		{name: "Istio's own name is accepted", label: "destination_cluster", ok: true},
		{name: "a name PromQL cannot write unquoted is refused", label: "cluster-id"},
		{name: "an empty name is refused", label: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testSettings()
			s.ClusterLabels.Destination = tc.label
			if tc.ok {
				require.NoError(t, s.Validate())
				return
			}
			require.ErrorContains(t, s.Validate(), "cluster label")
		})
	}
}
