package mesh

import (
	"slices"
	"sort"
	"strconv"

	"github.com/meshguard/meshguard/internal/manifest"
)

// Mode is a PeerAuthentication mTLS mode.
type Mode string

const (
	ModeUnset      Mode = "UNSET"
	ModeStrict     Mode = "STRICT"
	ModePermissive Mode = "PERMISSIVE"
	ModeDisable    Mode = "DISABLE"
)

// Level says which policy decided a workload's mode.
type Level string

const (
	LevelDefault   Level = "default" // no policy at all: Istio's default, PERMISSIVE
	LevelMesh      Level = "mesh"
	LevelNamespace Level = "namespace"
	LevelWorkload  Level = "workload"
	LevelPort      Level = "port"
)

// Policy is the part of a PeerAuthentication that decides mTLS.
type Policy struct {
	Object    *manifest.Object
	Namespace string
	Name      string
	Selector  map[string]string
	Mode      Mode
	Ports     map[uint32]Mode
}

// Effective is the mode in force for a workload and the policy that set it.
type Effective struct {
	Mode   Mode
	Level  Level
	Policy *Policy // nil for LevelDefault
	Ports  map[uint32]Mode
}

// Resolver resolves the effective PeerAuthentication of workloads the way Istio does: a
// workload policy overrides its namespace's, which overrides the mesh-wide one in the root
// namespace; UNSET inherits; among competing policies at one level the oldest wins.
type Resolver struct {
	root       string
	mesh       *Policy
	namespaces map[string]*Policy
	workloads  map[string][]*Policy
}

// NewResolver indexes the PeerAuthentications among objects (other kinds are ignored).
func NewResolver(rootNamespace string, objects []*manifest.Object) *Resolver {
	r := &Resolver{root: rootNamespace, namespaces: map[string]*Policy{}, workloads: map[string][]*Policy{}}
	var pas []*manifest.Object
	for _, o := range objects {
		if o.Kind == manifest.KindPeerAuthentication {
			pas = append(pas, o)
		}
	}
	// Oldest first, then by name, so the first policy stored at a level is the one Istio picks.
	sort.SliceStable(pas, func(i, j int) bool {
		if pas[i].Created != pas[j].Created {
			return pas[i].Created < pas[j].Created
		}
		return pas[i].Namespace+"/"+pas[i].Name < pas[j].Namespace+"/"+pas[j].Name
	})
	for _, o := range pas {
		p := PolicyOf(o)
		switch {
		case len(p.Selector) > 0 && p.Namespace == rootNamespace:
			// ComposePeerAuthentication ignores policies with a selector in the root namespace.
		case len(p.Selector) > 0:
			r.workloads[p.Namespace] = append(r.workloads[p.Namespace], p)
		case p.Namespace == rootNamespace:
			if r.mesh == nil {
				r.mesh = p
			}
		default:
			if r.namespaces[p.Namespace] == nil {
				r.namespaces[p.Namespace] = p
			}
		}
	}
	return r
}

// PolicyOf reads the mTLS settings of a PeerAuthentication object.
func PolicyOf(o *manifest.Object) *Policy {
	spec := o.SpecMap()
	p := &Policy{Object: o, Namespace: nsOf(o), Name: o.Name, Mode: ModeUnset, Selector: MatchLabels(spec["selector"])}
	p.Mode = modeOf(spec["mtls"])
	if ports, ok := spec["portLevelMtls"].(map[string]any); ok {
		p.Ports = map[uint32]Mode{}
		for k, v := range ports {
			if n, err := strconv.ParseUint(k, 10, 32); err == nil {
				p.Ports[uint32(n)] = modeOf(v)
			}
		}
	}
	return p
}

func modeOf(v any) Mode {
	m, _ := v.(map[string]any)
	if s, ok := m["mode"].(string); ok && s != "" {
		return Mode(s)
	}
	return ModeUnset
}

// MeshWide returns the mesh-wide policy, or nil.
func (r *Resolver) MeshWide() *Policy { return r.mesh }

// Namespace resolves the mode for a namespace's workloads that no workload policy selects.
func (r *Resolver) Namespace(ns string) Effective {
	e := Effective{Mode: ModePermissive, Level: LevelDefault}
	if r.mesh != nil && r.mesh.Mode != ModeUnset {
		e = Effective{Mode: r.mesh.Mode, Level: LevelMesh, Policy: r.mesh}
	} else if r.mesh != nil {
		e.Level, e.Policy = LevelMesh, r.mesh
	}
	if p := r.namespaces[ns]; p != nil && p.Mode != ModeUnset {
		e = Effective{Mode: p.Mode, Level: LevelNamespace, Policy: p}
	}
	return e
}

// Workload resolves the mode for a workload with labels in namespace ns.
func (r *Resolver) Workload(ns string, labels map[string]string) Effective {
	e := r.Namespace(ns)
	for _, p := range r.workloads[ns] {
		if !selects(p.Selector, labels) {
			continue
		}
		e = p.over(e)
		break // the oldest matching workload policy wins
	}
	return e
}

// over applies workload policy p over the namespace's (or mesh's) effective policy: UNSET
// inherits, at the workload level and on each of its ports.
func (p *Policy) over(base Effective) Effective {
	e := base
	if p.Mode != ModeUnset {
		e = Effective{Mode: p.Mode, Level: LevelWorkload, Policy: p}
	} else {
		e.Level, e.Policy = LevelWorkload, p
	}
	if len(p.Ports) > 0 {
		e.Ports = make(map[uint32]Mode, len(p.Ports))
		for port, m := range p.Ports {
			if m == ModeUnset {
				m = e.Mode
			}
			e.Ports[port] = m
		}
	}
	return e
}

// MTLS resolves the mode a workload with labels in namespace ns accepts on port (0 for the
// workload as a whole), as ComposePeerAuthentication (pilot/pkg/security/authn/policy_applier.go)
// does: mesh, then namespace, then the oldest workload policy selecting it; UNSET inherits; a
// port-level setting of the workload policy decides its port.
func (r *Resolver) MTLS(ns string, labels map[string]string, port uint32) Effective {
	return r.Workload(ns, labels).OnPort(port)
}

// OnPort narrows an effective policy to one port: the workload policy's port-level mode where
// it has one.
func (e Effective) OnPort(port uint32) Effective {
	if m, ok := e.Ports[port]; ok && port != 0 {
		return Effective{Mode: m, Level: LevelPort, Policy: e.Policy}
	}
	return Effective{Mode: e.Mode, Level: e.Level, Policy: e.Policy}
}

// AnyPort stands for a workload port whose number is not known (a Service's named
// targetPort): any port-level mode of a workload policy may then be the one in force.
const AnyPort = ^uint32(0)

// onPorts narrows an effective policy to port, or, for AnyPort, lists the workload-wide mode and
// every port-level one.
func (e Effective) onPorts(port uint32) []Effective {
	if port != AnyPort {
		return []Effective{e.OnPort(port)}
	}
	ports := make([]uint32, 0, len(e.Ports))
	for p := range e.Ports {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	out := []Effective{e.OnPort(0)}
	for _, p := range ports {
		out = append(out, e.OnPort(p))
	}
	return out
}

// Possible resolves the modes workloads may have when only some of their labels are known (a
// Service's selector, or Istio's `app` label convention): a workload policy whose selector
// needs labels that are not known may or may not select them. The result lists every mode
// some of those workloads may accept on port, each with the policy that sets it, oldest
// policy first; it ends at the first policy that surely selects them, or with the namespace's.
func (r *Resolver) Possible(ns string, known map[string]string, port uint32) []Effective {
	base := r.Namespace(ns)
	var out []Effective
	for _, p := range r.workloads[ns] {
		if !compatible(p.Selector, known) {
			continue
		}
		out = append(out, p.over(base).onPorts(port)...)
		if selects(p.Selector, known) {
			return out
		}
	}
	return append(out, base)
}

// compatible tells whether a selector may select workloads whose known labels are known: no
// label it needs has another value there.
func compatible(selector, known map[string]string) bool {
	for k, v := range selector {
		if got, ok := known[k]; ok && got != v {
			return false
		}
	}
	return true
}

// StrictNamespaces lists the namespaces among candidates whose namespace-level mode is STRICT.
func (r *Resolver) StrictNamespaces(candidates []string) []string {
	var out []string
	for _, ns := range candidates {
		if r.Namespace(ns).Mode == ModeStrict {
			out = append(out, ns)
		}
	}
	return out
}

// Namespaces lists every namespace that has a PeerAuthentication.
func (r *Resolver) Namespaces() []string {
	set := map[string]bool{}
	if r.mesh != nil {
		set[r.mesh.Namespace] = true
	}
	for ns := range r.namespaces {
		set[ns] = true
	}
	for ns := range r.workloads {
		set[ns] = true
	}
	out := make([]string, 0, len(set))
	for ns := range set {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out
}

// WorkloadPolicies lists the workload-scoped policies of a namespace, oldest first.
func (r *Resolver) WorkloadPolicies(ns string) []*Policy { return r.workloads[ns] }

func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
