package checks

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/prometheus/common/model"

	"github.com/meshguard/meshguard/internal/engine"
	"github.com/meshguard/meshguard/internal/mesh"
)

// Exception rule IDs that make PERMISSIVE mTLS deliberate: MG301 for a policy's mode, MG302 for a
// port-level mode (see the lint rule catalogue).
var mtlsExceptionRules = []string{"MG301", "MG302"}

// LabelCluster is the alert label naming the destination cluster.
const LabelCluster = "cluster"

// seriesCluster reads the destination cluster of a series (the label check.clusterLabels
// names); "" when it has none.
func (ec *evalContext) seriesCluster(m model.Metric) string {
	return labelValue(m, ec.settings.ClusterLabels.Destination)
}

// plaintextFlow is plaintext traffic from one source workload into one destination workload.
type plaintextFlow struct {
	cluster                                 string
	dstNamespace, dstWorkload, app, version string
	srcNamespace, srcWorkload               string
	requests, connections                   float64 // per second
}

func (f *plaintextFlow) labels() map[string]string {
	l := map[string]string{
		LabelNamespace:              f.dstNamespace,
		"destination_workload":      f.dstWorkload,
		"source_workload":           f.srcWorkload,
		"source_workload_namespace": f.srcNamespace,
	}
	if f.cluster != "" {
		l[LabelCluster] = f.cluster
	}
	return l
}

// figure is the alert value: requests per second, or connections per second for TCP-only flows.
func (f *plaintextFlow) figure() float64 {
	if f.requests > 0 {
		return f.requests
	}
	return f.connections
}

func (f *plaintextFlow) measured() string {
	var parts []string
	if f.requests > 0 {
		parts = append(parts, perSecond(f.requests, "req"))
	}
	if f.connections > 0 {
		parts = append(parts, perSecond(f.connections, "TCP connections"))
	}
	return strings.Join(parts, " and ")
}

func (f *plaintextFlow) signal() string {
	if f.requests > 0 {
		return SignalPlaintextRequests
	}
	return SignalPlaintextTCP
}

// plaintextFlows merges the request and TCP results by flow, dropping unwatched namespaces.
func plaintextFlows(ec *evalContext) []*plaintextFlow {
	byKey := map[string]*plaintextFlow{}
	var order []string
	add := func(signal string, tcp bool) {
		for _, s := range ec.results[signal] {
			f := plaintextFlow{
				cluster:      ec.seriesCluster(s.Metric),
				dstNamespace: labelValue(s.Metric, "destination_workload_namespace"),
				dstWorkload:  labelValue(s.Metric, "destination_workload"),
				app:          labelValue(s.Metric, "destination_app"),
				version:      labelValue(s.Metric, "destination_version"),
				srcNamespace: labelValue(s.Metric, "source_workload_namespace"),
				srcWorkload:  labelValue(s.Metric, "source_workload"),
			}
			if !ec.settings.watches(f.dstNamespace) {
				continue
			}
			k := strings.Join([]string{f.cluster, f.dstNamespace, f.dstWorkload, f.srcNamespace, f.srcWorkload}, "\xff")
			got, ok := byKey[k]
			if !ok {
				got = &f
				byKey[k] = got
				order = append(order, k)
			}
			if tcp {
				got.connections += float64(s.Value)
			} else {
				got.requests += float64(s.Value)
			}
		}
	}
	add(SignalPlaintextRequests, false)
	add(SignalPlaintextTCP, true)
	sort.Strings(order)
	out := make([]*plaintextFlow, len(order))
	for i, k := range order {
		out[i] = byKey[k]
	}
	return out
}

// judgeFlow judges the plaintext of a flow by the configuration of its destination cluster,
// against the labels of the destination workload's pods. Pods of one workload may differ in
// labels (a rollout in progress): the traffic is judged STRICT only if every one of them is,
// and a pod that lets plaintext in under an exception is the one named. Where the pods are not
// known, the app and version labels telemetry carries stand in, and basis says so.
func judgeFlow(m *MeshConfig, f *plaintextFlow) (v mtlsVerdict, basis string) {
	cm, known := m.ForCluster(f.cluster)
	if !known {
		basis = fmt.Sprintf("cluster %q is not configured: judged by the policies of cluster %s", f.cluster, cm.Cluster)
	}
	sets, ok := cm.Workloads.Labels(f.dstNamespace, f.dstWorkload)
	if !ok {
		why := cm.WorkloadsUnknown
		switch {
		case cm.Workloads == nil && why == "":
			why = "the configuration holds no pods"
		case cm.Workloads != nil:
			why = fmt.Sprintf("no running pod of workload %s/%s was found", f.dstNamespace, f.dstWorkload)
			if cm.Workloads.Dropped > 0 {
				why += fmt.Sprintf("; %d pod label sets were over the limit and not kept", cm.Workloads.Dropped)
			}
		}
		note := "pod labels unknown (" + why + "): selectors matched against destination_app and destination_version only"
		if basis != "" {
			note = basis + "; " + note
		}
		return judgeWorkload(cm, f.dstNamespace, workloadLabels(f.app, f.version)), note
	}
	for i, labels := range sets {
		got := judgeWorkload(cm, f.dstNamespace, labels)
		switch {
		case i == 0:
			v = got
		case !got.strict && (v.strict || (v.exception == nil && got.exception != nil)):
			v = got
		}
	}
	return v, basis
}

// workloadLabels are the pod labels Istio's metrics reveal: the canonical app and version. A
// workload selector on any other label cannot be matched from telemetry alone.
func workloadLabels(app, version string) map[string]string {
	l := map[string]string{}
	if app != "" && app != "unknown" {
		l["app"] = app
	}
	if version != "" && version != "unknown" {
		l["version"] = version
	}
	return l
}

// mtlsVerdict is what the configuration says about plaintext into one workload.
type mtlsVerdict struct {
	eff mesh.Effective
	// strict: every port of the workload refuses plaintext.
	strict bool
	// policy is the PeerAuthentication that lets plaintext in (when not strict).
	policy *mesh.Policy
	// exception is the meshguard exception on that policy, if any.
	exception *engine.Exception
}

func judgeWorkload(m *MeshConfig, namespace string, labels map[string]string) mtlsVerdict {
	r := m.Resolver()
	eff := r.Workload(namespace, labels)
	v := mtlsVerdict{eff: eff}
	switch {
	case eff.Level == mesh.LevelDefault:
		// No policy at all: Istio's default is PERMISSIVE and nothing was promised.
		return v
	case eff.Mode == mesh.ModeStrict:
		v.strict = true
		for _, mode := range eff.Ports {
			if mode != mesh.ModeStrict {
				// Telemetry has no port label, so plaintext may be using the open port.
				v.strict, v.policy = false, eff.Policy
				break
			}
		}
		if v.strict {
			return v
		}
	default:
		// The mode may be inherited by a policy that only sets ports: the exception belongs on
		// the policy that set the mode.
		v.policy = eff.Policy
		if eff.Policy == nil || eff.Policy.Mode != eff.Mode {
			v.policy = r.Namespace(namespace).Policy
		}
	}
	for _, p := range []*mesh.Policy{v.policy, eff.Policy} {
		if p == nil || p.Object == nil {
			continue
		}
		for _, rule := range mtlsExceptionRules {
			value, ok := p.Object.Annotations[engine.ExceptionPrefix+rule]
			if !ok {
				continue
			}
			e := engine.ParseException(rule, value)
			if e.Problem != "" {
				continue // a malformed exception excepts nothing (MG008)
			}
			v.policy, v.exception = p, &e
			return v
		}
	}
	return v
}

func policyRef(p *mesh.Policy) string {
	if p == nil {
		return "none"
	}
	return p.Namespace + "/" + p.Name
}

// levelPhrase names the policy that decided, e.g. "the namespace policy bookinfo/default".
func levelPhrase(eff mesh.Effective) string {
	if eff.Policy == nil {
		return "no policy (Istio's default)"
	}
	return fmt.Sprintf("the %s-level PeerAuthentication %s", eff.Level, policyRef(eff.Policy))
}

func evalPlaintextTraffic(ec *evalContext) []Finding {
	if ec.mesh == nil {
		return nil
	}
	var out []Finding
	for _, f := range plaintextFlows(ec) {
		v, basis := judgeFlow(ec.mesh, f)
		if !v.strict {
			continue
		}
		dst := f.dstNamespace + "/" + f.dstWorkload
		out = append(out, Finding{
			Labels: f.labels(),
			Annotations: withBasis(map[string]string{
				"summary": fmt.Sprintf("Plaintext traffic into STRICT workload %s from %s", dst, workloadRef(f.srcNamespace, f.srcWorkload)),
				"description": fmt.Sprintf("%s reached %s without mTLS (connection_security_policy!=\"mutual_tls\" as its own proxy reports) "+
					"over the last %s, although %s makes it STRICT. Threshold: any plaintext (> 0/s). The live configuration differs "+
					"from the one checked, or the traffic bypasses the sidecar.",
					f.measured(), dst, promDuration(ec.settings.Window), levelPhrase(v.eff)),
				"peer_authentication": policyRef(v.eff.Policy),
			}, basis),
			Value:  f.figure(),
			Signal: f.signal(),
		})
	}
	return out
}

// withBasis adds to an alert's annotations how the workload's policy was found, when it was
// not from the pods' own labels in the series' own cluster.
func withBasis(annotations map[string]string, basis string) map[string]string {
	if basis != "" {
		annotations["judged_by"] = basis
		annotations["description"] += " Note: " + basis + "."
	}
	return annotations
}

func evalPlaintextAllowed(ec *evalContext) []Finding {
	if ec.mesh == nil {
		return nil
	}
	var out []Finding
	for _, f := range plaintextFlows(ec) {
		v, basis := judgeFlow(ec.mesh, f)
		if v.strict || v.exception == nil {
			continue
		}
		dst := f.dstNamespace + "/" + f.dstWorkload
		expires, expiry := "never", "no expiry"
		if !v.exception.Expires.IsZero() {
			expires = v.exception.Expires.Format("2006-01-02")
			expiry = "expires " + expires
			if v.exception.Expired(ec.now) {
				expiry = "EXPIRED on " + expires + ": it no longer holds (MG009)"
			}
		}
		labels := f.labels()
		labels["peer_authentication"] = policyRef(v.policy)
		out = append(out, Finding{
			Labels: labels,
			Annotations: withBasis(map[string]string{
				"summary": fmt.Sprintf("Exception %s on PeerAuthentication %s is in use (%s): plaintext into %s from %s",
					v.exception.Rule, policyRef(v.policy), expiry, dst, workloadRef(f.srcNamespace, f.srcWorkload)),
				"description": fmt.Sprintf("%s reached %s without mTLS over the last %s. PeerAuthentication %s lets it in (effective mode %s) "+
					"under the meshguard exception %s: reason %q, %s. Threshold: any plaintext (> 0/s).",
					f.measured(), dst, promDuration(ec.settings.Window), policyRef(v.policy), v.eff.Mode,
					engine.ExceptionPrefix+v.exception.Rule, v.exception.Reason, expiry),
				"exception":         engine.ExceptionPrefix + v.exception.Rule,
				"exception_reason":  v.exception.Reason,
				"exception_expires": expires,
			}, basis),
			Value:  f.figure(),
			Signal: f.signal(),
		})
	}
	return out
}

func evalTelemetryBlind(ec *evalContext) []Finding {
	if ec.mesh == nil {
		return nil
	}
	// A series that names no destination cluster confirms its namespace in every cluster.
	seen := map[string]bool{}
	for _, s := range ec.results[SignalTelemetryPresence] {
		cluster := ec.seriesCluster(s.Metric)
		if c, ok := ec.mesh.ForCluster(cluster); ok && cluster != "" {
			cluster = c.Cluster // a lone cluster is labelled "Kubernetes" whatever its configuration's name
		}
		seen[cluster+"/"+labelValue(s.Metric, "destination_workload_namespace")] = true
	}
	multi := len(ec.mesh.perCluster()) > 1
	var out []Finding
	for _, cm := range ec.mesh.perCluster() {
		for _, ns := range blindCandidates(ec, cm) {
			if seen["/"+ns] || seen[cm.Cluster+"/"+ns] || !ec.settings.watches(ns) {
				continue
			}
			// The root namespace holds the control plane, which has no sidecars; it is only
			// expected to report traffic when named explicitly.
			if ns == ec.settings.RootNamespace && !ec.settings.explicitlyIncluded(ns) {
				continue
			}
			eff := cm.Resolver().Namespace(ns)
			if eff.Mode != mesh.ModeStrict {
				continue
			}
			labels := map[string]string{LabelNamespace: ns}
			where := "namespace " + ns
			if multi {
				labels[LabelCluster] = cm.Cluster
				where += " of cluster " + cm.Cluster
			}
			pods := "Telemetry may be disabled (MG406), the workloads may run without sidecars, or the namespace is idle."
			if cm.Workloads != nil {
				pods = "The namespace runs sidecar-injected or ambient pods: telemetry may be disabled (MG406) or not scraped."
			}
			out = append(out, Finding{
				Labels: labels,
				Annotations: map[string]string{
					"summary": fmt.Sprintf("No telemetry from STRICT %s: nothing confirms mTLS there", where),
					"description": fmt.Sprintf("%s makes %s STRICT, but no destination proxy there reported an istio_requests_total "+
						"or istio_tcp_connections_opened_total series for the whole last %s (0 series; threshold: at least 1). %s",
						levelPhrase(eff), where, promDuration(ec.settings.Window), pods),
					"peer_authentication": policyRef(eff.Policy),
				},
				Value:  0,
				Signal: SignalTelemetryPresence,
			})
		}
	}
	return out
}

// blindCandidates lists the namespaces of one cluster that should report telemetry, sorted
// and unique. Where the pods are known, those are the namespaces running mesh pods: a namespace
// without pods is idle, not blind. Otherwise they are the namespaces the configuration puts in
// the mesh, and those included by name.
func blindCandidates(ec *evalContext, cm *MeshConfig) []string {
	if cm.Workloads != nil {
		return cm.Workloads.MeshNamespaces()
	}
	candidates := cm.meshNamespaces()
	for _, p := range ec.settings.Include {
		if !strings.ContainsAny(p, "*?[") {
			candidates = append(candidates, p)
		}
	}
	sort.Strings(candidates)
	return slices.Compact(candidates)
}
