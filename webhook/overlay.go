package webhook

import (
	"slices"
	"sync"

	"github.com/meshguard/meshguard/internal/engine"
	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/meshguard/meshguard/internal/mesh"
)

// overlay is the inventory as it would be if the change under review were admitted: base with
// obj in place of its stored version, or without it when remove is set. It answers what a new
// index of the changed objects would (overlay_test.go checks), but copies only the lists a rule
// actually asks for, and only when obj belongs in them, instead of re-indexing the whole cluster
// on every review: a review asks for one or two short lists, while the cluster may hold
// thousands of objects.
type overlay struct {
	base   engine.Inventory
	obj    *manifest.Object
	remove bool

	once sync.Once
	mesh *mesh.Index
}

var _ engine.Inventory = (*overlay)(nil)

func newOverlay(base engine.Inventory, obj *manifest.Object, remove bool) *overlay {
	return &overlay{base: base, obj: obj, remove: remove}
}

func (o *overlay) List(kind, namespace string) []*manifest.Object {
	list := o.base.List(kind, namespace)
	if kind != o.obj.Kind || (namespace != "" && namespace != o.obj.Namespace) {
		return list
	}
	return o.replace(list, !o.remove)
}

// Mesh rebuilds only what obj changes in Istio's model (the DestinationRules of its namespace,
// or the PeerAuthentications), once per review.
func (o *overlay) Mesh() *mesh.Index {
	o.once.Do(func() {
		o.mesh = o.base.Mesh()
		if o.obj.Kind == manifest.KindDestinationRule || o.obj.Kind == manifest.KindPeerAuthentication {
			o.mesh = o.mesh.With(o.obj, o.remove)
		}
	})
	return o.mesh
}

func (o *overlay) Complete() bool { return o.base.Complete() }

// replace returns list without obj's stored version, with obj appended when include is set. The
// base list is never modified (it belongs to a shared snapshot).
func (o *overlay) replace(list []*manifest.Object, include bool) []*manifest.Object {
	if !include && !slices.ContainsFunc(list, o.same) {
		return list
	}
	out := make([]*manifest.Object, 0, len(list)+1)
	for _, x := range list {
		if !o.same(x) {
			out = append(out, x)
		}
	}
	if include {
		out = append(out, o.obj)
	}
	return out
}

// same compares identities field by field: Key() would build a string per list element.
func (o *overlay) same(x *manifest.Object) bool {
	return x.Name == o.obj.Name && x.Namespace == o.obj.Namespace && x.Kind == o.obj.Kind
}
