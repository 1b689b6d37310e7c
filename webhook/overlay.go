package webhook

import (
	"slices"
	"sync"

	"github.com/meshguard/meshguard/internal/engine"
	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/meshguard/meshguard/internal/mesh"
)

// overlay is the inventory as it would be if the change under review were admitted: base with
// obj in place of its stored version, or without it when remove is set. It answers what
// engine.Overlay answers, but copies only the lists a rule actually asks for, and only when obj
// belongs in them, instead of re-indexing the whole cluster on every review: a review asks for
// one or two short lists, while the cluster may hold thousands of objects.
type overlay struct {
	base   engine.Inventory
	obj    *manifest.Object
	remove bool
	root   string
	// fqdn is obj's host when obj is a DestinationRule.
	fqdn string

	once     sync.Once
	resolver *mesh.Resolver
}

var _ engine.Inventory = (*overlay)(nil)

func newOverlay(base engine.Inventory, obj *manifest.Object, remove bool, root, domain string) *overlay {
	o := &overlay{base: base, obj: obj, remove: remove, root: root}
	if obj.Kind == manifest.KindDestinationRule {
		spec := obj.SpecMap()
		host, _ := spec["host"].(string)
		o.fqdn = mesh.FQDN(host, obj.Namespace, domain)
	}
	return o
}

func (o *overlay) List(kind, namespace string) []*manifest.Object {
	list := o.base.List(kind, namespace)
	if kind != o.obj.Kind || (namespace != "" && namespace != o.obj.Namespace) {
		return list
	}
	return o.replace(list, !o.remove)
}

func (o *overlay) DestinationRules(fqdn string) []*manifest.Object {
	list := o.base.DestinationRules(fqdn)
	if o.obj.Kind != manifest.KindDestinationRule {
		return list
	}
	// The stored version may name another host than the new one: drop it wherever it is.
	return o.replace(list, !o.remove && fqdn == o.fqdn)
}

func (o *overlay) MTLS() *mesh.Resolver {
	if o.obj.Kind != manifest.KindPeerAuthentication {
		return o.base.MTLS()
	}
	o.once.Do(func() {
		o.resolver = mesh.NewResolver(o.root, o.List(manifest.KindPeerAuthentication, ""))
	})
	return o.resolver
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
