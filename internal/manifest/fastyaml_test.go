package manifest

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/meshguard/meshguard/test/bench"
)

// The documents the fast path is held to: Istio's own configs (../shared/corpus, beside the
// checkout), every YAML file of this repository (policies' testdata, charts, test fixtures), and
// the generated mesh `make bench-conftest` lints.
func fastCorpus(t *testing.T) (real, generated [][]byte) {
	t.Helper()
	var files []string
	for _, root := range []string{filepath.Join("..", "..", "..", "shared", "corpus"), filepath.Join("..", "..")} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
				return filepath.SkipDir
			}
			if !d.IsDir() && isManifest(d.Name()) {
				files = append(files, path)
			}
			return nil
		})
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, d := range splitDocuments(data) {
			real = append(real, d.text)
		}
	}
	return real, generatedDocuments(t, 300)
}

// generatedDocuments returns the documents of a generated mesh of n objects.
func generatedDocuments(tb testing.TB, n int) [][]byte {
	tb.Helper()
	dir := tb.TempDir()
	require.NoError(tb, bench.Generate(dir, n))
	var docs [][]byte
	require.NoError(tb, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		for _, d := range splitDocuments(data) {
			docs = append(docs, d.text)
		}
		return err
	}))
	return docs
}

// jsonRenderings writes each object among docs as indented and as compact JSON.
func jsonRenderings(t *testing.T, docs [][]byte) [][]byte {
	t.Helper()
	var out [][]byte
	for _, d := range docs {
		var root yaml.Node
		if yaml.Unmarshal(d, &root) != nil || len(root.Content) == 0 {
			continue
		}
		v, p := (&converter{}).value(root.Content[0])
		if _, ok := v.(map[string]any); !ok || p != nil {
			continue
		}
		for _, indent := range []string{"  ", ""} {
			var b bytes.Buffer
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", indent)
			require.NoError(t, enc.Encode(v))
			out = append(out, b.Bytes())
		}
	}
	return out
}

// mutate makes a document a few edits away from text, with the characters YAML gives meaning to,
// so that the fast path meets every way of leaving its subset.
func mutate(rng *rand.Rand, text []byte) []byte {
	tokens := []string{" ", "  ", "\n", "\n  ", "-", "- ", ":", ": ", "#", " #", "'", "''", `"`, `\"`, `\u00e9`, `\`,
		"[", "]", "{", "}", ",", ", ", "&a ", "*a", "!t ", "!!str ", "|", ">", "? ", "\t", "\r", "x", "1", "0x1F",
		"<<: ", "---", "...", "~", "null", "true", "yes", "1e3", "2026-01-02", "é", "%", "@", "`"}
	out := append([]byte(nil), text...)
	for range 1 + rng.IntN(3) {
		pos := 0
		if len(out) > 0 {
			pos = rng.IntN(len(out) + 1)
		}
		switch rng.IntN(4) {
		case 0, 1:
			tok := tokens[rng.IntN(len(tokens))]
			out = append(out[:pos], append([]byte(tok), out[pos:]...)...)
		case 2:
			end := min(len(out), pos+1+rng.IntN(6))
			out = append(out[:pos], out[end:]...)
		case 3: // a line indented differently
			start := strings.LastIndexByte(string(out[:pos]), '\n') + 1
			if rng.IntN(2) == 0 {
				out = append(out[:start], append([]byte("  "), out[start:]...)...)
			} else if strings.HasPrefix(string(out[start:]), " ") {
				out = append(out[:start], out[start+1:]...)
			}
		}
	}
	return out
}

func TestFastParseReadsWhatYAMLv3Reads(t *testing.T) {
	real, generated := fastCorpus(t)
	require.NotEmpty(t, real)
	taken, checked := 0, 0
	check := func(text []byte) {
		checked++
		if sameAsYAMLv3(t, text) {
			taken++
		}
	}
	for _, d := range generated {
		_, _, ok := fastParse(d)
		require.True(t, ok || strings.TrimSpace(string(d)) == "", "the generated mesh is in the fast subset:\n%s", d)
		check(d)
	}
	realTaken := 0
	for _, d := range real {
		if sameAsYAMLv3(t, d) {
			realTaken++
		}
	}
	t.Logf("%d of %d documents of Istio's configs and this repository are in the fast subset", realTaken, len(real))
	// The same objects as JSON, indented as `kubectl get -o json` prints them and compact.
	jsonTaken := 0
	docs := jsonRenderings(t, real)
	for _, d := range docs {
		if sameAsYAMLv3(t, d) {
			jsonTaken++
		}
	}
	t.Logf("%d of %d of them as JSON are in the fast subset", jsonTaken, len(docs))
	require.Greater(t, jsonTaken, len(docs)/2, "JSON stays in the fast subset")
	rng := rand.New(rand.NewPCG(1, 2))
	for _, d := range append(append(real, generated...), docs...) {
		for range 20 {
			check(mutate(rng, d))
		}
	}
	t.Logf("%d mutated documents, %d read by the fast path as the converter reads yaml.v3's tree", checked, taken)
	require.Greater(t, taken, checked/10, "most documents stay in the fast subset")
}

func TestFastParseLeavesTheRestToYAMLv3(t *testing.T) {
	tests := []struct{ name, doc string }{
		{"an anchor", "a: &x 1\nb: *x\n"},
		{"a tag", "a: !!str 1\n"},
		{"a merge key", "a: {b: 1}\n<<: {c: 2}\n"},
		{"a literal block scalar", "a: |\n  x\n"},
		{"a plain scalar over two lines", "a: one\n  two\n"},
		{"a quoted scalar over two lines", "a: \"one\n  two\"\n"},
		{"a flow collection over two lines inside a block", "a: [1,\n  2]\n"},
		{"a JSON value continued on the next line", "[a\nb]\n"},
		{"a JSON key before a line break", "{\"a\"\n: 1}\n"},
		{"a document end marker inside JSON", "[1,\n...\n]\n"},
		{"an empty value", "a:\nb: 1\n"},
		{"an empty sequence item", "- \n- 1\n"},
		{"a tab", "a:\t1\n"},
		{"a carriage return", "a: 1\r\n"},
		{"a byte outside ASCII", "a: é\n"},
		{"an escape other than the common ones", `a: "\u00e9"` + "\n"},
		{"an explicit key", "? a\n: 1\n"},
		{"a flow value with a colon", "a: {b: http://x}\n"},
		{"a document end marker", "a: 1\n...\n"},
		{"a key over 1,000 characters", strings.Repeat("k", 1001) + ": 1\n"},
		{"nesting deeper than the bound", strings.Repeat("[", fastMaxDepth+1) + strings.Repeat("]", fastMaxDepth+1) + "\n"},
		{"a mapping value after a value", "a: b: c\n"},
		{"a key deeper than its siblings", "a: 1\n  b: 2\n"},
		{"a duplicate key, which the converter reports with its line", "a: 1\na: 2\n"},
		{"a duplicate key in a flow mapping", "a: {b: 1, b: 2}\n"},
		{"a number JSON cannot hold", "a: .inf\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, ok := fastParse([]byte(tc.doc))
			require.False(t, ok)
		})
	}
}

// FuzzFastParse holds the fast path to yaml.v3 on arbitrary documents: whatever it reads, the
// converter reads alike from yaml.v3's tree.
func FuzzFastParse(f *testing.F) {
	f.Add([]byte("a: {b: [1, 'x''y', \"q\\\"\"]}\n- c\n"))
	f.Add([]byte("spec:\n  http:\n  - route:\n    - destination: {host: a, port: {number: 80}}\n  hosts:\n  - a # c\n"))
	f.Add([]byte("k: v #c\nl:\n- - 1\n  - 2\n"))
	f.Fuzz(func(t *testing.T, data []byte) { sameAsYAMLv3(t, data) })
}

// sameAsYAMLv3 fails t when the fast path reads text otherwise than the converter reads yaml.v3's
// tree of it (the value, and the line of the top node), and says whether it read it.
func sameAsYAMLv3(t *testing.T, text []byte) bool {
	t.Helper()
	got, line, ok := fastParse(text)
	if !ok {
		return false
	}
	var root yaml.Node
	err := yaml.Unmarshal(text, &root)
	require.NoError(t, err, "the fast path read a document yaml.v3 refuses:\n%s", text)
	if root.Kind == 0 || len(root.Content) == 0 {
		require.Nil(t, got, "yaml.v3 read an empty document:\n%s", text)
		return true
	}
	require.NotNil(t, got, "the fast path read an empty document, yaml.v3 did not:\n%s", text)
	want, p := (&converter{}).value(root.Content[0])
	require.Nil(t, p, "the fast path read a document the converter refuses:\n%s", text)
	require.Equal(t, want, got, "in:\n%s", text)
	require.Equal(t, root.Content[0].Line, line, "the top node's line in:\n%s", text)
	return true
}

// BenchmarkReadDocument reads the documents of the generated mesh as the loader does, by the
// fast path and by yaml.v3 and the converter, so that the two costs stay visible side by side.
func BenchmarkReadDocument(b *testing.B) {
	docs := generatedDocuments(b, 1000)
	size := 0
	for _, d := range docs {
		size += len(d)
	}
	b.Run("fast", func(b *testing.B) {
		b.SetBytes(int64(size))
		for b.Loop() {
			for _, d := range docs {
				if _, _, ok := fastParse(d); !ok && len(bytes.TrimSpace(d)) > 0 {
					b.Fatalf("not in the fast subset:\n%s", d)
				}
			}
		}
	})
	b.Run("yaml.v3", func(b *testing.B) {
		b.SetBytes(int64(size))
		for b.Loop() {
			for _, d := range docs {
				var root yaml.Node
				require.NoError(b, yaml.Unmarshal(d, &root))
				if len(root.Content) > 0 {
					if _, p := (&converter{}).value(root.Content[0]); p != nil {
						b.Fatal(p)
					}
				}
			}
		}
	})
}
