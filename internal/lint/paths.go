package lint

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// PathFilter leaves out the paths --ignore names and the templates of Helm charts, which are not
// YAML until helm renders them: linted as files, every template was a false MG001.
type PathFilter struct {
	ignore []*regexp.Regexp
	// Notes say once per chart what was left out and how to lint it instead.
	Notes  []string
	charts map[string]bool
}

// NewPathFilter compiles --ignore globs: `*` and `?` stay within a path segment, `**` spans
// segments; a glob without a slash matches a file or directory name anywhere, one with a slash
// the path as given (slash-separated, without a leading "./").
func NewPathFilter(globs []string) (*PathFilter, error) {
	f := &PathFilter{charts: map[string]bool{}}
	for _, g := range globs {
		re, err := globRE(g)
		if err != nil {
			return nil, fmt.Errorf("--ignore %q: %w", g, err)
		}
		f.ignore = append(f.ignore, re)
	}
	return f, nil
}

func globRE(glob string) (*regexp.Regexp, error) {
	if glob == "" {
		return nil, fmt.Errorf("empty pattern")
	}
	var b strings.Builder
	b.WriteString("^")
	if !strings.Contains(glob, "/") {
		b.WriteString("(?:.*/)?")
	}
	g := strings.TrimPrefix(glob, "./")
	for i := 0; i < len(g); i++ {
		switch c := g[i]; c {
		case '*':
			if i+1 < len(g) && g[i+1] == '*' {
				i++
				if i+1 < len(g) && g[i+1] == '/' {
					i++
					b.WriteString("(?:.*/)?") // "**/" is zero or more directories
				} else {
					b.WriteString(".*")
				}
			} else {
				b.WriteString("[^/]*")
			}
		case '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// Skip tells whether the loader leaves out path; it is manifest.Loader.Skip.
func (f *PathFilter) Skip(path string, isDir bool) bool {
	p := strings.TrimPrefix(filepath.ToSlash(filepath.Clean(path)), "./")
	for _, re := range f.ignore {
		if re.MatchString(p) {
			return true
		}
	}
	if chart := chartOf(path, isDir); chart != "" {
		if !f.charts[chart] {
			f.charts[chart] = true
			f.Notes = append(f.Notes, fmt.Sprintf("%s is a Helm chart: its templates are not linted as files; lint what it renders with `helm template %s | meshguard lint -`", chart, chart))
		}
		return true
	}
	return false
}

// chartOf returns the chart directory when path is a chart's templates directory or lies under
// one.
func chartOf(path string, isDir bool) string {
	d := path
	if !isDir {
		d = filepath.Dir(path)
	}
	for {
		if filepath.Base(d) == "templates" {
			chart := filepath.Dir(d)
			if _, err := os.Stat(filepath.Join(chart, "Chart.yaml")); err == nil {
				return chart
			}
		}
		parent := filepath.Dir(d)
		if parent == d {
			return ""
		}
		d = parent
	}
}
