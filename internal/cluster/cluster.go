// Package cluster reads the Istio objects meshguard checks from a Kubernetes cluster: the
// client config, and a paged list of every checked kind in the version the cluster prefers; and
// the workloads the service map names owners of (workloads.go).
// `meshguard audit`, `check` and `graph` read the cluster through it; `serve` watches it with
// informers instead.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/client/config"

	"github.com/meshguard/meshguard/internal/manifest"
)

// pageSize bounds one LIST call, so a big cluster is read in pages instead of one response the
// API server has to build in memory.
const pageSize = 500

// RESTConfig returns the client config of kubeconfig or, when it is empty, controller-runtime's
// default: $KUBECONFIG, the in-cluster service account, then ~/.kube/config.
func RESTConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		cfg, err := ctrlconfig.GetConfig()
		if err != nil {
			return nil, fmt.Errorf("find the cluster (no --kubeconfig, no KUBECONFIG, not in a pod, no ~/.kube/config): %w", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig}, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("read kubeconfig %s: %w", kubeconfig, err)
	}
	return cfg, nil
}

// ContextConfig returns the client config of one context of a kubeconfig file; an empty path
// reads $KUBECONFIG or ~/.kube/config, an empty context takes the file's current one.
func ContextConfig(kubeconfig, context string) (*rest.Config, error) {
	if context == "" {
		return RESTConfig(kubeconfig)
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules = &clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig}
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("read context %s of kubeconfig %s: %w", context, kubeconfig, err)
	}
	return cfg, nil
}

// Item is one listed object. Problem is set when its spec fails the strict check (what MG001
// reports); Object is set whenever the identity could be read, so a reader that only needs a
// few fields may keep an object the strict check refuses.
type Item struct {
	Object  *manifest.Object
	Problem *manifest.Problem
}

// List reads every object of kinds (all checked kinds and Services when empty). A kind the
// cluster does not serve is skipped with a line on warnings; none served at all is an error.
// Services may not be readable (RBAC): then a warning says that the workloads behind hosts are
// found by Istio's app label convention. Each item's File is its API path, which is what
// reports print.
func List(ctx context.Context, cfg *rest.Config, kinds []string, warnings io.Writer) ([]Item, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", cfg.Host, err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", cfg.Host, err)
	}
	all := append(manifest.Kinds(), manifest.KindService)
	if len(kinds) == 0 {
		kinds = all
	}
	var items []Item
	served := 0
	for _, kind := range all {
		if !slices.Contains(kinds, kind) {
			continue
		}
		group, versions := manifest.GroupVersions(kind)
		mapping, err := mapper.RESTMapping(schema.GroupKind{Group: group, Kind: kind}, versions...)
		if meta.IsNoMatchError(err) {
			fmt.Fprintf(warnings, "meshguard: the cluster serves no %s.%s; skipped\n", kind, group)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("look up %s.%s in %s: %w", kind, group, cfg.Host, err)
		}
		if !manifest.InventoryOnly(kind) {
			served++
		}
		gvr := mapping.Resource
		prefix := path.Join("/apis", gvr.Group, gvr.Version)
		if gvr.Group == "" {
			prefix = path.Join("/api", gvr.Version)
		}
		opts := metav1.ListOptions{Limit: pageSize}
	pages:
		for {
			list, err := dyn.Resource(gvr).List(ctx, opts)
			switch {
			case apierrors.IsForbidden(err) && manifest.InventoryOnly(kind):
				fmt.Fprintf(warnings, "meshguard: may not list %s (%v); the workloads behind a host are those labelled app: <service> (Istio's convention)\n", gvr.Resource, err)
				break pages
			case err != nil:
				return nil, fmt.Errorf("list %s in %s: %w", gvr.GroupResource(), cfg.Host, err)
			}
			for i := range list.Items {
				u := &list.Items[i]
				file := path.Join(prefix, "namespaces", u.GetNamespace(), gvr.Resource, u.GetName())
				obj, problem := manifest.NewObject(manifest.Normalize(u.Object).(map[string]any))
				if obj != nil {
					obj.File = file
				}
				if problem != nil {
					problem.File = file
				}
				if obj != nil || problem != nil {
					items = append(items, Item{Object: obj, Problem: problem})
				}
			}
			if opts.Continue = list.GetContinue(); opts.Continue == "" {
				break
			}
		}
	}
	if served == 0 {
		return nil, errors.New("the cluster serves none of the Istio kinds meshguard checks: are the Istio CRDs installed?")
	}
	return items, nil
}

// MayWatch asks the API server whether cfg's user may list and watch resource (of group, ""
// for the core group) in every namespace, as an informer does.
func MayWatch(ctx context.Context, cfg *rest.Config, group, resource string) (bool, error) {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return false, fmt.Errorf("connect to %s: %w", cfg.Host, err)
	}
	for _, verb := range []string{"list", "watch"} {
		review, err := kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
				Verb: verb, Group: group, Resource: resource,
			}},
		}, metav1.CreateOptions{})
		if err != nil {
			return false, fmt.Errorf("ask %s whether this user may %s %s: %w", cfg.Host, verb, resource, err)
		}
		if !review.Status.Allowed {
			return false, nil
		}
	}
	return true, nil
}
