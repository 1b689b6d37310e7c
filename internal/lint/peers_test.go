package lint_test

import (
	"context"
	"path/filepath"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/internal/lint"
	"github.com/meshguard/meshguard/internal/manifest"
)

// TestPeersAndMeshguardJudgeTheSameConfigs runs meshguard on the fixtures of Istio's analyzers and
// Kiali's checkers that overlap its rules (testdata/peers/README.md names their sources) and
// compares each verdict with the peer's. Where the peer judges otherwise than Istio's own code
// does, meshguard follows Istio and the case says why.
func TestPeersAndMeshguardJudgeTheSameConfigs(t *testing.T) {
	eng := newEngine(t)
	tests := []struct {
		file  string
		peer  string // the peer's check and the verdict its tests expect
		rule  string
		want  []string // "name path" of meshguard's findings of rule
		agree bool
		why   string // when meshguard and the peer differ
	}{
		// Istio: IST0101 ReferencedResourceNotFound for host+subset (analyzers/virtualservice/destinationrules.go).
		{"istio/virtualservice_destinationrules.yaml", "IST0101 on reviews-bogussubset, reviews-mirror-bogussubset", "MG506",
			[]string{"reviews-bogussubset spec.http[0].route[0].destination.subset", "reviews-mirror-bogussubset spec.http[0].mirror.subset"}, true, ""},
		// Istio: IST0128/IST0129 (analyzers/destinationrule/ca-certificates.go).
		{"istio/destinationrule-simple-destination.yaml", "IST0128 db-tls", "MG207", []string{"db-tls spec.trafficPolicy.tls.mode"}, true, ""},
		{"istio/destinationrule-mutual-destination.yaml", "IST0128 db-mtls", "MG207", []string{"db-mtls spec.trafficPolicy.tls.mode"}, true, ""},
		{"istio/destinationrule-simple-port.yaml", "IST0129 db-tls", "MG207", []string{"db-tls spec.trafficPolicy.portLevelSettings[0].tls.mode"}, true, ""},
		{"istio/destinationrule-simple-destination-credentialname.yaml", "IST0128 db-tls", "MG207", []string{"db-tls spec.trafficPolicy.tls.mode"}, true, ""},
		{"istio/destinationrule-simple-destination-credentialname-selector.yaml", "none", "MG207", nil, true, ""},
		{"istio/destinationrule-simple-port-credentialname.yaml", "IST0129 db-tls", "MG207", []string{"db-tls spec.trafficPolicy.portLevelSettings[0].tls.mode"}, true, ""},
		{"istio/destinationrule-simple-port-credentialname-selector.yaml", "none", "MG207", nil, true, ""},
		{"istio/destinationrule-mutual-port.yaml", "IST0129 db-mtls", "MG207", []string{"db-mtls spec.trafficPolicy.portLevelSettings[0].tls.mode"}, true, ""},
		{"istio/destinationrule-compound-simple-mutual.yaml", "IST0128 and IST0129 db-mtls", "MG207",
			[]string{"db-mtls spec.trafficPolicy.portLevelSettings[0].tls.mode", "db-mtls spec.trafficPolicy.tls.mode"}, true, ""},
		{"istio/destinationrule-compound-mutual-simple.yaml", "IST0128 and IST0129 db-mtls", "MG207",
			[]string{"db-mtls spec.trafficPolicy.portLevelSettings[0].tls.mode", "db-mtls spec.trafficPolicy.tls.mode"}, true, ""},
		{"istio/destinationrule-with-ca.yaml", "none", "MG207", nil, true, ""},

		// Kiali: KIA1107 subset not found (virtualservices/subset_presence_checker.go).
		{"kiali/subset-presence-matching-subsets-1.yaml", "none", "MG506", nil, true, ""},
		{"kiali/subset-presence-matching-subsets-2.yaml", "none", "MG506", nil, true, ""},
		{"kiali/subset-presence-export-subset.yaml", "none", "MG506", nil, true, ""},
		{"kiali/subset-presence-no-matching-export-subset.yaml", "KIA1107 at http[0].route[0] and route[1]", "MG506",
			[]string{"reviews-vs spec.http[0].route[0].destination.subset", "reviews-vs spec.http[0].route[1].destination.subset"}, true, ""},
		{"kiali/subset-presence-matching-subsets-diff-ns.yaml", "KIA1107 at http[0] and http[1]", "MG506",
			[]string{"reviews-vs spec.http[0].route[0].destination.subset", "reviews-vs spec.http[1].route[0].destination.subset"}, true, ""},
		{"kiali/subset-presence-no-matching-subsets-1.yaml", "KIA1107 at http[0] and http[1]", "MG506",
			[]string{"reviews-vs spec.http[0].route[0].destination.subset", "reviews-vs spec.http[1].route[0].destination.subset"}, true, ""},
		{"kiali/subset-presence-no-matching-subsets-2.yaml", "KIA1107 at http[0] and http[1]", "MG506",
			[]string{"reviews-vs spec.http[0].route[0].destination.subset", "reviews-vs spec.http[1].route[0].destination.subset"}, true, ""},
		{"kiali/subset-presence-no-matching-subsets-3.yaml", "KIA1107 at http[0] and http[1]", "MG506",
			[]string{"reviews-vs spec.http[0].route[0].destination.subset", "reviews-vs spec.http[1].route[0].destination.subset"}, true, ""},
		{"kiali/subset-presence-matching-subsets-diff-ns-fqdn.yaml", "none", "MG506",
			[]string{"reviews-vs spec.http[0].route[0].destination.subset", "reviews-vs spec.http[1].route[0].destination.subset"}, false,
			"the rule lives in diff-ns, neither the caller's (bookinfo) nor the service's nor the root namespace: PushContext.destinationRule never looks there"},
		{"kiali/subset-presence-matching-subsets-half-fqdn.yaml", "none", "MG506",
			[]string{"reviews-vs spec.http[0].route[0].destination.subset", "reviews-vs spec.http[1].route[0].destination.subset"}, false,
			"Istio does not expand reviews.bookinfo (ResolveShortnameToFQDN expands only dot-less names), so no rule for reviews.bookinfo.svc.cluster.local applies to it"},
		{"kiali/subset-presence-matching-subsets-diff-ns-half-fqdn.yaml", "none", "MG506",
			[]string{"reviews-vs spec.http[0].route[0].destination.subset", "reviews-vs spec.http[1].route[0].destination.subset"}, false,
			"reviews.bookinfo is taken as written and the rule in diff-ns applies to neither route (caller, service and root namespace only)"},

		// Kiali: KIA0208 mesh-wide DestinationRule disables mTLS under STRICT (destinationrules/disabled_meshwide_mtls_checker.go).
		{"kiali/disabled_meshwide_checker_1.yaml", "none (mesh DISABLE)", "MG501", nil, true, ""},
		{"kiali/disabled_meshwide_checker_2.yaml", "KIA0208", "MG501", []string{"disable-mesh-mtls spec.trafficPolicy.tls.mode"}, true, ""},
		{"kiali/disabled_meshwide_checker_3.yaml", "none (no mesh policy)", "MG501", nil, true, ""},
		{"kiali/disabled_meshwide_checker_4.yaml", "none (mesh PERMISSIVE)", "MG501", nil, true, ""},
		// Kiali: KIA0207/KIA0208 namespace-wide DestinationRule disables mTLS (disabled_namespacewide_mtls_checker.go).
		{"kiali/nswide-policy-permissive.yaml", "none", "MG501", nil, true, ""},
		{"kiali/nswide-policy-disable.yaml", "none", "MG501", nil, true, ""},
		{"kiali/nswide-policy-permissive-mesh-strict.yaml", "none", "MG501", nil, true, ""},
		{"kiali/nswide-policy-strict.yaml", "KIA0207", "MG501", []string{"disable-mtls spec.trafficPolicy.tls.mode"}, true, ""},
		{"kiali/nswide-mesh-strict.yaml", "KIA0208", "MG501", []string{"disable-mtls spec.trafficPolicy.tls.mode"}, true, ""},
		{"kiali/nswide-mesh-permissive.yaml", "none", "MG501", nil, true, ""},
		{"kiali/nswide-without-policy.yaml", "none", "MG501", nil, true, ""},
		{"kiali/nswide-mesh-strict-ns-disable.yaml", "none", "MG501", nil, true, ""},

		// Kiali: KIA0104/KIA0105 AuthorizationPolicy needs mTLS (authorization/mtls_enabled_checker.go), with
		// Istio's default autoMtls on.
		{"kiali/mtls_enabled_checker_7.yaml", "KIA0104 (namespace DISABLE)", "MG304", []string{"policy spec.rules[0].from"}, true, ""},
		{"kiali/mtls_enabled_checker_9.yaml", "KIA0104 (mesh DISABLE)", "MG304", []string{"policy spec.rules[0].from"}, true, ""},
		{"kiali/mtls_enabled_checker_71.yaml", "none (no rules)", "MG304", nil, true, ""},
		{"kiali/mtls_enabled_checker_1.yaml", "none (autoMtls)", "MG304", []string{"policy spec.rules[0].from"}, false,
			"with no PeerAuthentication Istio's mode is PERMISSIVE (ComposePeerAuthentication): sidecar clients use mTLS, but plaintext from anything else is accepted and has no principal"},
		{"kiali/mtls_enabled_checker_11.yaml", "none (autoMtls, mesh PERMISSIVE)", "MG304", []string{"policy spec.rules[0].from"}, false,
			"mesh-wide PERMISSIVE accepts plaintext, whose requests carry no principal"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			res, err := manifest.Loader{}.Load([]string{filepath.Join("testdata", "peers", tt.file)})
			require.NoError(t, err)
			// As `lint --complete`: the file is the whole configuration, placed in default.
			lint.Place(res.Objects, "default")
			fs, err := lint.Run(context.Background(), eng, res.Objects, res.Problems, true)
			require.NoError(t, err)
			var got []string
			for _, f := range fs {
				if f.Rule == tt.rule {
					got = append(got, f.Name+" "+f.Path)
				}
				if f.Rule == "MG304" && tt.file == "kiali/mtls_enabled_checker_1.yaml" {
					require.Contains(t, f.Message, "accept plaintext (no PeerAuthentication: Istio's default, PERMISSIVE)", "what decides the mode is named")
				}
			}
			sort.Strings(got)
			require.Equal(t, tt.want, got, "peer: %s; agree: %v %s", tt.peer, tt.agree, tt.why)
			require.Equal(t, tt.agree, tt.why == "", "a disagreement says why, an agreement needs no reason")
		})
	}
}
