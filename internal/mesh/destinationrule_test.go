package mesh

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/internal/manifest"
)

// dr writes a DestinationRule: host, exportTo (comma-separated, "" for none) and subset names.
func dr(t *testing.T, ns, name, host, exportTo string, extra string, subsets ...string) *manifest.Object {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: %s, namespace: %s}\nspec:\n  host: %q\n", name, ns, host)
	if exportTo != "" {
		fmt.Fprintf(&b, "  exportTo: [%s]\n", exportTo)
	}
	b.WriteString(extra)
	if len(subsets) > 0 {
		b.WriteString("  subsets:\n")
		for _, s := range subsets {
			fmt.Fprintf(&b, "  - name: %s\n", s)
		}
	}
	objs, problems := manifest.Parse(name+".yaml", []byte(b.String()))
	require.Empty(t, problems)
	require.Len(t, objs, 1)
	return objs[0]
}

func subsetNames(d *DestinationRule) []string {
	if d == nil {
		return nil
	}
	var out []string
	for _, s := range d.Subsets {
		out = append(out, s.Name)
	}
	return out
}

// Mirrors PushContext.destinationRule and setDestinationRules (pilot/pkg/model/push_context.go):
// every object and case of TestSetDestinationRuleWithExportTo in pilot/pkg/model/push_context_test.go
// at istio/istio commit 86c9f01fd735fb01d8192f5bcaf0d424afb7f14c.
func TestTheDestinationRuleForACallerFollowsPushContextDestinationRule(t *testing.T) {
	objs := []*manifest.Object{
		dr(t, "test1", "rule1", "httpbin.org", `".", ns1`, "", "subset1", "subset2"),
		dr(t, "test2", "rule2", "httpbin.org", "test2, ns1, test1, newNS", "", "subset3", "subset4"),
		dr(t, "test3", "rule3", "httpbin.org", `test1, test2, "*"`, "", "subset5", "subset6"),
		dr(t, "test4", "rule4-local", "httpbin.org", "test4", "", "subset15", "subset16"),
		dr(t, "istio-system", "rule4", "httpbin.org", "", "", "subset7", "subset8"),
		dr(t, "istio-system", "rule1", "httpbin.org", `"."`, "", "subset9", "subset10"),
		dr(t, "istio-system", "rule2", "*.org", `"."`, "", "subset11", "subset12"),
		dr(t, "istio-system", "rule3", "*.app.org", `"."`, "", "subset13", "subset14"),
		dr(t, "test5", "rule5", "api.test.com", "istio-system", "", "subset5-0", "subset5-1"),
		dr(t, "test6", "rule6", "api.test.com", "istio-system", "", "subset6-0", "subset6-1"),
	}
	ix := NewIndex("istio-system", "", objs, nil)
	tests := []struct {
		name                string
		caller, svcNS, host string
		want                []string
	}{
		{"the caller's own rule wins", "test1", "test1", "httpbin.org", []string{"subset1", "subset2"}},
		{"the caller's own rule wins over the service's", "test1", "test2", "httpbin.org", []string{"subset1", "subset2"}},
		{"a caller without a rule gets its own namespace's exported one", "test2", "test1", "httpbin.org", []string{"subset3", "subset4"}},
		{"a rule exported to a namespace by name applies there", "newNS", "test2", "httpbin.org", []string{"subset3", "subset4"}},
		{"a rule exported to everyone applies in its namespace", "test3", "test1", "httpbin.org", []string{"subset5", "subset6"}},
		{"a root caller gets the root namespace's private rule", "istio-system", "random", "httpbin.org", []string{"subset9", "subset10"}},
		{"a root caller's private rule wins over the service namespace's", "istio-system", "istio-system", "httpbin.org", []string{"subset9", "subset10"}},
		{"the most specific wildcard of the root namespace wins", "istio-system", "istio-system", "foo.app.org", []string{"subset13", "subset14"}},
		{"the service namespace's rule exported to root applies to a root caller", "istio-system", "test5", "api.test.com", []string{"subset5-0", "subset5-1"}},
		{"another service namespace's rule exported to root applies too", "istio-system", "test6", "api.test.com", []string{"subset6-0", "subset6-1"}},
		{"a rule in neither the caller's nor the service's namespace does not apply", "istio-system", "test7", "api.test.com", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, subsetNames(ix.DestinationRuleFor(tt.host, tt.svcNS, tt.caller)))
		})
	}
}

// Mirrors mergeDestinationRule (pilot/pkg/model/destination_rule.go): the objects of
// TestSetDestinationRuleMerging in pilot/pkg/model/push_context_test.go (same commit), plus
// meshguard's questions about merged policies and Kubernetes hosts.
func TestRulesForOneHostMergeAsMergeDestinationRuleMergesThem(t *testing.T) {
	outlier := "  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 5}}\n"
	budget := "  trafficPolicy: {connectionPool: {http: {maxRetries: 3}}}\n"
	tests := []struct {
		name         string
		objs         []*manifest.Object
		host, caller string
		wantSubsets  []string
		wantSources  []string
		wantPolicy   bool
	}{
		{"rules with the same exportTo merge their subsets", []*manifest.Object{
			dr(t, "test", "rule1", "httpbin.org", "", "", "subset1", "subset2"),
			dr(t, "test", "rule2", "httpbin.org", "", "", "subset3", "subset4"),
		}, "httpbin.org", "test", []string{"subset1", "subset2", "subset3", "subset4"}, []string{"test/rule1", "test/rule2"}, false},
		{"a rule with another exportTo stays apart and, last, is the one a caller it reaches gets", []*manifest.Object{
			dr(t, "test", "rule1", "httpbin.org", "", "", "subset1", "subset2"),
			dr(t, "test", "rule2", "httpbin.org", "", "", "subset3", "subset4"),
			dr(t, "test", "rule3", "httpbin.org", "istio-system", "", "subset5", "subset6"),
		}, "httpbin.org", "istio-system", []string{"subset5", "subset6"}, []string{"test/rule3"}, false},
		{"rules with the same exportTo merge for callers elsewhere too", []*manifest.Object{
			dr(t, "test", "rule1", "httpbin.org", "", "", "subset1", "subset2"),
			dr(t, "test", "rule2", "httpbin.org", "", "", "subset3", "subset4"),
			dr(t, "test", "rule3", "httpbin.org", "istio-system", "", "subset5", "subset6"),
		}, "httpbin.org", "web", []string{"subset1", "subset2", "subset3", "subset4"}, []string{"test/rule1", "test/rule2"}, false},
		{"the first rule's top-level policy wins and a later one only adds subsets", []*manifest.Object{
			dr(t, "shop", "a-outlier", "cart", "", outlier),
			dr(t, "shop", "b-budget", "cart", "", budget, "v1"),
		}, "cart.shop.svc.cluster.local", "shop", []string{"v1"}, []string{"shop/a-outlier", "shop/b-budget"}, true},
		{"a namespace wildcard covers its services", []*manifest.Object{
			dr(t, "shop", "all", "*.shop.svc.cluster.local", "", outlier, "v1"),
		}, "cart.shop.svc.cluster.local", "web", []string{"v1"}, []string{"shop/all"}, true},
		{"a *.local rule in the root namespace covers every service", []*manifest.Object{
			dr(t, "istio-system", "mesh-default", "*.local", "", outlier),
		}, "cart.shop.svc.cluster.local", "shop", nil, []string{"istio-system/mesh-default"}, true},
		{"the service namespace's rule beats the root namespace's", []*manifest.Object{
			dr(t, "istio-system", "mesh-default", "*.local", "", outlier),
			dr(t, "shop", "cart", "cart", "", "", "v1"),
		}, "cart.shop.svc.cluster.local", "web", []string{"v1"}, []string{"shop/cart"}, false},
		{"a private rule of another namespace does not apply", []*manifest.Object{
			dr(t, "shop", "cart", "cart", `"."`, outlier),
		}, "cart.shop.svc.cluster.local", "web", nil, nil, false},
		{"a rule with a workload selector is no caller's catch-all", []*manifest.Object{
			dr(t, "shop", "cart", "cart", "", "  workloadSelector: {matchLabels: {app: web}}\n"+outlier),
		}, "cart.shop.svc.cluster.local", "shop", nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ix := NewIndex("istio-system", "", tt.objs, nil)
			got := ix.DestinationRule(tt.host, tt.caller)
			if !IsMeshHost(tt.host, "") {
				got = ix.DestinationRuleFor(tt.host, "test", tt.caller) // httpbin.org is a service of namespace test
			}
			require.Equal(t, tt.wantSubsets, subsetNames(got))
			if tt.wantSources == nil {
				require.Nil(t, got)
				return
			}
			require.Equal(t, tt.wantSources, got.Names())
			require.Equal(t, tt.wantPolicy, got.Policy("")["outlierDetection"] != nil)
		})
	}
}

// Mirrors MergeTrafficPolicy (pilot/pkg/model/destination_rule.go): a subset's policy overrides
// the top-level one field by field; the default cluster has only the top-level policy.
func TestSubsetPoliciesMergeOverTheTopLevelOnly(t *testing.T) {
	d := dr(t, "shop", "cart", "cart", "", `  trafficPolicy:
    connectionPool: {http: {maxRetries: 3}}
  subsets:
  - name: v1
    trafficPolicy: {outlierDetection: {consecutive5xxErrors: 5}}
  - name: v2
    trafficPolicy: {connectionPool: {tcp: {maxConnections: 10}}}
`)
	got := NewIndex("istio-system", "", []*manifest.Object{d}, nil).DestinationRule("cart.shop.svc.cluster.local", "shop")
	require.NotNil(t, got)
	tests := []struct {
		name, subset     string
		outlier, retries bool
	}{
		{"the default cluster lacks what only a subset sets", "", false, true},
		{"a subset adds its own field and keeps the top-level others", "v1", true, true},
		{"a subset's connectionPool replaces the top-level one whole", "v2", false, false},
		{"an unknown subset falls back to the top level", "v9", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := got.Policy(tt.subset)
			require.Equal(t, tt.outlier, p["outlierDetection"] != nil)
			cp, _ := p["connectionPool"].(map[string]any)
			h, _ := cp["http"].(map[string]any)
			require.Equal(t, tt.retries, h["maxRetries"] != nil)
		})
	}
}

// With must answer what a full re-index answers.
func TestWithAnswersLikeAFullIndex(t *testing.T) {
	base := []*manifest.Object{
		dr(t, "shop", "cart", "cart", "", "", "v1"),
		dr(t, "istio-system", "mesh-default", "*.local", "", "", "m"),
	}
	changed := dr(t, "shop", "cart", "payments", "", "", "v2")
	added := dr(t, "shop", "extra", "cart", "", "", "v3")
	tests := []struct {
		name   string
		obj    *manifest.Object
		remove bool
		want   []*manifest.Object
	}{
		{"a rule moved to another host", changed, false, []*manifest.Object{changed, base[1]}},
		{"a rule added", added, false, append([]*manifest.Object{added}, base...)},
		{"a rule removed", base[0], true, base[1:]},
	}
	ix := NewIndex("istio-system", "", base, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := NewIndex("istio-system", "", tt.want, nil)
			got := ix.With(tt.obj, tt.remove)
			for _, host := range []string{"cart.shop.svc.cluster.local", "payments.shop.svc.cluster.local"} {
				require.Equal(t, subsetNames(want.DestinationRule(host, "shop")), subsetNames(got.DestinationRule(host, "shop")), host)
			}
			require.Equal(t, []string{"v1"}, subsetNames(ix.DestinationRule("cart.shop.svc.cluster.local", "shop")), "the base never changes")
		})
	}
}
