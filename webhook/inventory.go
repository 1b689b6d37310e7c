package webhook

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/meshguard/meshguard/internal/engine"
	"github.com/meshguard/meshguard/internal/manifest"
)

// ErrNotSynced is returned by Cache.Inventory until every informer has delivered its initial
// list: a review against a partial inventory could miss a conflict or report a false absence.
var ErrNotSynced = errors.New("the inventory cache has not synced yet")

// Cache is the cluster's Istio objects of the checked kinds, and its Services, as the rules read
// them. It is fed by informers (one per kind, in the version the cluster prefers among those
// served: every version of a kind is the same object, so one watch sees them all) and hands out
// immutable, complete inventories. An index is rebuilt lazily, on the first review after a
// change, so a burst of events costs one rebuild, and reviews between changes share one index.
type Cache struct {
	log     logr.Logger
	metrics *Metrics

	mu      sync.Mutex
	objects map[string]*manifest.Object // by Key()
	gen     atomic.Uint64               // bumped on every change
	snap    atomic.Pointer[snapshot]

	synced []func() bool
}

type snapshot struct {
	gen          uint64
	root, domain string
	index        *engine.Index
}

// NewCache returns an empty cache. metrics may be nil.
func NewCache(log logr.Logger, metrics *Metrics) *Cache {
	return &Cache{log: log, metrics: metrics, objects: map[string]*manifest.Object{}}
}

// Watch registers the cache's handlers on informers for kinds: the checked kinds, and Services
// (which tell the workloads behind a host) where meshguard may read them. Call it before the
// informers start (the manager starts them); it does not block for the initial list.
func (c *Cache) Watch(ctx context.Context, informers cache.Informers, mapper meta.RESTMapper, kinds []string) error {
	for _, kind := range kinds {
		group, versions := manifest.GroupVersions(kind)
		mapping, err := mapper.RESTMapping(schema.GroupKind{Group: group, Kind: kind}, versions...)
		if err != nil && group == "" {
			return fmt.Errorf("watch %s: %w", kind, err)
		}
		if err != nil {
			return fmt.Errorf("watch %s.%s: is the Istio CRD installed? %w", kind, group, err)
		}
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(mapping.GroupVersionKind)
		inf, err := informers.GetInformer(ctx, u, cache.BlockUntilSynced(false))
		if err != nil {
			return fmt.Errorf("watch %s: %w", mapping.GroupVersionKind, err)
		}
		reg, err := inf.AddEventHandler(c.handler(kind))
		if err != nil {
			return fmt.Errorf("watch %s: %w", mapping.GroupVersionKind, err)
		}
		c.synced = append(c.synced, reg.HasSynced)
		c.log.Info("watching", "kind", kind, "version", mapping.GroupVersionKind.Version)
	}
	return nil
}

func (c *Cache) handler(kind string) toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.upsert(kind, obj) },
		UpdateFunc: func(_, obj any) { c.upsert(kind, obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if u, ok := obj.(*unstructured.Unstructured); ok {
				c.Delete(kind, u.GetNamespace(), u.GetName())
			}
		},
	}
}

func (c *Cache) upsert(kind string, obj any) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		c.log.Error(fmt.Errorf("got %T", obj), "unexpected informer object", "kind", kind)
		return
	}
	// The informer's map is shared with its store: Normalize copies it.
	raw := manifest.Normalize(u.Object).(map[string]any)
	if err := c.Put(raw); err != nil {
		c.log.Error(err, "object left out of the inventory", "kind", kind, "namespace", u.GetNamespace(), "name", u.GetName())
	}
}

// Put adds or replaces an object, given in its generic form. An object that fails the strict
// check is kept anyway (the cluster holds it, and its other fields still configure the mesh);
// it is only an error when it is neither one of the checked kinds nor a Service.
func (c *Cache) Put(raw map[string]any) error {
	obj, problem := manifest.NewObject(raw)
	if obj == nil {
		if problem != nil {
			return fmt.Errorf("%s", problem.Error())
		}
		return errors.New("not a checked Istio kind")
	}
	if problem != nil {
		c.log.V(1).Info("stored object fails the strict check", "kind", obj.Kind, "namespace", obj.Namespace, "name", obj.Name, "path", problem.Path)
	}
	c.mu.Lock()
	c.objects[obj.Key()] = obj
	c.gen.Add(1)
	c.mu.Unlock()
	return nil
}

// Delete removes an object.
func (c *Cache) Delete(kind, namespace, name string) {
	c.mu.Lock()
	delete(c.objects, kind+"/"+namespace+"/"+name)
	c.gen.Add(1)
	c.mu.Unlock()
}

// Synced reports whether every informer has delivered its initial list to the cache.
func (c *Cache) Synced() bool {
	if len(c.synced) == 0 {
		return false
	}
	for _, s := range c.synced {
		if !s() {
			return false
		}
	}
	return true
}

// ReadyCheck is a healthz.Checker: ready once the cache has synced.
func (c *Cache) ReadyCheck(*http.Request) error {
	if !c.Synced() {
		return ErrNotSynced
	}
	return nil
}

// MarkSynced makes a cache that is fed by Put and Delete (tests, tools) report itself synced.
func (c *Cache) MarkSynced() { c.synced = append(c.synced, func() bool { return true }) }

// Inventory returns the complete inventory as of now, indexed for rootNamespace and domain.
func (c *Cache) Inventory(rootNamespace, domain string) (engine.Inventory, error) {
	if !c.Synced() {
		return nil, ErrNotSynced
	}
	gen := c.gen.Load()
	if s := c.snap.Load(); s != nil && s.gen == gen && s.root == rootNamespace && s.domain == domain {
		return s.index, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Another review may have rebuilt it while this one waited.
	gen = c.gen.Load()
	if s := c.snap.Load(); s != nil && s.gen == gen && s.root == rootNamespace && s.domain == domain {
		return s.index, nil
	}
	objects := make([]*manifest.Object, 0, len(c.objects))
	counts := map[string]int{}
	for _, o := range c.objects {
		objects = append(objects, o)
		counts[o.Kind]++
	}
	// A stable order, so that reviews do not depend on map iteration.
	slices.SortFunc(objects, func(a, b *manifest.Object) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	s := &snapshot{gen: gen, root: rootNamespace, domain: domain,
		index: engine.NewIndex(objects, true, rootNamespace, domain)}
	c.snap.Store(s)
	if c.metrics != nil {
		for _, k := range append(manifest.Kinds(), manifest.KindService) {
			c.metrics.inventory.WithLabelValues(k).Set(float64(counts[k]))
		}
	}
	return s.index, nil
}
