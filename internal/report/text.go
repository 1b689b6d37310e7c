package report

import (
	"fmt"
	"io"

	"github.com/meshguard/meshguard/internal/engine"
)

// Text is the human format: findings grouped by file, one line each with the hint below.
type Text struct{ Color bool }

func (t *Text) paint(code, s string) string {
	if !t.Color {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func (t *Text) severity(s engine.Severity) string {
	switch s {
	case engine.SeverityError:
		return t.paint("31;1", "error  ")
	case engine.SeverityWarning:
		return t.paint("33", "warning")
	}
	return t.paint("36", "info   ")
}

// Output writes the report.
func (t *Text) Output(w io.Writer, r *Report) error {
	ew := &errWriter{w: w}
	files, groups := byFile(r.Findings)
	for _, file := range files {
		name := file
		if name == "" {
			name = "(inventory)"
		}
		ew.printf("%s\n", t.paint("1", name))
		for _, f := range groups[file] {
			loc := "     "
			if f.Line > 0 {
				loc = fmt.Sprintf("%5d", f.Line)
			}
			ew.printf("%s  %s  %s  %s  %s\n", loc, t.severity(f.Severity), t.paint("1", f.Rule), f.Object(), t.paint("2", f.Path))
			ew.printf("                %s\n", f.Message)
			if f.Hint != "" {
				ew.printf("                %s %s\n", t.paint("2", "fix:"), f.Hint)
			}
		}
		ew.printf("\n")
	}
	s := r.Summary()
	ew.printf("%d files, %d objects: %d errors, %d warnings, %d infos\n", s.Files, s.Objects, s.Errors, s.Warnings, s.Infos)
	return ew.err
}

// errWriter keeps the first write error so formats need not check each write.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err != nil {
		return
	}
	_, e.err = fmt.Fprintf(e.w, format, args...)
}
