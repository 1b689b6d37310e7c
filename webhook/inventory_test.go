package webhook

import (
	"errors"
	"testing"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/internal/manifest"
)

func TestCacheHandsOutOneIndexUntilSomethingChanges(t *testing.T) {
	c := NewCache(logr.Discard(), nil)
	_, err := c.Inventory("istio-system", "cluster.local")
	require.True(t, errors.Is(err, ErrNotSynced), "an unsynced cache has no inventory: %v", err)

	require.NoError(t, c.Put(mustDecode(t, meshStrict)))
	require.NoError(t, c.Put(mustDecode(t, cartDR)))
	c.MarkSynced()

	first, err := c.Inventory("istio-system", "cluster.local")
	require.NoError(t, err)
	require.True(t, first.Complete(), "the cluster is a complete inventory")
	require.Len(t, first.List(manifest.KindDestinationRule, "shop"), 1)
	again, err := c.Inventory("istio-system", "cluster.local")
	require.NoError(t, err)
	require.Same(t, first, again, "no change, no rebuild")

	other, err := c.Inventory("mesh-root", "cluster.local")
	require.NoError(t, err)
	require.NotSame(t, first, other, "another root namespace needs another index")
	require.Nil(t, other.Mesh().Resolver().MeshWide())

	require.NoError(t, c.Put(mustDecode(t, goodVS)))
	after, err := c.Inventory("istio-system", "cluster.local")
	require.NoError(t, err)
	require.NotSame(t, first, after)
	require.Len(t, after.List(manifest.KindVirtualService, ""), 1)
	require.Empty(t, first.List(manifest.KindVirtualService, ""), "a handed-out index never changes")

	c.Delete(manifest.KindDestinationRule, "shop", "cart")
	gone, err := c.Inventory("istio-system", "cluster.local")
	require.NoError(t, err)
	require.Nil(t, gone.Mesh().DestinationRule("cart.shop.svc.cluster.local", "shop"))
}

func TestCacheKeepsObjectsThatFailTheStrictCheck(t *testing.T) {
	c := NewCache(logr.Discard(), nil)
	c.MarkSynced()
	// Stored before meshguard guarded the cluster: it still configures the mesh.
	require.NoError(t, c.Put(mustDecode(t, typoVS)))
	inv, err := c.Inventory("istio-system", "cluster.local")
	require.NoError(t, err)
	require.Len(t, inv.List(manifest.KindVirtualService, "shop"), 1)

	require.Error(t, c.Put(map[string]any{"apiVersion": "v1", "kind": "ConfigMap"}))
}

func TestDecodeJSONReadsNumbersAsTheLoaderDoes(t *testing.T) {
	raw, err := DecodeJSON([]byte(`{"a": 3, "b": 3.0, "c": 2.5, "d": [1e3, 12345678901234567890], "e": {"f": -0}}`))
	require.NoError(t, err)
	require.Equal(t, map[string]any{
		"a": int64(3), "b": int64(3), "c": 2.5,
		"d": []any{int64(1000), 12345678901234567890.0},
		"e": map[string]any{"f": int64(0)},
	}, raw)

	for _, bad := range []string{`[]`, `"x"`, `null`, `{"a":1} {}`, `{"a":`, ``} {
		_, err := DecodeJSON([]byte(bad))
		require.Error(t, err, bad)
	}
}

// The informer hands a Service over as the API server serves it, status and all: the cache
// keeps it as context for the checked kinds.
func TestCacheServicesDecideTheWorkloadsBehindAHost(t *testing.T) {
	const cartService = `apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop, uid: 5a1e, resourceVersion: "42"}
spec:
  selector: {app: cart-v2}
  clusterIP: 10.0.0.7
  clusterIPs: [10.0.0.7]
  ports: [{name: http, port: 80, protocol: TCP, targetPort: 8080}]
status: {loadBalancer: {}}
`
	c := NewCache(logr.Discard(), nil)
	c.MarkSynced()
	require.NoError(t, c.Put(mustDecode(t, meshStrict)))
	workloads := func() string {
		t.Helper()
		inv, err := c.Inventory("istio-system", "cluster.local")
		require.NoError(t, err)
		h, ok := inv.Mesh().HostMTLS("cart", "shop", 80)
		require.True(t, ok)
		return h.Workloads
	}
	require.Equal(t, "pods labelled app=cart (Istio's convention; no Service shop/cart is known)", workloads())

	require.NoError(t, c.Put(mustDecode(t, cartService)))
	require.Equal(t, "pods selected by Service shop/cart", workloads())

	c.Delete(manifest.KindService, "shop", "cart")
	require.Equal(t, "pods labelled app=cart (Istio's convention; no Service shop/cart is known)", workloads())
}
