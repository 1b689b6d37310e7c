package mesh

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Cases of this file come from Istio's own tests at istio/istio commit
// 86c9f01fd735fb01d8192f5bcaf0d424afb7f14c; each table names the test it copies.

// Mirrors ResolveShortnameToFQDN (pilot/pkg/model/config.go), cases from TestResolveShortnameToFQDN
// in pilot/pkg/model/config_test.go. Istio leaves out the namespace of an object that has none;
// meshguard places such an object in kubectl's default namespace first.
func TestOnlyShortNamesExpandAsResolveShortnameToFQDNExpandsThem(t *testing.T) {
	tests := []struct {
		name, host, ns, want string
	}{
		{"the catch-all stays the catch-all", "*", "", "*"},
		{"the catch-all stays the catch-all in a namespace", "*", "default", "*"},
		{"a short name gets namespace and domain", "foo", "default", "foo.default.svc.cluster.local"},
		{"a name with a dot is taken as written", "foo.bar", "default", "foo.bar"},
		{"a short name without namespace lands in default", "foo", "", "foo.default.svc.cluster.local"},
		{"an IPv4 address is not expanded", "42.185.131.210", "default", "42.185.131.210"},
		{"an IPv6 address is not expanded", "2a00:4000::614", "default", "2a00:4000::614"},
		{"name.namespace.svc is not expanded", "reviews.bookinfo.svc", "bookinfo", "reviews.bookinfo.svc"},
		{"a wildcard is taken as written", "*.shop.svc.cluster.local", "x", "*.shop.svc.cluster.local"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, FQDN(tt.host, tt.ns, ""))
		})
	}
}

// Mirrors host.Name.Matches and SubsetOf (pkg/config/host/name.go), cases from TestNameMatches and
// TestNameSubsetOf in pkg/config/host/name_test.go.
func TestHostsMatchAsIstiosHostNameMatches(t *testing.T) {
	tests := []struct {
		name          string
		a, b          string
		match, subset bool
	}{
		{"equal names match", "foo.com", "foo.com", true, true},
		{"different names do not match", "bar.com", "foo.com", false, false},
		{"a domain does not match its subdomain", "bar.foo.com", "foo.com", false, false},
		{"a wildcard matches its subdomains", "foo.com", "*.com", true, true},
		{"a deeper name is under a wildcard", "bar.foo.com", "*.foo.com", true, true},
		{"a wildcard is not a subset of a name", "*.com", "foo.com", true, false},
		{"the catch-all matches anything", "foo.com", "*", true, true},
		{"a wildcarded domain matches a wildcarded subdomain", "*.foo.com", "*.com", true, true},
		{"a shorter wildcard is not a subset of a longer one", "*.com", "*.foo.com", true, false},
		{"a wildcarded subdomain does not match the domain", "foo.com", "*.foo.com", false, false},
		{"a long wildcard does not match a short host", "*.foo.bar.baz", "baz", false, false},
		{"a long name matches a short wildcard", "foo.bar.baz", "*.baz", true, true},
		{"matching is case sensitive", "a.facebook.com", "*.facebook.COM", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.match, Matches(tt.a, tt.b), "Matches")
			require.Equal(t, tt.match, Matches(tt.b, tt.a), "Matches is symmetric")
			require.Equal(t, tt.subset, SubsetOf(tt.a, tt.b), "SubsetOf")
		})
	}
}

// Mirrors MostSpecificHostMatch (pilot/pkg/model/config.go), cases from TestMostSpecificHostMatch
// in pilot/pkg/model/config_test.go.
func TestTheMostSpecificHostWinsAsInMostSpecificHostMatch(t *testing.T) {
	tests := []struct {
		name   string
		in     []string
		needle string
		want   string
	}{
		{"nothing matches in an empty list", nil, "*", ""},
		{"the longer wildcard wins", []string{"*.foo.com", "*.com"}, "bar.foo.com", "*.foo.com"},
		{"a wildcard does not cover its own domain", []string{"*.foo.com", "*.com"}, "foo.com", "*.com"},
		{"a wildcard needle is covered by a shorter wildcard", []string{"foo.com", "*.com"}, "*.foo.com", "*.com"},
		{"an exact name beats a wildcard", []string{"*.foo.com", "foo.com"}, "foo.com", "foo.com"},
		{"an exact wildcard beats others", []string{"*.foo.com", "foo.com"}, "*.foo.com", "*.foo.com"},
		{"a wildcard needle never matches names", []string{"bar.com", "foo.com"}, "*.com", ""},
		{"a wildcard without a dot covers nothing", []string{"bar.com", "*.foo.com"}, "*foo.com", ""},
		{"the closest match wins", []string{"*.bar.com", "foo.bar.com"}, "foo.bar.com", "foo.bar.com"},
		{"names under a wildcard needle are not matches", []string{"foo.bar.foo.com", "bar.foo.bar.com"}, "*.bar.foo.com", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := MostSpecificMatch(tt.needle, tt.in)
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.want != "", ok)
		})
	}
}

// meshguard's own reading of Istio's registry: only full `name.namespace.svc.<domain>` names (and
// wildcards covering them) are Kubernetes services.
func TestMeshHostsAreTheNamesIstiosRegistryKnows(t *testing.T) {
	tests := []struct {
		name, host string
		mesh       bool
		hostNS     string
	}{
		{"a short name is a service in the object's namespace", "reviews", true, "bookinfo"},
		{"a full service name is one", "ratings.prod.svc.cluster.local", true, "prod"},
		{"name.namespace is not expanded and is not a mesh host", "reviews.bookinfo", false, ""},
		{"name.namespace.svc is not a mesh host", "reviews.bookinfo.svc", false, ""},
		{"a wildcard over one namespace is in the mesh", "*.prod.svc.cluster.local", true, "prod"},
		{"*.local covers every service", "*.local", true, ""},
		{"the catch-all covers every service", "*", true, ""},
		{"an external name is outside the mesh", "api.example.com", false, ""},
		{"an external wildcard is outside the mesh", "*.example.com", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.mesh, IsMeshHost(tt.host, ""))
			ns, ok := HostNamespace(tt.host, "bookinfo", "")
			require.Equal(t, tt.hostNS, ns)
			require.Equal(t, tt.hostNS != "", ok)
		})
	}
}

// Mirrors ConvertPolicy (pilot/pkg/networking/core/route/retry/retry.go): no `retries` is Istio's
// default policy, attempts 0 disables retries.
func TestRoutesRetryAsConvertPolicySays(t *testing.T) {
	tests := []struct {
		name  string
		route map[string]any
		want  Retry
	}{
		{"no retries means Istio's default", map[string]any{}, Retry{Attempts: 2, RetryOn: DefaultRetryOn, Default: true}},
		{"attempts 0 disables retries", map[string]any{"retries": map[string]any{"attempts": int64(0)}}, Retry{}},
		{"retries without attempts disable retries", map[string]any{"retries": map[string]any{"retryOn": "5xx"}}, Retry{}},
		{"written retries keep Istio's retryOn when none is given", map[string]any{"retries": map[string]any{"attempts": int64(3), "perTryTimeout": "2s"}},
			Retry{Attempts: 3, PerTryTimeout: "2s", RetryOn: DefaultRetryOn}},
		{"written retryOn is kept", map[string]any{"retries": map[string]any{"attempts": int64(1), "retryOn": "5xx"}}, Retry{Attempts: 1, RetryOn: "5xx"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, RetryPolicy(tt.route))
		})
	}
}
