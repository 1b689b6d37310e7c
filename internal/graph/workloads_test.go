package graph

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDescribeTakesTeamTierAndLastDeployFromTheWorkload(t *testing.T) {
	deployed := time.Date(2026, 11, 30, 9, 15, 0, 0, time.FixedZone("CET", 3600))
	keys := MetadataKeys{Team: []string{"team", "app.kubernetes.io/part-of"}, Tier: []string{"tier"}}
	tests := []struct {
		name               string
		workloads          []Workload
		wantTeam, wantTier string
		wantDeploy         *time.Time
	}{
		{
			name:      "the pod template's label wins over the object's label of the same key",
			workloads: []Workload{{Namespace: "shop", Name: "web", Metadata: []map[string]string{{"team": "pods"}, {"team": "object"}}}},
			wantTeam:  "pods",
		},
		{
			name: "an earlier key wins over a later one, wherever each is set",
			workloads: []Workload{{Namespace: "shop", Name: "web", Metadata: []map[string]string{
				{"app.kubernetes.io/part-of": "storefront"}, {}, {"team": "payments"}}}},
			wantTeam: "payments",
		},
		{
			name:      "a later key is taken when the first is set nowhere",
			workloads: []Workload{{Namespace: "shop", Name: "web", Metadata: []map[string]string{{"app.kubernetes.io/part-of": "storefront", "tier": "edge"}}}},
			wantTeam:  "storefront", wantTier: "edge",
		},
		{
			name:      "an empty value counts as unset",
			workloads: []Workload{{Namespace: "shop", Name: "web", Metadata: []map[string]string{{"team": ""}, {"team": "payments"}}}},
			wantTeam:  "payments",
		},
		{
			name:       "the last deploy is kept, in UTC",
			workloads:  []Workload{{Namespace: "shop", Name: "web", LastDeploy: deployed}},
			wantDeploy: &[]time.Time{deployed.UTC()}[0],
		},
		{
			name:      "a workload of the same name in another namespace is not this one",
			workloads: []Workload{{Namespace: "other", Name: "web", Metadata: []map[string]string{{"team": "payments"}}, LastDeploy: deployed}},
		},
		{
			name: "no workload in the cluster leaves the fields empty",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := build(t, observed(call{src: "shop/web", dst: "shop/a-v1", rate: 10}), nil)
			g.Describe(tt.workloads, keys)
			web := g.Node(webWL)
			require.NotNil(t, web)
			require.Equal(t, tt.wantTeam, web.Team)
			require.Equal(t, tt.wantTier, web.Tier)
			require.Equal(t, tt.wantDeploy, web.LastDeploy)
		})
	}
}

func TestAServiceTakesWhatTheWorkloadsBehindItAgreeOn(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC) }
	v2 := []string{"destination_service", host("shop/a"), "destination_service_name", "a"}
	keys := MetadataKeys{Team: []string{"team"}, Tier: []string{"tier"}}
	wl := func(name, team, tier string, deployed time.Time) Workload {
		return Workload{Namespace: "shop", Name: name, Metadata: []map[string]string{{"team": team, "tier": tier}}, LastDeploy: deployed}
	}
	tests := []struct {
		name               string
		workloads          []Workload
		wantTeam, wantTier string
		wantDeploy         *time.Time
	}{
		{"two versions of one team: the service is theirs, deployed when the newer one was",
			[]Workload{wl("a-v1", "payments", "backend", day(3)), wl("a-v2", "payments", "backend", day(9))}, "payments", "backend", &[]time.Time{day(9)}[0]},
		{"two teams: no single owner is shown, the tier they share is",
			[]Workload{wl("a-v1", "payments", "backend", day(3)), wl("a-v2", "ledger", "backend", day(1))}, "", "backend", &[]time.Time{day(3)}[0]},
		{"one workload the cluster does not hold: no owner is shown",
			[]Workload{wl("a-v1", "payments", "backend", day(3))}, "", "", &[]time.Time{day(3)}[0]},
		{"a Deployment named like the service is not the service's owner",
			[]Workload{wl("a", "payments", "backend", day(3))}, "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := build(t, observed(call{src: "shop/web", dst: "shop/a-v1", rate: 10}, call{src: "shop/web", dst: "shop/a-v2", rate: 10, extra: v2}), nil)
			g.Describe(tt.workloads, keys)
			a := g.Node(aSvc)
			require.NotNil(t, a)
			require.Equal(t, tt.wantTeam, a.Team)
			require.Equal(t, tt.wantTier, a.Tier)
			require.Equal(t, tt.wantDeploy, a.LastDeploy)
		})
	}
}

func TestWorkloadNamespacesAreWhereTheWorkloadsRun(t *testing.T) {
	g := build(t, observed(call{src: "shop/web", dst: "pay/a-v1", rate: 10}, call{src: "shop/web", dst: "shop/b-v1", rate: 1}), nil)
	require.Equal(t, []string{"pay", "shop"}, g.WorkloadNamespaces())
}
