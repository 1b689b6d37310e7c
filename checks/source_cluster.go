package checks

import (
	"context"
	"fmt"
	"io"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"

	"github.com/meshguard/meshguard/internal/cluster"
	"github.com/meshguard/meshguard/internal/graph"
	"github.com/meshguard/meshguard/internal/manifest"
)

// namespacePage bounds one namespace LIST call.
const namespacePage = 500

// ClusterSource reads the mesh configuration through the Kubernetes API.
type ClusterSource struct {
	Config *rest.Config
	// Kube lists namespaces to find the ones in the mesh, and the graph's workloads; nil skips
	// both (TelemetryBlind then only knows namespaces that hold Istio objects).
	Kube kubernetes.Interface
	// Meta reads the workloads' rollout records as metadata only; nil skips the workloads.
	Meta          metadata.Interface
	RootNamespace string
	// Kinds are the manifest kinds to list; default PeerAuthentication only (what `check`
	// needs). `graph` adds VirtualService and DestinationRule.
	Kinds []string
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

func (c *ClusterSource) String() string { return "cluster " + c.Config.Host }

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
	if c.Kube != nil {
		if namespaces, err = c.meshNamespaces(ctx); err != nil {
			return nil, fmt.Errorf("list namespaces in %s: %w", c, err)
		}
	}
	return NewMeshConfig(c.RootNamespace, objects, namespaces), nil
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

// meshNamespaces lists the namespaces with sidecar injection or ambient enabled.
func (c *ClusterSource) meshNamespaces(ctx context.Context) ([]string, error) {
	var out []string
	opts := metav1.ListOptions{Limit: namespacePage}
	for {
		l, err := c.Kube.CoreV1().Namespaces().List(ctx, opts)
		if err != nil {
			return nil, err
		}
		for _, ns := range l.Items {
			lb := ns.Labels
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
