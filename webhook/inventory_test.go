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
