package validate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/meshguard/meshguard/internal/validate"
)

var (
	sharedOnce sync.Once
	shared     *validate.Validator
	sharedErr  error
)

// validator compiles the CRDs once for the whole test binary, as a process does.
func validator(t testing.TB) *validate.Validator {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedErr = validate.New() })
	require.NoError(t, sharedErr)
	return shared
}

func parseOne(t testing.TB, doc string) *manifest.Object {
	t.Helper()
	objs, probs := manifest.Parse("test.yaml", []byte(doc))
	require.Empty(t, probs)
	require.Len(t, objs, 1)
	return objs[0]
}

// rawOf decodes a document as the API server does, without meshguard's own strict decode.
func rawOf(t testing.TB, doc string) map[string]any {
	t.Helper()
	var raw map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(doc), &raw))
	return raw
}

func TestTheCRDSchemaRefusesWhatKubectlApplyRefuses(t *testing.T) {
	v := validator(t)
	const vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: checkout, namespace: shop}\nspec:\n  hosts: [checkout]\n  http:\n  - route: [{destination: {host: checkout}}]\n"
	for _, tc := range []struct {
		name     string
		doc      string
		wantPath string // "" means the object is valid
		wantMsg  string
	}{
		{"a well-formed route passes", vs + "    timeout: 5s\n    retries: {attempts: 2, perTryTimeout: 1s}\n", "", ""},
		{"attempts written as a string is a type error", vs + "    retries: {attempts: \"2\"}\n", "spec.http[0].retries.attempts", "must be of type integer"},
		{"a negative timeout is refused", vs + "    timeout: -5s\n", "spec.http[0].timeout", "duration"},
		{"a timeout under a millisecond is refused", vs + "    timeout: 500us\n", "spec.http[0].timeout", "1ms"},
		{"a per-try timeout under a millisecond is refused", vs + "    retries: {attempts: 2, perTryTimeout: 100us}\n", "spec.http[0].retries.perTryTimeout", "1ms"},
		{"a port-level mTLS port above 65535 is refused", "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p, namespace: shop}\nspec:\n  selector: {matchLabels: {app: a}}\n  portLevelMtls: {\"70000\": {mode: STRICT}}\n", "spec.portLevelMtls", "65535"},
		{"a top-level field the CRD does not know is refused", vs + "specs: {}\n", "specs", `unknown field "specs"`},
		{"an upper-case name is refused", strings.Replace(vs, "name: checkout", "name: Checkout", 1), "metadata.name", "RFC 1123"},
		{"a label key that is not a qualified name is refused", strings.Replace(vs, "namespace: shop}", "namespace: shop, labels: {\"a b\": x}}", 1), "metadata.labels", "name part must consist of"},
		{"a version the CRD does not serve is refused", strings.Replace(vs, "networking.istio.io/v1", "networking.istio.io/v2", 1), "apiVersion", "no matches for kind"},
		{"status is dropped on create, as the API server drops it", vs + "status: {anything: 1}\n", "", ""},
		{"a null the schema does not allow is dropped, as the API server drops it", vs + "    timeout: null\n    retries: {attempts: 2, perTryTimeout: null}\n", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			issues := v.Schema(context.Background(), rawOf(t, tc.doc))
			if tc.wantPath == "" {
				require.Empty(t, issues)
				return
			}
			require.NotEmpty(t, issues)
			require.Equal(t, tc.wantPath, issues[0].Path, "%+v", issues)
			require.Contains(t, issues[0].Message, tc.wantMsg)
			require.Equal(t, validate.SourceAPIServer, issues[0].Source)
		})
	}
}

func TestIstiodRefusesWhatItsWebhookRefuses(t *testing.T) {
	v := validator(t)
	for _, tc := range []struct {
		name    string
		doc     string
		wantErr string // "" means no error
		warning string // "" means no warning
	}{
		{"a DestinationRule with a host passes", "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r, namespace: shop}\nspec: {host: reviews}\n", "", ""},
		{"retryOn with a space after the comma is refused", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, namespace: shop}\nspec:\n  hosts: [r]\n  http:\n  - route: [{destination: {host: r}}]\n    retries: {attempts: 2, retryOn: \"5xx, connect-failure\"}\n", "retryOn", ""},
		{"port-level mTLS without a selector is refused", "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p, namespace: shop}\nspec:\n  portLevelMtls: {\"8080\": {mode: DISABLE}}\n", "selector", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var errs, warns []string
			for _, is := range v.Object(context.Background(), parseOne(t, tc.doc), false) {
				if is.Warning {
					warns = append(warns, is.Message)
				} else {
					errs = append(errs, is.Source+": "+is.Message)
				}
			}
			if tc.wantErr == "" {
				require.Empty(t, errs)
			} else {
				require.NotEmpty(t, errs)
				require.Contains(t, strings.Join(errs, "\n"), tc.wantErr)
			}
			if tc.warning == "" {
				require.Empty(t, warns)
			} else {
				require.Contains(t, strings.Join(warns, "\n"), tc.warning)
			}
		})
	}
}

var updateCRDs = flag.Bool("update-crds", false, "write crds.gen.json from the istio.io/api module go.mod pins (go generate)")

// TestTheEmbeddedCRDsAreThoseOfThePinnedAPIModule fails when go.mod moves istio.io/api and
// `go generate ./internal/validate` was not run.
func TestTheEmbeddedCRDsAreThoseOfThePinnedAPIModule(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/api").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	module, err := os.ReadFile(filepath.Join(string(bytes.TrimSpace(out)), "kubernetes", "customresourcedefinitions.gen.yaml"))
	require.NoError(t, err)
	want := crdsByKind(t, module)
	if *updateCRDs {
		require.NoError(t, os.WriteFile("crds.gen.json", want, 0o644))
	}
	got, err := os.ReadFile("crds.gen.json")
	require.NoError(t, err)
	require.True(t, bytes.Equal(want, got), "crds.gen.json differs from istio.io/api's CRDs: run go generate ./internal/validate")
}

// crdsByKind is the embedded form of a file of CRDs: each document as JSON, keyed by group/Kind.
func crdsByKind(t *testing.T, data []byte) []byte {
	t.Helper()
	byKind := map[string]json.RawMessage{}
	for _, doc := range regexp.MustCompile(`(?m)^---[ \t]*$`).Split(string(data), -1) {
		var crd struct {
			Kind string `json:"kind"`
			Spec struct {
				Group string `json:"group"`
				Names struct {
					Kind string `json:"kind"`
				} `json:"names"`
			} `json:"spec"`
		}
		js, err := yaml.YAMLToJSON([]byte(doc))
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(js, &crd))
		if crd.Kind != "CustomResourceDefinition" {
			continue // an empty document
		}
		byKind[crd.Spec.Group+"/"+crd.Spec.Names.Kind] = js
	}
	require.NotEmpty(t, byKind)
	// One kind a line, so that a new istio.io/api shows in a diff as the kinds it changed.
	keys := slices.Sorted(maps.Keys(byKind))
	var out bytes.Buffer
	out.WriteString("{\n")
	for i, k := range keys {
		var compact bytes.Buffer
		require.NoError(t, json.Compact(&compact, byKind[k]))
		fmt.Fprintf(&out, "%q: %s", k, compact.Bytes())
		if i < len(keys)-1 {
			out.WriteString(",")
		}
		out.WriteString("\n")
	}
	out.WriteString("}\n")
	return out.Bytes()
}

func TestEveryEmbeddedCRDCompiles(t *testing.T) {
	kinds, err := validate.CompileAll(validator(t))
	require.NoError(t, err)
	require.GreaterOrEqual(t, kinds, 15, "Istio's API defines at least 15 kinds")
}

// The schema validator keeps the validators of nested fields from one object to the next, by
// path; a map key holding a '.' would make a path name two places of the schema.
func TestValidatorsKeptAcrossObjectsNeverJudgeAFieldByAnotherPlacesSchema(t *testing.T) {
	v, err := validate.New() // its own: the order of the objects is the point
	require.NoError(t, err)
	vs := func(headers string) map[string]any {
		return rawOf(t, "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a, namespace: b}\nspec:\n  hosts: [a]\n  http:\n  - match: [{headers: "+headers+"}]\n    route: [{destination: {host: a}}]\n")
	}
	for _, step := range []struct {
		name     string
		headers  string
		wantPath string // "" means valid; the API server's path, which runs keys in with dots
	}{
		{"header x as a StringMatch is valid", `{x: {exact: v}}`, ""},
		{"header x.exact is a StringMatch too, not the string field exact of header x", `{x.exact: {prefix: v}}`, ""},
		{"header x with a number for exact is still refused", `{x: {exact: 5}}`, "spec.http[0].match[0].headers.x.exact"},
		{"header x.exact with a number inside is refused at its own path", `{x.exact: {prefix: 5}}`, "spec.http[0].match[0].headers.x.exact.prefix"},
		{"a key that reads as a list index is a StringMatch too", `{"x[0]": {exact: v}}`, ""},
	} {
		t.Run(step.name, func(t *testing.T) {
			issues := v.Schema(context.Background(), vs(step.headers))
			if step.wantPath == "" {
				require.Empty(t, issues)
				return
			}
			require.NotEmpty(t, issues)
			require.Equal(t, step.wantPath, issues[0].Path, "%v", issues)
		})
	}
}

func TestOneValidatorJudgesAlikeFromManyGoroutines(t *testing.T) {
	v, err := validate.New()
	require.NoError(t, err)
	var objs []map[string]any
	for i, route := range []string{
		"route: [{destination: {host: a}}]",
		"route: [{destination: {host: a, port: {number: x}}}]",
		"retries: {attempts: \"2\"}\n    route: [{destination: {host: a}}]",
		"timeout: -5s\n    route: [{destination: {host: a}}, {destination: {host: b}, weight: 200}]",
		"match: [{headers: {x.exact: {prefix: 5}, y: {exact: v}}}]\n    route: [{destination: {host: a}}]",
	} {
		objs = append(objs, rawOf(t, fmt.Sprintf("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a%d, namespace: b}\nspec:\n  hosts: [a]\n  http:\n  - %s\n", i, route)))
	}
	// What a fresh validator says of each object alone.
	want := make([][]validate.Issue, len(objs))
	for i, o := range objs {
		alone, err := validate.New()
		require.NoError(t, err)
		want[i] = alone.Schema(context.Background(), o)
	}
	var wg sync.WaitGroup
	got := make([][][]validate.Issue, 8)
	for g := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				for i := range objs {
					got[g] = append(got[g], v.Schema(context.Background(), objs[(i+g)%len(objs)]))
				}
			}
		}()
	}
	wg.Wait()
	for g := range got {
		for k, issues := range got[g] {
			require.Equal(t, want[(k%len(objs)+g)%len(objs)], issues, "goroutine %d, call %d", g, k)
		}
	}
}

func TestTheValidatorsKeptStopAtTheirBoundAndJudgeAlikePastIt(t *testing.T) {
	v, err := validate.New()
	require.NoError(t, err)
	// One route matching on many headers: every header is a path of its own.
	n := validate.MaxCachedValidators + 1000
	var headers strings.Builder
	for i := range n {
		fmt.Fprintf(&headers, "h%d: {exact: v}, ", i)
	}
	doc := func(last string) map[string]any {
		return rawOf(t, "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a, namespace: b}\nspec:\n  hosts: [a]\n  http:\n  - match: [{headers: {"+headers.String()+"last: "+last+"}}]\n    route: [{destination: {host: a}}]\n")
	}
	require.Empty(t, v.Schema(context.Background(), doc("{exact: v}")))
	kept := validate.CachedValidators(v, "networking.istio.io", "VirtualService")
	require.Equal(t, validate.MaxCachedValidators, kept)
	// Past the bound, validators are built as kube-openapi builds them, and still refuse.
	issues := v.Schema(context.Background(), doc("{exact: 5}"))
	require.NotEmpty(t, issues)
	require.Equal(t, "spec.http[0].match[0].headers.last.exact", issues[0].Path)
	require.Equal(t, kept, validate.CachedValidators(v, "networking.istio.io", "VirtualService"))
}
