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

func TestDescribeLeavesServicesAlone(t *testing.T) {
	g := build(t, observed(call{src: "shop/web", dst: "shop/a-v1", rate: 10}), nil)
	// A Deployment named like the service must not be read as the service's owner.
	g.Describe([]Workload{{Namespace: "shop", Name: "a", Metadata: []map[string]string{{"team": "payments"}}, LastDeploy: time.Now()}},
		MetadataKeys{Team: []string{"team"}})
	for _, n := range g.Nodes {
		require.Empty(t, n.Team, n.ID)
		require.Nil(t, n.LastDeploy, n.ID)
	}
}

func TestWorkloadNamespacesAreWhereTheWorkloadsRun(t *testing.T) {
	g := build(t, observed(call{src: "shop/web", dst: "pay/a-v1", rate: 10}, call{src: "shop/web", dst: "shop/b-v1", rate: 1}), nil)
	require.Equal(t, []string{"pay", "shop"}, g.WorkloadNamespaces())
}
