package checks

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/meshguard/meshguard/internal/mesh"
)

// MeshConfig is the Istio configuration traffic is compared with: the objects (PeerAuthentications
// for mTLS; VirtualServices and DestinationRules for the graph) and the namespaces known to be in
// the mesh.
type MeshConfig struct {
	Objects []*manifest.Object
	// Namespaces are the namespaces known to be in the mesh besides those holding objects: in a
	// cluster, the namespaces labelled for sidecar injection or ambient.
	Namespaces []string
	// Workloads are the pod labels of the workloads, by the name telemetry gives them; nil when
	// the source has none, and WorkloadsUnknown then says why.
	Workloads        *mesh.Workloads
	WorkloadsUnknown string
	// Cluster names the cluster of this configuration when several are checked.
	Cluster string

	resolver *mesh.Resolver
	// clusters are the configurations of every cluster by name, this one first, when several
	// are checked.
	clusters map[string]*MeshConfig
	order    []string
}

// NewMeshConfig indexes objects; rootNamespace is Istio's root config namespace.
func NewMeshConfig(rootNamespace string, objects []*manifest.Object, namespaces []string) *MeshConfig {
	return &MeshConfig{Objects: objects, Namespaces: namespaces, resolver: mesh.NewResolver(rootNamespace, objects)}
}

// MergeClusters joins the configurations of several clusters, each with its Cluster set; the
// first is the default one, for series that name no cluster.
func MergeClusters(configs ...*MeshConfig) *MeshConfig {
	first := *configs[0]
	first.clusters = make(map[string]*MeshConfig, len(configs))
	first.order = nil
	for _, c := range configs {
		first.clusters[c.Cluster] = c
		first.order = append(first.order, c.Cluster)
	}
	return &first
}

// ForCluster returns the configuration of the named cluster: the only one when a single
// cluster is checked, whatever the name (Istio labels a lone cluster "Kubernetes"), and the
// default one when name is empty. ok is false for a name no configured cluster has; the
// default one is returned then.
func (m *MeshConfig) ForCluster(name string) (cfg *MeshConfig, ok bool) {
	if len(m.clusters) == 0 || name == "" {
		return m, true
	}
	if c, found := m.clusters[name]; found {
		return c, true
	}
	return m.clusters[m.order[0]], false
}

// perCluster lists the configuration of each cluster, the default one first.
func (m *MeshConfig) perCluster() []*MeshConfig {
	if len(m.clusters) == 0 {
		return []*MeshConfig{m}
	}
	out := make([]*MeshConfig, 0, len(m.order))
	for _, name := range m.order {
		out = append(out, m.clusters[name])
	}
	return out
}

// Resolver resolves effective PeerAuthentication modes, the way the lint rules do.
func (m *MeshConfig) Resolver() *mesh.Resolver { return m.resolver }

// meshNamespaces lists every namespace the configuration mentions, sorted.
func (m *MeshConfig) meshNamespaces() []string {
	set := map[string]bool{}
	for _, ns := range m.Namespaces {
		set[ns] = true
	}
	for _, o := range m.Objects {
		// A Service is read only as context: its namespace need not be in the mesh.
		if o.Namespace != "" && !manifest.InventoryOnly(o.Kind) {
			set[o.Namespace] = true
		}
	}
	for _, ns := range m.resolver.Namespaces() {
		set[ns] = true
	}
	out := make([]string, 0, len(set))
	for ns := range set {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out
}

// ConfigSource provides the mesh configuration; the checker reads it every cycle, so a changed
// policy is seen without a restart.
type ConfigSource interface {
	Load(ctx context.Context) (*MeshConfig, error)
	// String names the source in errors and logs.
	String() string
}

// FileSource reads manifests from files and directories (`--config-from DIR`).
type FileSource struct {
	Paths         []string
	RootNamespace string
	// MaxWorkloadLabelSets bounds the pod label sets kept (0: DefaultMaxWorkloadLabelSets).
	MaxWorkloadLabelSets int
}

// Load reads the files again. Documents that fail Istio's schema are skipped (lint reports
// them); an unreadable path is an error.
func (f FileSource) Load(context.Context) (*MeshConfig, error) {
	res, err := manifest.Loader{}.Load(f.Paths)
	if err != nil {
		return nil, fmt.Errorf("load mesh config from %s: %w", f.String(), err)
	}
	m := NewMeshConfig(f.RootNamespace, res.Objects, nil)
	limit := f.MaxWorkloadLabelSets
	if limit == 0 {
		limit = DefaultMaxWorkloadLabelSets
	}
	if m.Workloads = workloadsFromManifests(m.resolver, res.Objects, limit); m.Workloads == nil {
		m.WorkloadsUnknown = "no Pod, Deployment, StatefulSet or DaemonSet manifest beside the PeerAuthentications"
	}
	return m, nil
}

func (f FileSource) String() string { return fmt.Sprintf("files %v", f.Paths) }

// StaticSource is a fixed configuration (tests, and callers that load it themselves).
type StaticSource struct{ Config *MeshConfig }

// Load returns the fixed configuration.
func (s StaticSource) Load(context.Context) (*MeshConfig, error) { return s.Config, nil }

func (s StaticSource) String() string { return "static configuration" }

// meshHostNamespace reads the namespace of a service host as Istio's metrics report it (a full
// name); a dot-less value such as "unknown" names no service.
func meshHostNamespace(host, domain string) (string, bool) {
	if !strings.Contains(host, ".") {
		return "", false
	}
	return mesh.HostNamespace(host, "", domain)
}
