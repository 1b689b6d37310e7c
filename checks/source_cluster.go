package checks

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"

	"github.com/meshguard/meshguard/internal/cluster"
	"github.com/meshguard/meshguard/internal/graph"
	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/meshguard/meshguard/internal/mesh"
)

// namespacePage bounds one namespace LIST call.
const namespacePage = 500

// ClusterSource reads the mesh configuration through the Kubernetes API.
type ClusterSource struct {
	Config *rest.Config
	// Kube lists namespaces to find the ones in the mesh, and the graph's workloads; nil skips
	// both (TelemetryBlind then only knows namespaces that hold Istio objects).
	Kube kubernetes.Interface
	// Meta reads the workloads' rollout records and the running pods as metadata only; nil
	// skips both (the mTLS checks then judge by telemetry's app and version labels).
	Meta          metadata.Interface
	RootNamespace string
	// Kinds are the manifest kinds to list; default PeerAuthentication only (what `check`
	// needs). `graph` adds VirtualService and DestinationRule.
	Kinds []string
	// Name names the cluster when several are checked (check.clusters).
	Name string
	// MaxWorkloadLabelSets bounds the pod label sets kept (0: DefaultMaxWorkloadLabelSets).
	MaxWorkloadLabelSets int
}

// NewClusterSource builds the clients for cfg.
func NewClusterSource(cfg *rest.Config, rootNamespace string, kinds ...string) (*ClusterSource, error) {
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client for %s: %w", cfg.Host, err)
	}
	mc, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("metadata client for %s: %w", cfg.Host, err)
	}
	return &ClusterSource{Config: cfg, Kube: kc, Meta: mc, RootNamespace: rootNamespace, Kinds: kinds}, nil
}

func (c *ClusterSource) String() string {
	if c.Name != "" {
		return "cluster " + c.Name + " (" + c.Config.Host + ")"
	}
	return "cluster " + c.Config.Host
}

// Load lists the objects and the mesh namespaces.
func (c *ClusterSource) Load(ctx context.Context) (*MeshConfig, error) {
	kinds := c.Kinds
	if len(kinds) == 0 {
		kinds = []string{manifest.KindPeerAuthentication}
	}
	// The checks run every cycle: a kind the cluster does not serve is not news each time.
	items, err := cluster.List(ctx, c.Config, kinds, io.Discard)
	if err != nil {
		return nil, err
	}
	var objects []*manifest.Object
	for _, it := range items {
		// A spec the API server accepted but this istio.io/api version does not know still has
		// the fields the checker reads; keep the object.
		if it.Object != nil {
			objects = append(objects, it.Object)
		}
	}
	var namespaces []string
	nsLabels := map[string]map[string]string{}
	if c.Kube != nil {
		if namespaces, err = c.meshNamespaces(ctx, nsLabels); err != nil {
			return nil, fmt.Errorf("list namespaces in %s: %w", c, err)
		}
	}
	m := NewMeshConfig(c.RootNamespace, objects, namespaces)
	m.Cluster = c.Name
	// Pod labels are what PeerAuthentication selectors match; only the mTLS checks need them.
	if slices.Contains(kinds, manifest.KindPeerAuthentication) {
		if m.Workloads, m.WorkloadsUnknown, err = c.clusterWorkloads(ctx, m.resolver, nsLabels); err != nil {
			return nil, err
		}
	} else {
		m.WorkloadsUnknown = "pods are only read for the mTLS checks"
	}
	return m, nil
}

// Workloads reads the Deployments, StatefulSets and DaemonSets of namespaces with their rollout
// records (internal/cluster); none without the clients.
func (c *ClusterSource) Workloads(ctx context.Context, namespaces []string) ([]graph.Workload, error) {
	if c.Kube == nil || c.Meta == nil {
		return nil, nil
	}
	ws, err := cluster.Workloads(ctx, c.Kube, c.Meta, namespaces)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c, err)
	}
	return ws, nil
}

// meshNamespaces lists the namespaces with sidecar injection or ambient enabled, and records
// the labels ambient enrollment reads of each namespace in labels.
func (c *ClusterSource) meshNamespaces(ctx context.Context, labels map[string]map[string]string) ([]string, error) {
	var out []string
	opts := metav1.ListOptions{Limit: namespacePage}
	for {
		l, err := c.Kube.CoreV1().Namespaces().List(ctx, opts)
		if err != nil {
			return nil, err
		}
		for _, ns := range l.Items {
			lb := ns.Labels
			if mode, ok := lb[mesh.LabelDataplaneMode]; ok {
				labels[ns.Name] = map[string]string{mesh.LabelDataplaneMode: mode}
			}
			_, rev := lb["istio.io/rev"]
			if lb["istio-injection"] == "enabled" || rev || lb["istio.io/dataplane-mode"] == "ambient" {
				out = append(out, ns.Name)
			}
		}
		if l.Continue == "" {
			break
		}
		opts.Continue = l.Continue
	}
	sort.Strings(out)
	return out, nil
}

// ClusterSet reads the configuration of several clusters of one mesh, each through its own
// API server; the rules judge a series by the configuration of its destination cluster.
type ClusterSet struct {
	// Sources are the clusters, each with its Name; the first is the default one.
	Sources []*ClusterSource
}

// Load reads every cluster; any cluster that cannot be read fails the whole load, as a
// partial picture would judge its traffic by another cluster's policies.
func (s ClusterSet) Load(ctx context.Context) (*MeshConfig, error) {
	configs := make([]*MeshConfig, 0, len(s.Sources))
	for _, src := range s.Sources {
		m, err := src.Load(ctx)
		if err != nil {
			return nil, fmt.Errorf("read cluster %s: %w", src.Name, err)
		}
		configs = append(configs, m)
	}
	return MergeClusters(configs...), nil
}

func (s ClusterSet) String() string {
	names := make([]string, 0, len(s.Sources))
	for _, src := range s.Sources {
		names = append(names, src.Name)
	}
	return fmt.Sprintf("clusters %v", names)
}
