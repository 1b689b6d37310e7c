package report

import (
	"encoding/json"
	"io"

	"github.com/meshguard/meshguard/internal/engine"
)

// JSON writes {"findings": [...], "summary": {...}}.
type JSON struct{}

type jsonReport struct {
	Findings []engine.Finding `json:"findings"`
	Summary  Summary          `json:"summary"`
}

// Output writes the report.
func (*JSON) Output(w io.Writer, r *Report) error {
	fs := r.Findings
	if fs == nil {
		fs = []engine.Finding{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(jsonReport{Findings: fs, Summary: r.Summary()})
}
