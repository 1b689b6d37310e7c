package lint

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/internal/engine"
)

// rendered has the shape of `helm template` output: a `# Source:` comment after every `---`.
const rendered = `---
# Source: app/templates/a.yaml
kind: VirtualService
spec: {}
---
# Source: app/templates/b.yaml
kind: DestinationRule
spec:
  x: 1
---
kind: Plain
`

func TestRelocateMapsStandardInputToTheChartFiles(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       engine.Finding
		stdin    string
		wantFile string
		wantLine int
	}{
		{"a finding in the first document points at its template", engine.Finding{File: StdinName, Line: 4}, "", "app/templates/a.yaml", 2},
		{"a finding in a later document points at that document's template", engine.Finding{File: StdinName, Line: 9}, "", "app/templates/b.yaml", 3},
		{"a document without a Source comment takes the --stdin-filename", engine.Finding{File: StdinName, Line: 11}, "rendered.yaml", "rendered.yaml", 11},
		{"without either it stays standard input", engine.Finding{File: StdinName, Line: 11}, "", StdinName, 11},
		{"a finding in a real file is left alone", engine.Finding{File: "k8s/x.yaml", Line: 4}, "rendered.yaml", "k8s/x.yaml", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := []engine.Finding{tc.in}
			got := Relocate(in, []byte(rendered), tc.stdin)
			require.Equal(t, tc.wantFile, got[0].File)
			require.Equal(t, tc.wantLine, got[0].Line)
			require.Equal(t, tc.in, in[0], "the input is not changed")
		})
	}
	require.Equal(t, []string{"app/templates/a.yaml", "app/templates/b.yaml"}, StdinFiles([]byte(rendered), "x.yaml"))
	require.Equal(t, []string{"x.yaml"}, StdinFiles([]byte("kind: Plain\n"), "x.yaml"))
}

func TestPathFilterIgnoresGlobsAndChartTemplates(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "charts/app/templates/sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "charts/app/Chart.yaml"), []byte("name: app\n"), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "docs/templates"), 0o755))
	t.Chdir(dir)

	for _, tc := range []struct {
		name  string
		globs []string
		path  string
		isDir bool
		want  bool
	}{
		{"a name glob matches in any directory", []string{"*.generated.yaml"}, "k8s/a/x.generated.yaml", false, true},
		{"a name glob does not match a directory part", []string{"x*.yaml"}, "x/y.yaml", false, false},
		{"a path glob with ** matches below a directory", []string{"vendor/**"}, "vendor/a/b.yaml", false, true},
		{"** can match no directories", []string{"**/test.yaml"}, "test.yaml", false, true},
		{"a single * stays within a segment", []string{"k8s/*.yaml"}, "k8s/a/b.yaml", false, false},
		{"a leading ./ is ignored on both sides", []string{"./k8s/*.yaml"}, "./k8s/b.yaml", false, true},
		{"a chart's templates directory is skipped", nil, "charts/app/templates", true, true},
		{"a file given inside a chart's templates is skipped", nil, "charts/app/templates/sub/vs.yaml", false, true},
		{"a templates directory outside a chart is read", nil, "docs/templates", true, false},
		{"the chart's values are read", nil, "charts/app/values.yaml", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := NewPathFilter(tc.globs)
			require.NoError(t, err)
			require.Equal(t, tc.want, f.Skip(tc.path, tc.isDir))
		})
	}

	t.Run("one note per chart, however many templates", func(t *testing.T) {
		f, err := NewPathFilter(nil)
		require.NoError(t, err)
		f.Skip("charts/app/templates/a.yaml", false)
		f.Skip("charts/app/templates/b.yaml", false)
		require.Len(t, f.Notes, 1)
		require.Contains(t, f.Notes[0], "helm template charts/app | meshguard lint -")
	})
	t.Run("an empty glob is refused", func(t *testing.T) {
		_, err := NewPathFilter([]string{""})
		require.Error(t, err)
	})
}
