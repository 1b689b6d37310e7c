// Package engine evaluates the rule bundle (CEL and Rego) against Istio objects. One Engine is
// built per configuration, compiles every rule once, and is safe for concurrent Review calls:
// the CLI, the webhook and the audit all call the same Review.
package engine

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Severity orders findings: info < warning < error.
type Severity int

const (
	SeverityInfo Severity = iota + 1
	SeverityWarning
	SeverityError
)

func (s Severity) String() string {
	switch s {
	case SeverityInfo:
		return "info"
	case SeverityWarning:
		return "warning"
	case SeverityError:
		return "error"
	}
	return "unknown"
}

// ParseSeverity reads "error", "warning" (or "warn") and "info".
func ParseSeverity(s string) (Severity, error) {
	switch strings.ToLower(s) {
	case "error":
		return SeverityError, nil
	case "warning", "warn":
		return SeverityWarning, nil
	case "info":
		return SeverityInfo, nil
	}
	return 0, fmt.Errorf("unknown severity %q (want error, warning or info)", s)
}

// MarshalJSON writes the severity by name.
func (s Severity) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON reads the severity by name.
func (s *Severity) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return err
	}
	v, err := ParseSeverity(str)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Finding is one rule violation on one object (or, for inventory rules, on the whole inventory).
type Finding struct {
	Rule       string   `json:"rule"`
	Severity   Severity `json:"severity"`
	Kind       string   `json:"kind"`
	APIVersion string   `json:"apiVersion"`
	Namespace  string   `json:"namespace"`
	Name       string   `json:"name"`
	File       string   `json:"file"`
	Line       int      `json:"line"`
	Path       string   `json:"path"`
	Message    string   `json:"message"`
	Hint       string   `json:"hint,omitempty"`
}

// Object names the finding's object the way kubectl does.
func (f Finding) Object() string {
	switch {
	case f.Kind == "" && f.File != "":
		return "(document)" // a file or document that could not be read as an object
	case f.Kind == "":
		return "(inventory)"
	case f.Namespace == "":
		return f.Kind + " " + f.Name
	}
	return f.Kind + " " + f.Namespace + "/" + f.Name
}

// Sort orders findings by file, line, rule and path, so every output is stable.
func Sort(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		return a.Path < b.Path
	})
}

// Max returns the highest severity among findings, or 0 when there are none.
func Max(fs []Finding) Severity {
	var m Severity
	for _, f := range fs {
		m = max(m, f.Severity)
	}
	return m
}
