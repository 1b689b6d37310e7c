package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/meshguard/meshguard/internal/engine"
)

// Text is the human format: findings grouped by file, one line each with the hint below, and
// Context source lines around the finding's line when Source can read the file.
type Text struct {
	Color   bool
	Context int
	Source  func(file string) ([]byte, error)
}

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
	sources := map[string][]string{}
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
			if t.Context > 0 && f.Line > 0 && file != "" {
				lines, ok := sources[file]
				if !ok {
					lines = t.lines(file)
					sources[file] = lines
				}
				t.excerpt(ew, lines, f.Line)
			}
		}
		ew.printf("\n")
	}
	s := r.Summary()
	ew.printf("%d files, %d objects: %d errors, %d warnings, %d infos\n", s.Files, s.Objects, s.Errors, s.Warnings, s.Infos)
	return ew.err
}

// lines reads a file for context; a file that cannot be read (standard input already consumed,
// a helm # Source: path) just has no context.
func (t *Text) lines(file string) []string {
	if t.Source == nil {
		return nil
	}
	data, err := t.Source(file)
	if err != nil {
		return nil
	}
	return strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
}

// excerpt prints the lines around line, the finding's own marked with ">".
func (t *Text) excerpt(ew *errWriter, lines []string, line int) {
	if line > len(lines) {
		return
	}
	for n := max(1, line-t.Context); n <= min(len(lines), line+t.Context); n++ {
		mark := " "
		if n == line {
			mark = ">"
		}
		text := fmt.Sprintf("%s %5d | %s", mark, n, lines[n-1])
		if n != line {
			text = t.paint("2", text)
		}
		ew.printf("              %s\n", text)
	}
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
