package checks

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/internal/manifest"
)

// The graph resolves an edge's configuration through internal/mesh, as the lint rules do:
// wildcard and root-namespace DestinationRules count, the caller's namespace comes first.
func TestAnEdgeGetsTheRulesIstioApplies(t *testing.T) {
	const objs = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: mesh-default, namespace: istio-system}
spec:
  host: "*.local"
  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 7}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: shop-wide, namespace: shop}
spec:
  host: "*.shop.svc.cluster.local"
  trafficPolicy: {connectionPool: {http: {maxRetries: 5}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cart-for-web, namespace: web}
spec:
  host: cart.shop.svc.cluster.local
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: all-shop, namespace: shop}
spec:
  hosts: ["*.shop.svc.cluster.local"]
  http: [{route: [{destination: {host: cart}}], retries: {attempts: 1}}]
`
	parsed, problems := manifest.Parse("objs.yaml", []byte(objs))
	require.Empty(t, problems)
	join := newConfigJoin(NewMeshConfig("istio-system", parsed, nil), "cluster.local", "istio-system")
	tests := []struct {
		name, src, host string
		wantDR, wantVS  string
		wantMaxRetries  int64
	}{
		{"a namespace wildcard rule covers its services", "shop", "cart.shop.svc.cluster.local", "shop/shop-wide", "shop/all-shop", 5},
		{"the caller's own rule wins", "web", "cart.shop.svc.cluster.local", "web/cart-for-web", "shop/all-shop", 0},
		{"the root namespace's *.local covers other services", "shop", "ratings.bookinfo.svc.cluster.local", "istio-system/mesh-default", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ec := join.edgeConfig(tt.src, tt.host, "http")
			require.Equal(t, tt.wantDR, ec.DestinationRule)
			require.Equal(t, tt.wantVS, ec.VirtualService)
			require.Equal(t, tt.wantMaxRetries, ec.MaxRetries)
			if tt.wantVS == "" {
				require.True(t, ec.Routes[0].Retries.Default, "no VirtualService: Istio's default retries")
			}
		})
	}
}
