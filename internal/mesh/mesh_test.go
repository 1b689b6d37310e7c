package mesh

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/internal/manifest"
)

func TestHostsResolveAsIstioResolvesThem(t *testing.T) {
	tests := []struct {
		name, host, ns string
		fqdn           string
		mesh           bool
		hostNS         string
	}{
		{"a short name is a service in the object's namespace", "reviews", "bookinfo", "reviews.bookinfo.svc.cluster.local", true, "bookinfo"},
		{"a full service name is taken as written", "ratings.prod.svc.cluster.local", "bookinfo", "ratings.prod.svc.cluster.local", true, "prod"},
		{"name.namespace is not expanded and is not a mesh host", "reviews.bookinfo", "x", "reviews.bookinfo", false, ""},
		{"a wildcard over one namespace is in the mesh", "*.prod.svc.cluster.local", "x", "*.prod.svc.cluster.local", true, "prod"},
		{"an external name is outside the mesh", "api.example.com", "x", "api.example.com", false, ""},
		{"the catch-all is no particular host", "*", "x", "*", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.fqdn, FQDN(tt.host, tt.ns, ""))
			require.Equal(t, tt.mesh, IsMeshHost(tt.host, ""))
			ns, ok := HostNamespace(tt.host, tt.ns, "")
			require.Equal(t, tt.hostNS, ns)
			require.Equal(t, tt.hostNS != "", ok)
		})
	}
}

func pa(t *testing.T, yaml string) *manifest.Object {
	t.Helper()
	objs, problems := manifest.Parse("pa.yaml", []byte(yaml))
	require.Empty(t, problems)
	require.Len(t, objs, 1)
	return objs[0]
}

func TestEffectiveModeFollowsIstiosPrecedence(t *testing.T) {
	mesh := pa(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}\n")
	meshUnset := pa(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {}\n")
	nsPermissive := pa(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: legacy}\nspec: {mtls: {mode: PERMISSIVE}}\n")
	nsUnset := pa(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: shop}\nspec: {}\n")
	wlDisable := pa(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: db, namespace: shop}\nspec: {selector: {matchLabels: {app: db}}, mtls: {mode: DISABLE}, portLevelMtls: {\"5432\": {mode: STRICT}, \"9000\": {}}}\n")
	older := pa(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: b-older, namespace: race, creationTimestamp: \"2024-01-01T00:00:00Z\"}\nspec: {mtls: {mode: STRICT}}\n")
	newer := pa(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: a-newer, namespace: race, creationTimestamp: \"2025-01-01T00:00:00Z\"}\nspec: {mtls: {mode: PERMISSIVE}}\n")

	tests := []struct {
		name   string
		objs   []*manifest.Object
		ns     string
		labels map[string]string
		want   Mode
		level  Level
		ports  map[uint32]Mode
	}{
		{"no policy at all is PERMISSIVE", nil, "shop", nil, ModePermissive, LevelDefault, nil},
		{"the mesh-wide policy applies everywhere", []*manifest.Object{mesh}, "shop", nil, ModeStrict, LevelMesh, nil},
		{"mesh-wide UNSET means PERMISSIVE", []*manifest.Object{meshUnset}, "shop", nil, ModePermissive, LevelMesh, nil},
		{"a namespace policy overrides the mesh", []*manifest.Object{mesh, nsPermissive}, "legacy", nil, ModePermissive, LevelNamespace, nil},
		{"a namespace policy with UNSET inherits the mesh's", []*manifest.Object{mesh, nsUnset}, "shop", nil, ModeStrict, LevelMesh, nil},
		{"a workload policy overrides both and UNSET ports inherit", []*manifest.Object{mesh, nsUnset, wlDisable}, "shop", map[string]string{"app": "db"}, ModeDisable, LevelWorkload, map[uint32]Mode{5432: ModeStrict, 9000: ModeDisable}},
		{"a workload policy does not touch other workloads", []*manifest.Object{mesh, wlDisable}, "shop", map[string]string{"app": "web"}, ModeStrict, LevelMesh, nil},
		{"the oldest of two namespace policies wins", []*manifest.Object{newer, older}, "race", nil, ModeStrict, LevelNamespace, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eff := NewResolver("istio-system", tt.objs).Workload(tt.ns, tt.labels)
			require.Equal(t, tt.want, eff.Mode)
			require.Equal(t, tt.level, eff.Level)
			require.Equal(t, tt.ports, eff.Ports)
		})
	}
}
