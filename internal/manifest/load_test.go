package manifest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func write(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, data, 0o644))
	return p
}

const vs = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: bookinfo
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
    retries:
      attempts: 3
`

func TestParseReportsProblemsWithFileLineAndField(t *testing.T) {
	tests := []struct {
		name     string
		doc      string
		wantLine int
		wantPath string
		wantMsg  string
	}{
		{"a misspelt field names the field and suggests the right one",
			strings.Replace(vs, "attempts: 3", "attemps: 3", 1), 12, "spec.http[0].retries.attemps", `did you mean "attempts"`},
		{"a wrong type names the field",
			strings.Replace(vs, "attempts: 3", "attempts: three", 1), 12, "spec.http[0].retries.attempts", "expected a number"},
		{"an invalid duration names the field",
			strings.Replace(vs, "attempts: 3", "perTryTimeout: 5 seconds", 1), 12, "spec.http[0].retries.perTryTimeout", "invalid duration"},
		{"an unknown enum value lists the known ones",
			"apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p}\nspec:\n  mtls:\n    mode: STRICTER\n", 6, "spec.mtls.mode", "known: UNSET, DISABLE, PERMISSIVE, STRICT"},
		{"an unserved version of an Istio kind is reported, not skipped",
			strings.Replace(vs, "networking.istio.io/v1", "networking.istio.io/v2", 1), 1, "apiVersion", "not served"},
		{"invalid YAML gives the line of the error",
			"apiVersion: v1\nkind: X\nmetadata:\n  name: [unclosed\n", 4, "", "invalid YAML"},
		{"a duplicate key is refused as the API server refuses it",
			strings.Replace(vs, "  hosts: [reviews]\n", "  hosts: [reviews]\n  hosts: [ratings]\n", 1), 8, "spec.hosts", "duplicate key"},
		{"an object without a name is refused",
			strings.Replace(vs, "  name: reviews\n", "", 1), 3, "metadata.name", "required"},
		{"two alternatives of a oneof are refused",
			"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\nspec:\n  http:\n  - match:\n    - uri: {exact: /a, prefix: /b}\n", 7, "spec.http[0].match[0].uri.prefix", "set only one"},
		{"of two mistakes, the first in field order is reported, whatever the map's order",
			"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\nspec:\n  zzz: 1\n  hosts: [a]\n  http: [{retries: {attempts: x}}]\n  aaa: 2\n", 8, "spec.aaa", "unknown field"},
		{"a port-level key that is not a port is refused",
			"apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p}\nspec:\n  selector: {matchLabels: {app: a}}\n  portLevelMtls:\n    http: {mode: STRICT}\n", 7, `spec.portLevelMtls.http`, "not a port number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, problems := Parse("f.yaml", []byte(tt.doc))
			require.Empty(t, objs)
			require.Len(t, problems, 1)
			p := problems[0]
			require.Equal(t, "f.yaml", p.File)
			if tt.wantPath == "" {
				// The YAML parser reports some errors at the line of the construct that is left
				// open, which may be the line before.
				require.InDelta(t, tt.wantLine, p.Line, 1, p.Error())
			} else {
				require.Equal(t, tt.wantLine, p.Line, p.Error())
			}
			require.Equal(t, tt.wantPath, p.Path)
			require.Contains(t, p.Message, tt.wantMsg)
		})
	}
}

func TestParseReadsEveryDocumentShape(t *testing.T) {
	list := `{"apiVersion": "v1", "kind": "List", "items": [
  {"apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule", "metadata": {"name": "a"}, "spec": {"host": "a"}},
  {"apiVersion": "security.istio.io/v1beta1", "kind": "PeerAuthentication", "metadata": {"name": "b"}, "spec": {}}
]}`
	tests := []struct {
		name      string
		data      string
		wantNames []string
		wantLines []int
	}{
		{"multi-document YAML keeps each document's line", "---\n# c\n" + vs + "---\n\n---\n" + strings.Replace(vs, "name: reviews", "name: second", 1), []string{"reviews", "second"}, []int{3, 18}},
		{"a List is unwrapped", list, []string{"a", "b"}, []int{2, 3}},
		{"other kinds are skipped silently", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s}\n---\n" + vs, []string{"reviews"}, []int{5}},
		{"a Gateway API kind with an Istio kind's group name clash is skipped", "apiVersion: gateway.networking.k8s.io/v1\nkind: VirtualService\nmetadata: {name: x}\n", nil, nil},
		{"an empty file has nothing", "", nil, nil},
		{"a syntax error does not lose the next document", "a: [\n---\n" + vs, []string{"reviews"}, []int{3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, _ := Parse("f", []byte(tt.data))
			var names []string
			var lines []int
			for _, o := range objs {
				names = append(names, o.Name)
				lines = append(lines, o.Line)
				spec, err := o.Spec()
				require.NoError(t, err)
				require.NotNil(t, spec, "typed spec decoded")
			}
			require.Equal(t, tt.wantNames, names)
			require.Equal(t, tt.wantLines, lines)
		})
	}
}

// A Service is read as context (which workloads are behind a host), never judged: fields
// meshguard does not model are no problem, and a version or group it does not read is skipped.
func TestAServiceIsReadAsContextOnly(t *testing.T) {
	tests := []struct {
		name, doc string
		read      bool
	}{
		{"a core v1 Service is read, whatever fields it has",
			"apiVersion: v1\nkind: Service\nmetadata: {name: cart, namespace: shop}\nspec:\n  selector: {app: cart}\n  ports: [{port: 80, targetPort: http}]\n  sessionAffinity: ClientIP\n  madeUp: {x: 1}\nstatus: {loadBalancer: {}}\n", true},
		{"a Service without a spec is read", "apiVersion: v1\nkind: Service\nmetadata: {name: cart}\n", true},
		{"a Service without a name names no host and is skipped", "apiVersion: v1\nkind: Service\nmetadata: {generateName: cart-}\n", false},
		{"a core version meshguard does not read is skipped, not reported", "apiVersion: v2\nkind: Service\nmetadata: {name: cart}\n", false},
		{"another group's Service (Knative) is not ours", "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: cart}\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, problems := Parse("f", []byte(tt.doc))
			require.Empty(t, problems)
			if !tt.read {
				require.Empty(t, objs)
				return
			}
			require.Len(t, objs, 1)
			require.Equal(t, KindService, objs[0].Kind)
			require.True(t, InventoryOnly(objs[0].Kind))
			_, err := objs[0].Spec()
			require.Error(t, err, "a Service has no Istio spec to decode")
		})
	}
}

func TestFieldLinePointsAtTheField(t *testing.T) {
	objs, _ := Parse("f", []byte(vs))
	require.Len(t, objs, 1)
	o := objs[0]
	require.Equal(t, 12, o.FieldLine("spec.http[0].retries.attempts"))
	require.Equal(t, 11, o.FieldLine("spec.http[0].retries.perTryTimeout"), "an absent field falls back to its parent")
	require.Equal(t, 1, o.FieldLine(""))

	// A later document of a file, read by the fast path: its lines are built on demand.
	objs, _ = Parse("f", []byte("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n"+vs))
	require.Len(t, objs, 1)
	require.Nil(t, objs[0].node, "the fast path read it, without a node tree")
	require.Equal(t, 5+12, objs[0].FieldLine("spec.http[0].retries.attempts"))
	require.Equal(t, 5+1, objs[0].Line)
}

func TestLoadRefusesWhatItCannotRead(t *testing.T) {
	dir := t.TempDir()
	t.Run("an empty directory is an error naming it", func(t *testing.T) {
		empty := filepath.Join(dir, "empty")
		require.NoError(t, os.Mkdir(empty, 0o755))
		_, err := Loader{}.Load([]string{empty})
		require.ErrorIs(t, err, ErrNoFiles)
		require.Contains(t, err.Error(), empty)
	})
	t.Run("a missing path is an error naming it", func(t *testing.T) {
		_, err := Loader{}.Load([]string{filepath.Join(dir, "missing.yaml")})
		require.ErrorIs(t, err, os.ErrNotExist)
	})
	t.Run("a file over the size limit is refused before it is read whole", func(t *testing.T) {
		big := write(t, dir, "big/huge.yaml", bytes.Repeat([]byte("# padding line of a huge file\n"), 50<<20/30))
		start := time.Now()
		_, err := Loader{}.Load([]string{big})
		require.Error(t, err)
		require.Contains(t, err.Error(), "larger than the 32 MiB limit")
		t.Logf("refused a %d MB file in %v", 50, time.Since(start))
	})
	t.Run("a binary file is a finding, not a crash", func(t *testing.T) {
		bin := write(t, dir, "bin/image.yaml", []byte{0x89, 'P', 'N', 'G', 0, 0, 1, 2, 0xff, 0xfe})
		res, err := Loader{}.Load([]string{bin})
		require.NoError(t, err)
		require.Len(t, res.Problems, 1)
		require.Contains(t, res.Problems[0].Message, "not a text file")
	})
	t.Run("a symlink that loops on itself is an error", func(t *testing.T) {
		loopDir := filepath.Join(dir, "selfloop")
		require.NoError(t, os.MkdirAll(loopDir, 0o755))
		require.NoError(t, os.Symlink("loop.yaml", filepath.Join(loopDir, "loop.yaml")))
		_, err := Loader{}.Load([]string{loopDir})
		require.Error(t, err)
		require.Contains(t, err.Error(), "loop.yaml")
	})
	t.Run("a directory cycle is read once and reported as skipped", func(t *testing.T) {
		cyc := filepath.Join(dir, "cycle")
		write(t, cyc, "sub/vs.yaml", []byte(vs))
		require.NoError(t, os.Symlink("..", filepath.Join(cyc, "sub", "up")))
		res, err := Loader{}.Load([]string{cyc})
		require.NoError(t, err)
		require.Len(t, res.Objects, 1)
		require.NotEmpty(t, res.Skipped)
	})
	t.Run("an alias bomb is refused", func(t *testing.T) {
		bomb := "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
		_, problems := Parse("bomb.yaml", []byte(bomb))
		require.Len(t, problems, 1)
		require.Contains(t, problems[0].Message, "alias")
	})
	t.Run("an alias to itself is refused at the depth limit", func(t *testing.T) {
		_, problems := Parse("self.yaml", []byte("c: &c [*c, 1]\n"))
		require.Len(t, problems, 1)
		require.Contains(t, problems[0].Message, "nest deeper than 256 levels")
		require.Less(t, len(problems[0].Path), 2000, "the path stops at the limit too")
	})
	t.Run("a List of 100,000 objects is read, not refused as an alias bomb", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("apiVersion: v1\nkind: List\nitems:\n")
		for i := 0; i < 100_000; i++ {
			fmt.Fprintf(&b, "- apiVersion: networking.istio.io/v1\n  kind: DestinationRule\n  metadata: {name: dr%d, namespace: shop}\n  spec: {host: svc%d}\n", i, i)
		}
		objs, problems := Parse("list.yaml", []byte(b.String()))
		require.Empty(t, problems)
		require.Len(t, objs, 100_000)
	})
	t.Run("standard input is read", func(t *testing.T) {
		res, err := Loader{Stdin: strings.NewReader(vs)}.Load([]string{Stdin})
		require.NoError(t, err)
		require.Len(t, res.Objects, 1)
		require.Equal(t, "<stdin>", res.Objects[0].File)
	})
}

func TestTheIstioCorpusLoads(t *testing.T) {
	root := "../../../shared/corpus/istio"
	if _, err := os.Stat(root); err != nil {
		t.Skip("corpus not beside this checkout")
	}
	res, err := Loader{}.Load([]string{root})
	require.NoError(t, err)
	require.Greater(t, len(res.Objects), 150)
	for _, o := range res.Objects {
		if InventoryOnly(o.Kind) {
			continue
		}
		// Whatever the field-by-field check accepts, Istio's own decoder accepts too.
		_, err := o.Spec()
		require.NoError(t, err, "%s %s", o.File, o.Ref())
	}
	for _, p := range res.Problems {
		// Only the inputs Istio itself marks invalid may fail to decode.
		require.True(t, strings.HasSuffix(p.File, "-invalid.yaml"), "unexpected problem: %v", p)
	}
	var invalid []string
	for _, p := range res.Problems {
		invalid = append(invalid, p.Name)
	}
	// These two are type errors the istio.io/api types cannot hold; the other invalid inputs
	// break CRD-level validations (ranges, required fields) that Istio checks elsewhere.
	require.ElementsMatch(t, []string{"bad-mode", "bad-port"}, invalid)
}
