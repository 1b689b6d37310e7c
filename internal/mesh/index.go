package mesh

import (
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/meshguard/meshguard/internal/manifest"
)

// Service is what the model needs of a Kubernetes Service: which pods it selects and how its
// ports map to theirs.
type Service struct {
	Namespace, Name string
	Selector        map[string]string
	// TargetPorts maps each service port to the pods' port (AnyPort for a named targetPort,
	// whose number only the pods know); a port missing here targets itself.
	TargetPorts map[uint32]uint32
}

// ServiceOf reads what the model needs of a core v1 Service object: its selector and each
// port's targetPort. Nothing else of it is read.
func ServiceOf(o *manifest.Object) Service {
	spec := o.SpecMap()
	s := Service{Namespace: nsOf(o), Name: o.Name, TargetPorts: map[uint32]uint32{}}
	if sel, ok := spec["selector"].(map[string]any); ok && len(sel) > 0 {
		s.Selector = make(map[string]string, len(sel))
		for k, v := range sel {
			s.Selector[k], _ = v.(string)
		}
	}
	ports, _ := spec["ports"].([]any)
	for _, p := range ports {
		pm, _ := p.(map[string]any)
		port, ok := portNumber(pm["port"])
		if !ok {
			continue
		}
		target, ok := portNumber(pm["targetPort"])
		switch {
		case pm["targetPort"] == nil:
			target = port // Kubernetes' default
		case !ok:
			target = AnyPort // a container port's name
		}
		s.TargetPorts[port] = target
	}
	return s
}

func portNumber(v any) (uint32, bool) {
	n := manifest.Int(v)
	return uint32(n), n >= 1 && n <= 65535
}

// Index answers Istio's questions about one set of objects: which DestinationRule applies to a
// host for a caller, and which mTLS mode the workloads behind a host accept. It is immutable;
// With returns a changed copy that shares everything the change does not touch.
type Index struct {
	root, domain string
	objects      map[string][]*manifest.Object // DestinationRules by namespace
	drs          map[string]*destinationRules
	pas          []*manifest.Object
	vss          []*manifest.Object
	mtls         *Resolver
	services     map[string]Service // by FQDN
}

// NewIndex indexes the DestinationRules, PeerAuthentications and VirtualServices among objects,
// and services.
// root is Istio's root namespace, domain the cluster domain ("" for cluster.local).
func NewIndex(root, domain string, objects []*manifest.Object, services []Service) *Index {
	ix := &Index{root: root, domain: orDomain(domain), objects: map[string][]*manifest.Object{},
		drs: map[string]*destinationRules{}, services: map[string]Service{}}
	for _, o := range objects {
		switch o.Kind {
		case manifest.KindDestinationRule:
			ix.objects[nsOf(o)] = append(ix.objects[nsOf(o)], o)
		case manifest.KindPeerAuthentication:
			ix.pas = append(ix.pas, o)
		case manifest.KindVirtualService:
			ix.vss = append(ix.vss, o)
		}
	}
	for ns, objs := range ix.objects {
		ix.drs[ns] = newDestinationRules(ns, root, objs, ix.domain)
	}
	ix.mtls = NewResolver(root, ix.pas)
	for _, s := range services {
		ix.services[s.Name+"."+s.Namespace+".svc."+ix.domain] = s
	}
	return ix
}

// With returns the index as it would be with obj in place of its stored version (same kind,
// namespace and name), or without it when remove is set. Only what obj touches is rebuilt: the
// DestinationRules of its namespace, the VirtualServices, or the PeerAuthentications.
func (ix *Index) With(obj *manifest.Object, remove bool) *Index {
	out := *ix
	switch obj.Kind {
	case manifest.KindDestinationRule:
		ns := nsOf(obj)
		var objs []*manifest.Object
		for _, o := range ix.objects[ns] {
			if o.Name != obj.Name {
				objs = append(objs, o)
			}
		}
		if !remove {
			objs = append(objs, obj)
		}
		out.objects = maps.Clone(ix.objects)
		out.drs = maps.Clone(ix.drs)
		out.objects[ns] = objs
		out.drs[ns] = newDestinationRules(ns, ix.root, objs, ix.domain)
	case manifest.KindVirtualService:
		out.vss = nil
		for _, o := range ix.vss {
			if o.Namespace != obj.Namespace || o.Name != obj.Name {
				out.vss = append(out.vss, o)
			}
		}
		if !remove {
			out.vss = append(out.vss, obj)
		}
	case manifest.KindPeerAuthentication:
		out.pas = nil
		for _, o := range ix.pas {
			if o.Namespace != obj.Namespace || o.Name != obj.Name {
				out.pas = append(out.pas, o)
			}
		}
		if !remove {
			out.pas = append(out.pas, obj)
		}
		out.mtls = NewResolver(ix.root, out.pas)
	}
	return &out
}

// Root is Istio's root namespace; Domain the cluster domain.
func (ix *Index) Root() string   { return ix.root }
func (ix *Index) Domain() string { return ix.domain }

// Resolver resolves PeerAuthentications per namespace and workload.
func (ix *Index) Resolver() *Resolver { return ix.mtls }

// MTLS is the mTLS mode a workload with labels in namespace ns accepts on port (0 for the
// workload as a whole), as ComposePeerAuthentication resolves it.
func (ix *Index) MTLS(ns string, labels map[string]string, port uint32) Effective {
	return ix.mtls.MTLS(ns, labels, port)
}

// DestinationRule returns the DestinationRule Istio applies to traffic from a sidecar in
// namespace caller to host (a full name), or nil. The service's namespace is the host's own.
func (ix *Index) DestinationRule(host, caller string) *DestinationRule {
	svcNS, _ := HostNamespace(host, caller, ix.domain)
	return ix.DestinationRuleFor(host, svcNS, caller)
}

// DestinationRuleFor is DestinationRule for a service whose namespace is known apart from its
// host (a ServiceEntry host, say); svcNS may be empty. It follows PushContext.destinationRule
// (pilot/pkg/model/push_context.go): the caller's namespace first, then rules the service's
// namespace exports to the caller, then those the root namespace exports; within a namespace the
// most specific host wins.
func (ix *Index) DestinationRuleFor(host, svcNS, caller string) *DestinationRule {
	if caller != ix.root {
		if d := ix.drs[caller]; d != nil {
			if l := lookup(d.local, host); l != nil {
				return catchAll(l)
			}
		}
	} else if d := ix.drs[ix.root]; d != nil {
		if l := lookup(d.rootLocal, host); l != nil {
			return catchAll(l)
		}
	}
	for _, ns := range []string{svcNS, ix.root} {
		if d := ix.drs[ns]; ns != "" && d != nil {
			if l := exportedTo(lookup(d.exported, host), caller); len(l) > 0 {
				return catchAll(l)
			}
		}
	}
	return nil
}

// HostMTLS is what the workloads behind a host accept.
type HostMTLS struct {
	// Namespace is the host's namespace.
	Namespace string
	// Workloads says how the workloads were found: from a Service's selector, or, without one,
	// by Istio's convention that a service's pods carry `app: <service name>`.
	Workloads string
	// Modes are the modes those workloads may accept, each with the policy that sets it.
	Modes []Effective
}

// Strict tells whether every workload behind the host surely requires mutual TLS.
func (h HostMTLS) Strict() bool {
	for _, e := range h.Modes {
		if e.Mode != ModeStrict {
			return false
		}
	}
	return len(h.Modes) > 0
}

// HostMTLS resolves the mTLS modes of the workloads behind host (as written in an object of
// namespace ns) on a service port (0 for all ports). A host naming one service reaches the pods
// its Service selects; a wildcard over one namespace reaches that namespace's workloads that no
// workload policy selects; a wildcard spanning namespaces, those of namespaces without a policy
// of their own. ok is false for hosts outside the mesh.
func (ix *Index) HostMTLS(host, ns string, port uint32) (HostMTLS, bool) {
	fqdn := FQDN(host, ns, ix.domain)
	if !IsMeshHost(fqdn, ix.domain) {
		return HostMTLS{}, false
	}
	hostNS, ok := HostNamespace(fqdn, ns, ix.domain)
	if !ok {
		return HostMTLS{Workloads: "workloads of every namespace without a PeerAuthentication of its own",
			Modes: []Effective{ix.mtls.Namespace("")}}, true
	}
	name, ok := ServiceName(fqdn, ix.domain)
	if !ok {
		return HostMTLS{Namespace: hostNS, Workloads: "workloads of namespace " + hostNS + " that no workload policy selects",
			Modes: []Effective{ix.mtls.Namespace(hostNS)}}, true
	}
	targets := []uint32{port}
	labels := map[string]string{"app": name}
	how := "pods labelled app=" + name + " (Istio's convention; no Service " + hostNS + "/" + name + " is known)"
	if svc, found := ix.services[fqdn]; found {
		labels, how = svc.Selector, "pods selected by Service "+hostNS+"/"+name
		if len(svc.Selector) == 0 {
			// Its endpoints are managed by hand: they may be any workload of the namespace.
			how = "endpoints of Service " + hostNS + "/" + name + " (no selector)"
		}
		switch t, ok := svc.TargetPorts[port]; {
		case port != 0 && ok:
			targets = []uint32{t}
		case port == 0 && len(svc.TargetPorts) > 0:
			// The host as a whole is every port of its Service, so the pods' ports they target.
			targets = slices.Compact(slices.Sorted(maps.Values(svc.TargetPorts)))
		}
	}
	var modes []Effective
	for _, t := range targets {
		for _, e := range ix.mtls.Possible(hostNS, labels, t) {
			if !slices.ContainsFunc(modes, func(m Effective) bool { return m.Mode == e.Mode && m.Level == e.Level && m.Policy == e.Policy }) {
				modes = append(modes, e)
			}
		}
	}
	return HostMTLS{Namespace: hostNS, Workloads: how, Modes: modes}, true
}

// SelectedMTLS resolves the modes of the workloads a policy selects, as Istio scopes
// AuthorizationPolicies: with a selector, the workloads of ns carrying those labels (in the root
// namespace, of every namespace); without one, every workload of ns (of the mesh in the root
// namespace), of which those no workload policy selects have the namespace's mode.
func (ix *Index) SelectedMTLS(ns string, selector map[string]string) HostMTLS {
	switch {
	case ns == ix.root:
		return HostMTLS{Workloads: "workloads of every namespace without a PeerAuthentication of its own",
			Modes: []Effective{ix.mtls.Namespace("")}}
	case len(selector) > 0:
		return HostMTLS{Namespace: ns, Workloads: "workloads selected by " + labelString(selector),
			Modes: ix.mtls.Possible(ns, selector, 0)}
	}
	return HostMTLS{Namespace: ns, Workloads: "workloads of namespace " + ns + " that no workload PeerAuthentication selects",
		Modes: []Effective{ix.mtls.Namespace(ns)}}
}

func labelString(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ",")
}
