package mesh

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/internal/manifest"
)

// meshguard's reading of how a sidecar picks the VirtualService for a host: only those bound to
// the mesh gateway and exported to the caller (Istio's exportTo, as in TestVirtualServiceWithExportTo
// of pilot/pkg/model/push_context_test.go at istio/istio 86c9f01fd735fb01d8192f5bcaf0d424afb7f14c),
// the most specific host (MostSpecificHostMatch), then the caller's namespace first.
func TestTheVirtualServiceForACallerIsTheOneItsSidecarSees(t *testing.T) {
	const objs = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop-wide, namespace: shop}
spec: {hosts: ["*.shop.svc.cluster.local"], http: [{route: [{destination: {host: cart}}]}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cart, namespace: shop}
spec: {hosts: [cart], http: [{route: [{destination: {host: cart}}]}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cart-for-web, namespace: web}
spec: {hosts: [cart.shop.svc.cluster.local], exportTo: ["."], http: [{route: [{destination: {host: cart.shop.svc.cluster.local}}]}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ingress-only, namespace: shop}
spec: {hosts: [orders], gateways: [istio-system/ingress], http: [{route: [{destination: {host: orders}}]}]}
`
	parsed, problems := manifest.Parse("vs.yaml", []byte(objs))
	require.Empty(t, problems)
	ix := NewIndex("istio-system", "", parsed, nil)
	tests := []struct {
		name, host, caller, want string
	}{
		{"the exact host beats the namespace wildcard", "cart.shop.svc.cluster.local", "shop", "cart"},
		{"the caller's own VirtualService comes first", "cart.shop.svc.cluster.local", "web", "cart-for-web"},
		{"a VirtualService exported only to its namespace is not seen elsewhere", "cart.shop.svc.cluster.local", "other", "cart"},
		{"the namespace wildcard covers other services", "payments.shop.svc.cluster.local", "other", "shop-wide"},
		{"a VirtualService bound only to a gateway does not route sidecars", "orders.shop.svc.cluster.local", "other", "shop-wide"},
		{"a host nothing covers has none", "ratings.bookinfo.svc.cluster.local", "other", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if vs := ix.VirtualService(tt.host, tt.caller); vs != nil {
				got = vs.Name
			}
			require.Equal(t, tt.want, got)
		})
	}
}
