package engine

import (
	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/meshguard/meshguard/internal/mesh"
)

// Inventory is every object a review may compare against: the files of a lint run, or the
// cluster's objects in the webhook and the audit.
type Inventory interface {
	// List returns the objects of kind in namespace, or in every namespace when namespace is "".
	List(kind, namespace string) []*manifest.Object
	// Mesh is Istio's model of the objects: which DestinationRule applies to a host, which mTLS
	// mode a workload accepts.
	Mesh() *mesh.Index
	// Complete tells whether the inventory is the whole configuration, so that rules reporting
	// something missing may run.
	Complete() bool
}

// Index is an immutable Inventory over a set of objects.
type Index struct {
	complete bool
	byKind   map[string][]*manifest.Object
	byKindNS map[string][]*manifest.Object
	mesh     *mesh.Index
}

// NewIndex indexes objects, Services among them (they tell which workloads are behind a host).
// rootNamespace and domain resolve policies and hosts as Istio does.
func NewIndex(objects []*manifest.Object, complete bool, rootNamespace, domain string) *Index {
	ix := &Index{
		complete: complete,
		byKind:   map[string][]*manifest.Object{},
		byKindNS: map[string][]*manifest.Object{},
	}
	var services []mesh.Service
	for _, o := range objects {
		ix.byKind[o.Kind] = append(ix.byKind[o.Kind], o)
		k := o.Kind + "/" + o.Namespace
		ix.byKindNS[k] = append(ix.byKindNS[k], o)
		if o.Kind == manifest.KindService {
			services = append(services, mesh.ServiceOf(o))
		}
	}
	ix.mesh = mesh.NewIndex(rootNamespace, domain, objects, services)
	return ix
}

func (ix *Index) List(kind, namespace string) []*manifest.Object {
	if namespace == "" {
		return ix.byKind[kind]
	}
	return ix.byKindNS[kind+"/"+namespace]
}

func (ix *Index) Mesh() *mesh.Index { return ix.mesh }
func (ix *Index) Complete() bool    { return ix.complete }

func specString(o *manifest.Object, field string) string {
	spec := o.SpecMap()
	s, _ := spec[field].(string)
	return s
}
