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
