package checks

import (
	"context"
	"strings"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/meshguard/meshguard/internal/mesh"
)

const tierException = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: billing}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: legacy-tier
  namespace: billing
  annotations:
    exceptions.meshguard.io/MG301: "reason=ledger clients move in Q3; expires=2099-06-30"
spec:
  selector: {matchLabels: {tier: legacy}}
  mtls: {mode: PERMISSIVE}
`

// withPods gives m the pods of workloads (namespace/name → labels), all in the mesh.
func withPods(m *MeshConfig, pods map[[2]string]map[string]string) *MeshConfig {
	m.Workloads = mesh.NewWorkloads(m.Resolver(), 0)
	for k, labels := range pods {
		m.Workloads.Add(k[0], k[1], labels, true)
	}
	return m
}

// plaintextIn is a plaintext_requests row into billing/workload (app = workload), in cluster
// when set.
func plaintextIn(workload, cluster string) *model.Sample {
	s := plaintextInto(2, "billing", workload, workload, "legacy", "batch")
	if cluster != "" {
		s.Metric[model.LabelName(testSettings().ClusterLabels.Destination)] = model.LabelValue(cluster)
	}
	return s
}

func firedFor(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Labels[LabelCluster]+"/"+f.Labels["destination_workload"])
	}
	return out
}

func TestPlaintextIsJudgedByTheDestinationPodsLabels(t *testing.T) {
	results := map[string]model.Vector{SignalPlaintextRequests: {plaintextIn("ledger", ""), plaintextIn("payments", "")}}
	pods := map[[2]string]map[string]string{
		{"billing", "ledger"}:   {"app": "ledger", "tier": "legacy"},
		{"billing", "payments"}: {"app": "payments", "tier": "core"},
	}
	tests := []struct {
		name                   string
		mesh                   *MeshConfig
		wantTraffic, wantAllow []string
		wantBasis              string
	}{
		{"the pod labelled tier: legacy is under the exception; its neighbour is STRICT",
			withPods(meshFrom(t, tierException), pods), []string{"/payments"}, []string{"/ledger"}, ""},
		{"without pod labels the tier selector cannot match: both are STRICT, and the alert says why",
			meshFrom(t, tierException), []string{"/ledger", "/payments"}, nil, "pod labels unknown (the configuration holds no pods)"},
		{"a workload with no running pod falls back to app and version, and says so",
			withPods(meshFrom(t, tierException), map[[2]string]map[string]string{{"billing", "other"}: {"app": "other"}}),
			[]string{"/ledger", "/payments"}, nil, "no running pod of workload billing/ledger was found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			traffic := evalRule(t, AlertPlaintextTraffic, testSettings(), tt.mesh, results)
			allowed := evalRule(t, AlertPlaintextAllowed, testSettings(), tt.mesh, results)
			require.Equal(t, tt.wantTraffic, firedFor(traffic))
			require.Equal(t, tt.wantAllow, firedFor(allowed))
			for _, f := range append(traffic, allowed...) {
				if tt.wantBasis == "" {
					require.NotContains(t, f.Annotations, "judged_by")
					continue
				}
				require.Contains(t, f.Annotations["judged_by"], "destination_app and destination_version")
				if f.Labels["destination_workload"] == "ledger" {
					require.Contains(t, f.Annotations["judged_by"], tt.wantBasis)
					require.Contains(t, f.Annotations["description"], tt.wantBasis)
				}
			}
		})
	}
}

func TestEachSeriesIsJudgedByItsDestinationClustersConfiguration(t *testing.T) {
	strict := withPods(meshFrom(t, tierException), map[[2]string]map[string]string{{"billing", "ledger"}: {"app": "ledger"}})
	strict.Cluster = "east"
	excepted := withPods(meshFrom(t, tierException), map[[2]string]map[string]string{{"billing", "ledger"}: {"app": "ledger", "tier": "legacy"}})
	excepted.Cluster = "west"
	m := MergeClusters(strict, excepted)
	tests := []struct {
		name                   string
		cluster                string
		wantTraffic, wantAllow []string
		wantBasis              string
	}{
		{"a series of the first cluster is judged by its pods", "east", []string{"east/ledger"}, nil, ""},
		{"a series of the second cluster is judged by its own pods", "west", nil, []string{"west/ledger"}, ""},
		{"a series naming no cluster is judged by the default, first one", "", []string{"/ledger"}, nil, ""},
		{"a series of an unconfigured cluster is judged by the default one, and says so", "south", []string{"south/ledger"}, nil,
			`cluster "south" is not configured: judged by the policies of cluster east`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			results := map[string]model.Vector{SignalPlaintextRequests: {plaintextIn("ledger", tt.cluster)}}
			traffic := evalRule(t, AlertPlaintextTraffic, testSettings(), m, results)
			require.Equal(t, tt.wantTraffic, firedFor(traffic))
			require.Equal(t, tt.wantAllow, firedFor(evalRule(t, AlertPlaintextAllowed, testSettings(), m, results)))
			if tt.wantBasis != "" {
				require.Equal(t, tt.wantBasis, traffic[0].Annotations["judged_by"])
			}
		})
	}

	t.Run("the cluster is read from the label check.clusterLabels names", func(t *testing.T) {
		s := testSettings()
		s.ClusterLabels.Destination = "dst_cluster"
		row := plaintextInto(2, "billing", "ledger", "ledger", "legacy", "batch")
		row.Metric["dst_cluster"] = "west"
		results := map[string]model.Vector{SignalPlaintextRequests: {row}}
		require.Equal(t, []string{"west/ledger"}, firedFor(evalRule(t, AlertPlaintextAllowed, s, m, results)))
		require.Empty(t, evalRule(t, AlertPlaintextTraffic, s, m, results))
	})

	t.Run("a single cluster judges every series whatever cluster it names", func(t *testing.T) {
		results := map[string]model.Vector{SignalPlaintextRequests: {plaintextIn("ledger", "Kubernetes")}}
		traffic := evalRule(t, AlertPlaintextTraffic, testSettings(), strict, results)
		require.Equal(t, []string{"Kubernetes/ledger"}, firedFor(traffic))
		require.NotContains(t, traffic[0].Annotations, "judged_by")
	})
}

func TestTelemetryBlindNeedsMeshPodsWhereThePodsAreKnown(t *testing.T) {
	const strictNamespaces = meshStrict + `---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: idle}
spec: {mtls: {mode: STRICT}}
`
	blind := func(m *MeshConfig, presence ...*model.Sample) []string {
		var out []string
		for _, f := range evalRule(t, AlertTelemetryBlind, testSettings(), m, map[string]model.Vector{SignalTelemetryPresence: presence}) {
			out = append(out, f.Labels[LabelCluster]+"/"+f.Labels[LabelNamespace])
		}
		return out
	}
	t.Run("a STRICT namespace running injected pods with no series is blind, though nothing else names it", func(t *testing.T) {
		m := meshFrom(t, strictNamespaces)
		m.Workloads = mesh.NewWorkloads(m.Resolver(), 0)
		m.Workloads.Add("vault", "secrets", nil, true)
		m.Workloads.Add("plain", "web", nil, false)
		require.Equal(t, []string{"/vault"}, blind(m), "idle has no pod; plain runs no mesh pod")
	})
	t.Run("a namespace whose pods report series is not blind", func(t *testing.T) {
		m := meshFrom(t, strictNamespaces)
		m.Workloads = mesh.NewWorkloads(m.Resolver(), 0)
		m.Workloads.Add("vault", "secrets", nil, true)
		require.Empty(t, blind(m, sample(1, "destination_workload_namespace", "vault")))
	})
	t.Run("without pods the namespaces the configuration names stand in", func(t *testing.T) {
		require.Equal(t, []string{"/idle"}, blind(meshFrom(t, strictNamespaces)))
	})
	t.Run("each cluster's mesh namespaces are judged in that cluster", func(t *testing.T) {
		east, west := meshFrom(t, strictNamespaces), meshFrom(t, strictNamespaces)
		east.Cluster, west.Cluster = "east", "west"
		east.Workloads, west.Workloads = mesh.NewWorkloads(east.Resolver(), 0), mesh.NewWorkloads(west.Resolver(), 0)
		east.Workloads.Add("vault", "secrets", nil, true)
		west.Workloads.Add("vault", "secrets", nil, true)
		west.Workloads.Add("audit", "log", nil, true)
		m := MergeClusters(east, west)
		require.Equal(t, []string{"east/vault", "west/audit"},
			blind(m, sample(1, "destination_workload_namespace", "vault", testSettings().ClusterLabels.Destination, "west")))
	})
}

func TestManifestsGivePodLabels(t *testing.T) {
	const manifests = tierException + `---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ledger, namespace: billing}
spec:
  template:
    metadata: {labels: {app: ledger, tier: legacy}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: data}
spec:
  template:
    metadata: {labels: {app: db}, annotations: {sidecar.istio.io/inject: "false"}}
---
apiVersion: v1
kind: Pod
metadata:
  name: report-28950720-zz9
  generateName: report-28950720-
  namespace: jobs
  labels: {app: report}
  ownerReferences: [{apiVersion: batch/v1, kind: Job, name: report-28950720, uid: u1, controller: true}]
`
	objs, problems := manifest.Parse("m.yaml", []byte(manifests))
	require.Empty(t, problems)
	m := NewMeshConfig("istio-system", objs, nil)
	ws := workloadsFromManifests(m.Resolver(), objs, 0)
	require.NotNil(t, ws)
	tests := []struct {
		name, ns, workload string
		want               map[string]string
	}{
		{"a Deployment's template labels are its workload's, selector labels kept", "billing", "ledger", map[string]string{"app": "ledger", "tier": "legacy"}},
		{"a StatefulSet's template labels are its workload's", "data", "db", map[string]string{"app": "db"}},
		{"a Pod is filed under the workload Istio names it after (its CronJob)", "jobs", "report", map[string]string{"app": "report"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sets, ok := ws.Labels(tt.ns, tt.workload)
			require.True(t, ok)
			require.Equal(t, []map[string]string{tt.want}, sets)
		})
	}
	t.Run("a template that opts out of the sidecar does not put its namespace in the mesh alone", func(t *testing.T) {
		require.Equal(t, []string{"billing", "jobs"}, ws.MeshNamespaces())
	})
	t.Run("without any pod or workload manifest the labels are unknown", func(t *testing.T) {
		pas, problems := manifest.Parse("pa.yaml", []byte(tierException))
		require.Empty(t, problems)
		require.Nil(t, workloadsFromManifests(m.Resolver(), pas, 0))
	})
}

func TestKubeStateLabelNamesFollowKubeStateMetrics(t *testing.T) {
	tests := []struct{ key, want string }{
		{"tier", "label_tier"},
		{"app.kubernetes.io/name", "label_app_kubernetes_io_name"},
		{"istio.io/dataplane-mode", "label_istio_io_dataplane_mode"},
		{"securityZone", "label_security_zone"},
	}
	for _, tt := range tests {
		t.Run(tt.key+" becomes "+tt.want, func(t *testing.T) {
			require.Equal(t, tt.want, kubeStateLabelName(tt.key))
		})
	}
}

func TestKubePodLabelsGivePodLabelsWhereThereIsNoAPIAccess(t *testing.T) {
	m := meshFrom(t, tierException)
	labels := model.Vector{
		sample(1, "namespace", "billing", "pod", "ledger-5d8-x", "owner_kind", "ReplicaSet", "owner_name", "ledger-5d8",
			"label_app", "ledger", "label_tier", "legacy", "label_pod_template_hash", "5d8", "label_team", "books"),
		sample(1, "namespace", "billing", "pod", "static", "label_app", "static"),
		sample(1, "namespace", "plain", "pod", "web-7f-y", "owner_kind", "ReplicaSet", "owner_name", "web-7f", "label_pod_template_hash", "7f"),
	}
	meshPods := model.Vector{sample(1, "namespace", "billing", "pod", "ledger-5d8-x")}
	ws := workloadsFromKubeState(m.Resolver(), labels, meshPods, 0)
	t.Run("a ReplicaSet's pod is filed under its Deployment with the selected labels, under their own names", func(t *testing.T) {
		sets, ok := ws.Labels("billing", "ledger")
		require.True(t, ok)
		require.Equal(t, []map[string]string{{"app": "ledger", "tier": "legacy"}}, sets)
	})
	t.Run("a pod without a controller keeps its own name", func(t *testing.T) {
		_, ok := ws.Labels("billing", "static")
		require.True(t, ok)
	})
	t.Run("only namespaces with a sidecar pod run mesh pods", func(t *testing.T) {
		require.Equal(t, []string{"billing"}, ws.MeshNamespaces())
	})
}

// answers is a Querier that answers each query from a map, whatever the bound.
type answers map[string]model.Vector

func (a answers) Query(_ context.Context, query string, _ time.Time, _ ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error) {
	for q, v := range a {
		if strings.Contains(query, q) {
			return v, nil, nil, nil
		}
	}
	return model.Vector{}, nil, nil, nil
}

func TestKubeStateSourceQueriesOnlyWhenTheBaseHasNoPods(t *testing.T) {
	q := answers{"kube_pod_labels": {sample(1, "namespace", "billing", "pod", "ledger", "label_tier", "legacy")}}
	t.Run("a configuration without pods gets kube-state-metrics' labels", func(t *testing.T) {
		m, err := KubeStateSource{Base: StaticSource{meshFrom(t, tierException)}, Querier: q}.Load(context.Background())
		require.NoError(t, err)
		sets, ok := m.Workloads.Labels("billing", "ledger")
		require.True(t, ok)
		require.Equal(t, []map[string]string{{"tier": "legacy"}}, sets)
	})
	t.Run("a configuration with pods is left alone", func(t *testing.T) {
		base := withPods(meshFrom(t, tierException), map[[2]string]map[string]string{{"billing", "other"}: {"app": "other"}})
		m, err := KubeStateSource{Base: StaticSource{base}, Querier: q}.Load(context.Background())
		require.NoError(t, err)
		require.Same(t, base, m)
	})
	t.Run("no kube_pod_labels series leaves the labels unknown, and says why", func(t *testing.T) {
		m, err := KubeStateSource{Base: StaticSource{meshFrom(t, tierException)}, Querier: answers{}}.Load(context.Background())
		require.NoError(t, err)
		require.Nil(t, m.Workloads)
		require.Contains(t, m.WorkloadsUnknown, "kube_pod_labels has no running pod")
	})
}
