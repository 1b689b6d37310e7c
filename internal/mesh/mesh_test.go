package mesh

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/internal/manifest"
)

func pa(t *testing.T, yaml string) *manifest.Object {
	t.Helper()
	objs, problems := manifest.Parse("pa.yaml", []byte(yaml))
	require.Empty(t, problems)
	require.Len(t, objs, 1)
	return objs[0]
}

// Mirrors ComposePeerAuthentication (pilot/pkg/security/authn/policy_applier.go); the cases follow
// TestComposePeerAuthentication in policy_applier_test.go at istio/istio commit
// 86c9f01fd735fb01d8192f5bcaf0d424afb7f14c ("no config", "mesh only", "mesh vs namespace", "ignore
// non-emptypb selector in root namespace", "workload vs namespace config", "multiple namespace
// policy", "inheritance: ...", "port level").
func TestEffectiveModeFollowsIstiosPrecedence(t *testing.T) {
	mesh := pa(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}\n")
	meshUnset := pa(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {}\n")
	nsPermissive := pa(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: legacy}\nspec: {mtls: {mode: PERMISSIVE}}\n")
	nsUnset := pa(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: shop}\nspec: {}\n")
	wlDisable := pa(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: db, namespace: shop}\nspec: {selector: {matchLabels: {app: db}}, mtls: {mode: DISABLE}, portLevelMtls: {\"5432\": {mode: STRICT}, \"9000\": {}}}\n")
	older := pa(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: b-older, namespace: race, creationTimestamp: \"2024-01-01T00:00:00Z\"}\nspec: {mtls: {mode: STRICT}}\n")
	rootSelector := pa(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: root-db, namespace: istio-system}\nspec: {selector: {matchLabels: {app: db}}, mtls: {mode: DISABLE}}\n")
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
		{"a policy with a selector in the root namespace is ignored", []*manifest.Object{mesh, rootSelector}, "shop", map[string]string{"app": "db"}, ModeStrict, LevelMesh, nil},
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

func TestThePortDecidesWhereTheWorkloadPolicySaysSo(t *testing.T) {
	mesh := pa(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}\n")
	wl := pa(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: db, namespace: shop}\nspec: {selector: {matchLabels: {app: db}}, portLevelMtls: {\"5432\": {mode: DISABLE}, \"9000\": {}}}\n")
	ix := NewIndex("istio-system", "", []*manifest.Object{mesh, wl}, nil)
	tests := []struct {
		name  string
		port  uint32
		want  Mode
		level Level
	}{
		{"the workload as a whole inherits the mesh", 0, ModeStrict, LevelWorkload},
		{"a port-level DISABLE opens that port", 5432, ModeDisable, LevelPort},
		{"an UNSET port inherits the workload's mode", 9000, ModeStrict, LevelPort},
		{"another port has the workload's mode", 8080, ModeStrict, LevelWorkload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := ix.MTLS("shop", map[string]string{"app": "db", "version": "v1"}, tt.port)
			require.Equal(t, tt.want, e.Mode)
			require.Equal(t, tt.level, e.Level)
		})
	}
}

// meshguard's question on top of ComposePeerAuthentication: what the workloads behind a host
// accept when only some of their labels are known.
func TestTheWorkloadsBehindAHostAreFoundByServiceOrAppLabel(t *testing.T) {
	mesh := pa(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}\n")
	nsStrict := pa(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: shop}\nspec: {mtls: {mode: STRICT}}\n")
	dbDisable := pa(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: db, namespace: shop}\nspec: {selector: {matchLabels: {app: db}}, mtls: {mode: DISABLE}}\n")
	cartV1 := pa(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: cart-v1, namespace: shop}\nspec: {selector: {matchLabels: {app: cart, version: v1}}, mtls: {mode: PERMISSIVE}}\n")
	legacy := pa(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: legacy}\nspec: {mtls: {mode: PERMISSIVE}}\n")
	objs := []*manifest.Object{mesh, nsStrict, dbDisable, cartV1, legacy}
	svc := Service{Namespace: "shop", Name: "database", Selector: map[string]string{"app": "db"}, TargetPorts: map[uint32]uint32{80: 5432}}
	tests := []struct {
		name, host, ns string
		strict         bool
		workloads      string
	}{
		{"a workload DISABLE under a STRICT namespace is not STRICT", "db", "shop", false, "pods labelled app=db (Istio's convention; no Service shop/db is known)"},
		{"a Service's selector finds the workload policy", "database", "shop", false, "pods selected by Service shop/database"},
		{"other workloads keep the namespace's STRICT", "web", "shop", true, "pods labelled app=web (Istio's convention; no Service shop/web is known)"},
		{"a policy that may select some pods makes STRICT unsure", "cart", "shop", false, "pods labelled app=cart (Istio's convention; no Service shop/cart is known)"},
		{"a namespace wildcard reaches workloads without their own policy", "*.shop.svc.cluster.local", "x", true, "workloads of namespace shop that no workload policy selects"},
		{"*.local reaches namespaces without a policy, STRICT by the mesh", "*.local", "x", true, "workloads of every namespace without a PeerAuthentication of its own"},
		{"a PERMISSIVE namespace is not STRICT", "old.legacy.svc.cluster.local", "x", false, "pods labelled app=old (Istio's convention; no Service legacy/old is known)"},
	}
	ix := NewIndex("istio-system", "", objs, []Service{svc})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, ok := ix.HostMTLS(tt.host, tt.ns, 0)
			require.True(t, ok)
			require.Equal(t, tt.strict, h.Strict())
			require.Equal(t, tt.workloads, h.Workloads)
		})
	}
	_, ok := ix.HostMTLS("api.example.com", "shop", 0)
	require.False(t, ok, "a host outside the mesh has no workloads")
}

// A DestinationRule's port is the Service's; a PeerAuthentication's portLevelMtls names the pods'
// port, which the Service's targetPort gives (Kubernetes: a missing targetPort is the port itself,
// a named one is resolved per pod).
func TestAServicesTargetPortDecidesThePortLevelMode(t *testing.T) {
	mesh := pa(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}\n")
	apiPorts := pa(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: api, namespace: shop}\nspec: {selector: {matchLabels: {app: api-server}}, mtls: {mode: STRICT}, portLevelMtls: {\"8080\": {mode: PERMISSIVE}}}\n")
	api := ServiceOf(pa(t, `apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api-server}
  ports:
  - {port: 80, targetPort: 8080}
  - {port: 443, targetPort: 8443}
  - {port: 9000, targetPort: metrics}
  - {port: 8080}
  - {port: 81, targetPort: "8080"}
`))
	manual := ServiceOf(pa(t, "apiVersion: v1\nkind: Service\nmetadata: {name: manual, namespace: shop}\nspec: {ports: [{port: 8080}]}\n"))
	// The vault's pods accept plaintext but on the one port its Service targets.
	vaultPorts := pa(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: vault, namespace: shop}\nspec: {selector: {matchLabels: {app: vault}}, mtls: {mode: DISABLE}, portLevelMtls: {\"8200\": {mode: STRICT}}}\n")
	vault := ServiceOf(pa(t, "apiVersion: v1\nkind: Service\nmetadata: {name: vault, namespace: shop}\nspec: {selector: {app: vault}, ports: [{port: 443, targetPort: 8200}]}\n"))
	ix := NewIndex("istio-system", "", []*manifest.Object{mesh, apiPorts, vaultPorts}, []Service{api, manual, vault})
	tests := []struct {
		name, host string
		port       uint32
		strict     bool
		workloads  string
	}{
		{"a service port whose targetPort is PERMISSIVE accepts plaintext", "api", 80, false, "pods selected by Service shop/api"},
		{"a targetPort given as digits is that number", "api", 81, false, "pods selected by Service shop/api"},
		{"another targetPort keeps the workload's STRICT", "api", 443, true, "pods selected by Service shop/api"},
		{"a named targetPort may be the PERMISSIVE port", "api", 9000, false, "pods selected by Service shop/api"},
		{"a port without targetPort targets itself", "api", 8080, false, "pods selected by Service shop/api"},
		{"the host as a whole is every port of its Service, one of which accepts plaintext", "api", 0, false, "pods selected by Service shop/api"},
		{"the host as a whole is STRICT when every port its Service targets is", "vault", 0, true, "pods selected by Service shop/vault"},
		{"without the Service, the app label convention finds no workload policy", "api-server", 80, true, "pods labelled app=api-server (Istio's convention; no Service shop/api-server is known)"},
		{"a Service without selector may front any workload of its namespace", "manual", 8080, false, "endpoints of Service shop/manual (no selector)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, ok := ix.HostMTLS(tt.host, "shop", tt.port)
			require.True(t, ok)
			require.Equal(t, tt.strict, h.Strict(), "%+v", h.Modes)
			require.Equal(t, tt.workloads, h.Workloads)
		})
	}
}

// The workloads an AuthorizationPolicy selects, judged as ComposePeerAuthentication judges them.
func TestThePolicySelectedWorkloadsAcceptWhatTheirPeerAuthenticationSays(t *testing.T) {
	mesh := pa(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}\n")
	legacy := pa(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: legacy}\nspec: {mtls: {mode: PERMISSIVE}}\n")
	strictAPI := pa(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: api, namespace: legacy}\nspec: {selector: {matchLabels: {app: api}}, mtls: {mode: STRICT}}\n")
	ix := NewIndex("istio-system", "", []*manifest.Object{mesh, legacy, strictAPI}, nil)
	tests := []struct {
		name     string
		ns       string
		selector map[string]string
		strict   bool
	}{
		{"a namespace-wide policy of a PERMISSIVE namespace", "legacy", nil, false},
		{"a selector that a STRICT workload policy covers", "legacy", map[string]string{"app": "api"}, true},
		{"a selector no workload policy covers", "legacy", map[string]string{"app": "web"}, false},
		{"a namespace without its own policy inherits the mesh", "shop", nil, true},
		{"the root namespace reaches namespaces without a policy", "istio-system", map[string]string{"app": "web"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.strict, ix.SelectedMTLS(tt.ns, tt.selector).Strict())
		})
	}
}
