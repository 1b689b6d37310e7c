package lint

import (
	"bufio"
	"bytes"
	"strings"

	"github.com/meshguard/meshguard/internal/engine"
)

// StdinName is how the loader names standard input in findings.
const StdinName = "<stdin>"

// source is a `# Source: path` comment of rendered output: the documents after it, up to the
// next `---`, came from path.
type source struct {
	line int // the comment's line
	file string
	end  int // the line of the next document separator, or 0 for the end of input
}

// helmSources finds the `# Source:` comments helm template (and kustomize's helm support) write
// before every document.
func helmSources(data []byte) []source {
	var out []source
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), len(data)+1)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), " \t\r")
		if strings.HasPrefix(line, "---") && len(out) > 0 && out[len(out)-1].end == 0 {
			out[len(out)-1].end = n
		}
		if rest, ok := strings.CutPrefix(line, "# Source: "); ok {
			out = append(out, source{line: n, file: strings.TrimSpace(rest)})
		}
	}
	return out
}

// Relocate returns findings with standard input's positions made useful: a finding in a document
// helm rendered points at the chart file named by its `# Source:` comment, with its line within
// that document; any other finding on standard input is named name (--stdin-filename), when
// given. findings is not changed.
func Relocate(findings []engine.Finding, data []byte, name string) []engine.Finding {
	sources := helmSources(data)
	out := make([]engine.Finding, len(findings))
	for i, f := range findings {
		if f.File == StdinName {
			if s, ok := sourceOf(sources, f.Line); ok {
				f.File, f.Line = s.file, f.Line-s.line
			} else if name != "" {
				f.File = name
			}
		}
		out[i] = f
	}
	engine.Sort(out)
	return out
}

// StdinFiles names the files standard input stood for: the charts' files it rendered, or name.
func StdinFiles(data []byte, name string) []string {
	var files []string
	seen := map[string]bool{}
	for _, s := range helmSources(data) {
		if !seen[s.file] {
			seen[s.file] = true
			files = append(files, s.file)
		}
	}
	if len(files) == 0 {
		if name == "" {
			name = StdinName
		}
		files = []string{name}
	}
	return files
}

func sourceOf(sources []source, line int) (source, bool) {
	for i := len(sources) - 1; i >= 0; i-- {
		s := sources[i]
		if s.line < line {
			return s, s.end == 0 || line < s.end
		}
	}
	return source{}, false
}
