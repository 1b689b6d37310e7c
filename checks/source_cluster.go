package checks

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	istioclient "istio.io/client-go/pkg/clientset/versioned"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/meshguard/meshguard/internal/manifest"
)

// clusterListPage bounds one list call, so a big cluster is read in pages instead of one
// response the API server has to build in memory.
const clusterListPage = 500

// ClusterSource reads the mesh configuration through the Kubernetes API with istio.io/client-go.
type ClusterSource struct {
	Istio istioclient.Interface
	// Kube lists namespaces to find the ones in the mesh; nil skips that (TelemetryBlind then
	// only knows namespaces that hold Istio objects).
	Kube          kubernetes.Interface
	RootNamespace string
	// Kinds are the manifest kinds to list; default PeerAuthentication only (what `check`
	// needs). `graph` adds VirtualService and DestinationRule.
	Kinds []string
	// Host names the API server in errors.
	Host string
}

// RESTConfig returns the client config for kubeconfig, or the default loading rules (KUBECONFIG,
// ~/.kube/config, then the in-cluster service account) when kubeconfig is empty.
func RESTConfig(kubeconfig string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		if kubeconfig == "" {
			return nil, fmt.Errorf("find the cluster (no --kubeconfig, no KUBECONFIG or ~/.kube/config, not in a pod): %w", err)
		}
		return nil, fmt.Errorf("read kubeconfig %s: %w", kubeconfig, err)
	}
	return cfg, nil
}

// NewClusterSource builds the clients for cfg.
func NewClusterSource(cfg *rest.Config, rootNamespace string, kinds ...string) (*ClusterSource, error) {
	ic, err := istioclient.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("istio client for %s: %w", cfg.Host, err)
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client for %s: %w", cfg.Host, err)
	}
	return &ClusterSource{Istio: ic, Kube: kc, RootNamespace: rootNamespace, Kinds: kinds, Host: cfg.Host}, nil
}

func (c *ClusterSource) String() string { return "cluster " + c.Host }

// Load lists the objects and the mesh namespaces.
func (c *ClusterSource) Load(ctx context.Context) (*MeshConfig, error) {
	kinds := c.Kinds
	if len(kinds) == 0 {
		kinds = []string{manifest.KindPeerAuthentication}
	}
	var objects []*manifest.Object
	for _, kind := range kinds {
		got, err := c.list(ctx, kind)
		if err != nil {
			return nil, fmt.Errorf("list %ss in %s: %w", kind, c, err)
		}
		objects = append(objects, got...)
	}
	var namespaces []string
	if c.Kube != nil {
		var err error
		if namespaces, err = c.meshNamespaces(ctx); err != nil {
			return nil, fmt.Errorf("list namespaces in %s: %w", c, err)
		}
	}
	return NewMeshConfig(c.RootNamespace, objects, namespaces), nil
}

// list reads every object of kind, page by page, as manifest Objects.
func (c *ClusterSource) list(ctx context.Context, kind string) ([]*manifest.Object, error) {
	var out []*manifest.Object
	opts := metav1.ListOptions{Limit: clusterListPage}
	for {
		var items []any
		var cont string
		switch kind {
		case manifest.KindPeerAuthentication:
			l, err := c.Istio.SecurityV1().PeerAuthentications("").List(ctx, opts)
			if err != nil {
				return nil, err
			}
			for i := range l.Items {
				items = append(items, &l.Items[i])
			}
			cont = l.Continue
		case manifest.KindVirtualService:
			l, err := c.Istio.NetworkingV1().VirtualServices("").List(ctx, opts)
			if err != nil {
				return nil, err
			}
			for i := range l.Items {
				items = append(items, &l.Items[i])
			}
			cont = l.Continue
		case manifest.KindDestinationRule:
			l, err := c.Istio.NetworkingV1().DestinationRules("").List(ctx, opts)
			if err != nil {
				return nil, err
			}
			for i := range l.Items {
				items = append(items, &l.Items[i])
			}
			cont = l.Continue
		default:
			return nil, fmt.Errorf("kind %s is not listed by the checker", kind)
		}
		for _, it := range items {
			o, err := toObject(kind, it)
			if err != nil {
				return nil, err
			}
			if o != nil {
				out = append(out, o)
			}
		}
		if cont == "" {
			return out, nil
		}
		opts.Continue = cont
	}
}

// toObject turns a typed client-go object into a manifest Object through its JSON form (the
// istio.io/api specs marshal the way the API server stores them). List items carry no
// apiVersion and kind, so they are set here.
func toObject(kind string, item any) (*manifest.Object, error) {
	b, err := json.Marshal(item)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", kind, err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("decode %s: %w", kind, err)
	}
	group, versions := manifest.GroupVersions(kind)
	raw["apiVersion"] = group + "/" + versions[0]
	raw["kind"] = kind
	delete(raw, "status")
	// A spec the API server accepted but this istio.io/api version does not know still has the
	// fields the checker reads; keep the object.
	o, _ := manifest.NewObject(raw)
	return o, nil
}

// meshNamespaces lists the namespaces with sidecar injection or ambient enabled.
func (c *ClusterSource) meshNamespaces(ctx context.Context) ([]string, error) {
	var out []string
	opts := metav1.ListOptions{Limit: clusterListPage}
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
