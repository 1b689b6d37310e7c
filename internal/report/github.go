package report

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/meshguard/meshguard/internal/engine"
)

// GitHub writes workflow commands, which GitHub Actions shows as annotations on the diff, and a
// Markdown summary for the job's page when Summary is set.
type GitHub struct {
	Summary io.Writer
}

// Output writes the report.
func (g *GitHub) Output(w io.Writer, r *Report) error {
	if g.Summary != nil {
		if err := writeSummary(g.Summary, r); err != nil {
			return fmt.Errorf("write step summary: %w", err)
		}
	}
	ew := &errWriter{w: w}
	for _, f := range r.Findings {
		level := "notice"
		switch f.Severity {
		case engine.SeverityError:
			level = "error"
		case engine.SeverityWarning:
			level = "warning"
		}
		props := []string{"title=" + escapeProperty(f.Rule+" "+f.Object())}
		if f.File != "" {
			// GitHub places annotations by the path in the repository, not an absolute one.
			props = append(props, "file="+escapeProperty(filepath.ToSlash(relativeTo(f.File, r.BaseDir))))
			if f.Line > 0 {
				props = append(props, "line="+itoa(f.Line))
			}
		}
		msg := f.Message
		if f.Path != "" {
			msg = f.Path + ": " + msg
		}
		if f.Hint != "" {
			msg += "\nfix: " + f.Hint
		}
		ew.printf("::%s %s::%s\n", level, strings.Join(props, ","), escapeData(msg))
	}
	return ew.err
}

// Escaping as the workflow-command parser expects.
func escapeData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

func escapeProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}

// writeSummary writes the counts and a table of the findings, as GitHub renders step summaries.
func writeSummary(w io.Writer, r *Report) error {
	ew := &errWriter{w: w}
	s := r.Summary()
	ew.printf("### meshguard\n\n%d files, %d objects: %d errors, %d warnings, %d infos\n\n", s.Files, s.Objects, s.Errors, s.Warnings, s.Infos)
	if len(r.Findings) == 0 {
		return ew.err
	}
	ew.printf("| Severity | Rule | Object | Location | Message |\n|---|---|---|---|---|\n")
	for _, f := range r.Findings {
		loc := f.File
		if f.Line > 0 {
			loc += ":" + itoa(f.Line)
		}
		rule := f.Rule
		if u := ruleURL(r.Rules, f.Rule); u != "" {
			rule = "[" + f.Rule + "](" + u + ")"
		}
		ew.printf("| %s | %s | %s | %s | %s |\n", f.Severity, rule, cell(f.Object()), cell(loc), cell(f.Message))
	}
	ew.printf("\n")
	return ew.err
}

func ruleURL(rules []*engine.Rule, id string) string {
	for _, r := range rules {
		if r.ID == id {
			return RuleDocsURL(r)
		}
	}
	return ""
}

// cell keeps a value inside one Markdown table cell.
func cell(s string) string {
	return strings.NewReplacer("|", "\\|", "\n", " ", "\r", "").Replace(s)
}
