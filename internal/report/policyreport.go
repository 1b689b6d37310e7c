package report

import (
	"io"
	"sort"

	"sigs.k8s.io/yaml"

	"github.com/meshguard/meshguard/internal/engine"
)

// PolicyReport writes the findings as wgpolicyk8s.io/v1alpha2 objects, the format Kyverno and
// other policy engines keep in the cluster for dashboards and `kubectl get polr`: a PolicyReport
// per namespace with findings and a ClusterPolicyReport for the rest (objects without a
// namespace, inventory findings). `meshguard audit --write` applies them.
type PolicyReport struct{}

const (
	// PolicyReportAPIVersion is the version of the Policy WG's CRDs meshguard writes.
	PolicyReportAPIVersion = "wgpolicyk8s.io/v1alpha2"
	// PolicyReportName is the name of every report meshguard writes, one per namespace.
	PolicyReportName = "meshguard"
	// ManagedByLabel marks the reports meshguard owns, so --write can remove stale ones.
	ManagedByLabel = "app.kubernetes.io/managed-by"
)

// PolicyReportObject is a PolicyReport or ClusterPolicyReport.
type PolicyReportObject struct {
	APIVersion string               `json:"apiVersion"`
	Kind       string               `json:"kind"`
	Metadata   PolicyReportMetadata `json:"metadata"`
	Summary    PolicyReportSummary  `json:"summary"`
	Results    []PolicyReportResult `json:"results"`
}

// PolicyReportMetadata is the part of ObjectMeta a report sets.
type PolicyReportMetadata struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace,omitempty"`
	Labels    map[string]string `json:"labels"`
}

// PolicyReportSummary counts results by outcome.
type PolicyReportSummary struct {
	Pass  int `json:"pass"`
	Fail  int `json:"fail"`
	Warn  int `json:"warn"`
	Error int `json:"error"`
	Skip  int `json:"skip"`
}

// PolicyReportResult is one finding.
type PolicyReportResult struct {
	Source     string            `json:"source"`
	Policy     string            `json:"policy"`
	Rule       string            `json:"rule,omitempty"`
	Category   string            `json:"category"`
	Severity   string            `json:"severity"`
	Result     string            `json:"result"`
	Scored     bool              `json:"scored"`
	Message    string            `json:"message"`
	Timestamp  PolicyReportTime  `json:"timestamp"`
	Resources  []PolicyReportRef `json:"resources,omitempty"`
	Properties map[string]string `json:"properties,omitempty"`
}

// PolicyReportTime is a protobuf Timestamp, as the CRD has it.
type PolicyReportTime struct {
	Seconds int64 `json:"seconds"`
	Nanos   int32 `json:"nanos"`
}

// PolicyReportRef is the object a result is about.
type PolicyReportRef struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
}

// PolicyReports builds the reports of r: one per namespace with findings, sorted, then the
// cluster report when any finding has no namespace. Results keep the report's order.
func PolicyReports(r *Report) []PolicyReportObject {
	titles := map[string]string{}
	for _, rule := range r.Rules {
		titles[rule.ID] = rule.Title
	}
	byNS := map[string]*PolicyReportObject{}
	for _, f := range r.Findings {
		rep, ok := byNS[f.Namespace]
		if !ok {
			rep = &PolicyReportObject{
				APIVersion: PolicyReportAPIVersion, Kind: "PolicyReport",
				Metadata: PolicyReportMetadata{Name: PolicyReportName, Namespace: f.Namespace, Labels: map[string]string{ManagedByLabel: "meshguard"}},
				Results:  []PolicyReportResult{},
			}
			if f.Namespace == "" {
				rep.Kind = "ClusterPolicyReport"
			}
			byNS[f.Namespace] = rep
		}
		res := PolicyReportResult{
			Source: "meshguard", Policy: f.Rule, Rule: titles[f.Rule], Category: "Istio", Scored: true, Message: f.Message,
			Timestamp: PolicyReportTime{Seconds: r.Time.Unix(), Nanos: int32(r.Time.Nanosecond())},
		}
		switch f.Severity {
		case engine.SeverityError:
			res.Result, res.Severity = "fail", "high"
			rep.Summary.Fail++
		case engine.SeverityWarning:
			res.Result, res.Severity = "warn", "medium"
			rep.Summary.Warn++
		default:
			res.Result, res.Severity = "warn", "info"
			rep.Summary.Warn++
		}
		if f.Kind != "" && f.Name != "" {
			res.Resources = []PolicyReportRef{{APIVersion: f.APIVersion, Kind: f.Kind, Namespace: f.Namespace, Name: f.Name}}
		}
		props := map[string]string{}
		for k, v := range map[string]string{"path": f.Path, "hint": f.Hint, "file": f.File} {
			if v != "" {
				props[k] = v
			}
		}
		if len(props) > 0 {
			res.Properties = props
		}
		rep.Results = append(rep.Results, res)
	}
	namespaces := make([]string, 0, len(byNS))
	for ns := range byNS {
		namespaces = append(namespaces, ns)
	}
	sort.Strings(namespaces)
	out := make([]PolicyReportObject, 0, len(byNS))
	for _, ns := range namespaces {
		if ns != "" {
			out = append(out, *byNS[ns])
		}
	}
	if c, ok := byNS[""]; ok {
		out = append(out, *c)
	}
	return out
}

// Output writes the reports as a YAML stream that `kubectl apply -f -` takes.
func (*PolicyReport) Output(w io.Writer, r *Report) error {
	ew := &errWriter{w: w}
	for _, rep := range PolicyReports(r) {
		data, err := yaml.Marshal(rep)
		if err != nil {
			return err
		}
		ew.printf("---\n%s", data)
	}
	return ew.err
}
