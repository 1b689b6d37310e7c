package report

import (
	"io"
	"strings"

	"github.com/meshguard/meshguard/internal/engine"
)

// GitHub writes workflow commands, which GitHub Actions shows as annotations on the diff.
type GitHub struct{}

// Output writes the report.
func (*GitHub) Output(w io.Writer, r *Report) error {
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
			props = append(props, "file="+escapeProperty(f.File))
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
