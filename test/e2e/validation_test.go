package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/internal/engine"
	"github.com/meshguard/meshguard/internal/lint"
	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/meshguard/meshguard/internal/validate"
	"github.com/meshguard/meshguard/policies"
	"github.com/meshguard/meshguard/test/harness"
)

// valCallTimeout bounds one dry-run create.
const valCallTimeout = 30 * time.Second

// valCase is one object sent to both judges.
type valCase struct {
	name string // file and document, plus the mutation applied
	obj  map[string]any
}

// TestValidationAgreesWithTheAPIServer sends every Istio object of the shared corpus, and a
// corpus of mutations of them, to a real kube-apiserver with the Istio CRDs (dry run, strict
// field validation, no webhook registered) and to meshguard. meshguard's verdict from the
// decode and the CRD schema (MG001 findings not attributed to istiod) must equal the API
// server's on every object; istiod's refusals are counted apart, since no istiod runs here.
// Kinds lint does not read are judged by the validator alone.
func TestValidationAgreesWithTheAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts kube-apiserver and etcd")
	}
	corpus := filepath.Join("..", "..", "..", "shared", "corpus")
	if _, err := os.Stat(corpus); err != nil {
		t.Skipf("the shared corpus is not at ../shared/corpus beside the repository (%v); nothing to compare", err)
	}
	base := valCorpus(t, corpus)
	require.NotEmpty(t, base, "no Istio object found under %s", corpus)
	mutants := valMutations(base)
	cases := append(append([]valCase{}, base...), mutants...)
	t.Logf("%d corpus objects, %d mutations", len(base), len(mutants))

	ctx := context.Background()
	val, err := validate.Default()
	require.NoError(t, err)
	eng, err := policies.Engine(ctx, config.Default(), nil, nil)
	require.NoError(t, err)

	cp := harness.StartControlPlane(t)
	dyn, err := dynamic.NewForConfig(cp.Config())
	require.NoError(t, err)
	dc, err := discovery.NewDiscoveryClientForConfig(cp.Config())
	require.NoError(t, err)
	groups, err := restmapper.GetAPIGroupResources(dc)
	require.NoError(t, err)
	mapper := restmapper.NewDiscoveryRESTMapper(groups)
	// Only kinds the Istio CRDs define are compared: for another kind (QuotaSpec, a type Istio
	// has removed) both kubectl and meshguard say nothing about its content.
	known := cases[:0]
	for _, c := range cases {
		u := &unstructured.Unstructured{Object: c.obj}
		if _, err := mapper.RESTMapping(u.GroupVersionKind().GroupKind()); err != nil {
			t.Logf("%s: skipped, not a kind of the Istio CRDs (%v)", c.name, err)
			continue
		}
		known = append(known, c)
	}
	cases = known
	namespaces := map[string]bool{"default": true}
	for _, c := range cases {
		if ns := valNamespace(c.obj); !namespaces[ns] {
			namespaces[ns] = true
			cp.CreateNamespace(t, ns, nil)
		}
	}

	var agreed, refused, istiodOnly, validatorOnly int
	for _, c := range cases {
		apiErr := valDryRun(ctx, dyn, mapper, c.obj)
		mine, istiod, byLint := valMeshguard(ctx, t, eng, val, c)
		if !byLint {
			validatorOnly++
		}
		if (apiErr != nil) != (len(mine) > 0) {
			doc, _ := json.Marshal(c.obj)
			t.Errorf("%s: the API server and meshguard disagree\n  API server: %v\n  meshguard:  %s\n  object: %s",
				c.name, orAccepted(apiErr), orAcceptedList(mine), doc)
			continue
		}
		agreed++
		if apiErr != nil {
			refused++
		} else if len(istiod) > 0 {
			istiodOnly++
		}
	}
	t.Logf("API server agreement: %d of %d objects (%d refused by both; %d judged by the validator alone, kinds lint does not read); istiod also refuses %d the API server accepts",
		agreed, len(cases), refused, validatorOnly, istiodOnly)
}

// valMeshguard is meshguard's verdict: the messages of the MG001 findings that a cluster's API
// server would share (decode and CRD schema) and, apart, istiod's.
func valMeshguard(ctx context.Context, t *testing.T, eng *engine.Engine, val *validate.Validator, c valCase) (mine, istiod []string, byLint bool) {
	t.Helper()
	data, err := json.Marshal(c.obj)
	require.NoError(t, err)
	objs, problems := manifest.Parse(c.name+".json", data)
	if len(objs) == 0 && len(problems) == 0 {
		// A kind lint does not read: the validator's CRD schema verdict alone.
		for _, is := range val.Schema(ctx, c.obj) {
			mine = append(mine, is.Path+": "+is.Message)
		}
		return mine, nil, false
	}
	findings, err := lint.Run(ctx, eng, objs, problems, false)
	require.NoError(t, err)
	for _, f := range findings {
		if f.Rule != engine.RuleInvalidDocument {
			continue
		}
		if strings.HasPrefix(f.Message, validate.SourceIstiod+": ") {
			istiod = append(istiod, f.Path+": "+f.Message)
		} else {
			mine = append(mine, f.Path+": "+f.Message)
		}
	}
	return mine, istiod, true
}

// valDryRun creates obj with dryRun=All and fieldValidation=Strict, as `kubectl apply
// --dry-run=server` does.
func valDryRun(ctx context.Context, dyn dynamic.Interface, mapper meta.RESTMapper, obj map[string]any) error {
	u := &unstructured.Unstructured{Object: obj}
	gv, err := schema.ParseGroupVersion(u.GetAPIVersion())
	if err != nil {
		return err
	}
	m, err := mapper.RESTMapping(gv.WithKind(u.GetKind()).GroupKind(), gv.Version)
	if err != nil {
		return err // kubectl refuses an unserved version the same way
	}
	ctx, cancel := context.WithTimeout(ctx, valCallTimeout)
	defer cancel()
	_, err = dyn.Resource(m.Resource).Namespace(valNamespace(obj)).Create(ctx, &unstructured.Unstructured{Object: valCopy(obj)},
		metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: metav1.FieldValidationStrict})
	return err
}

func valNamespace(obj map[string]any) string {
	meta, _ := obj["metadata"].(map[string]any)
	if ns, _ := meta["namespace"].(string); ns != "" {
		return ns
	}
	return "default"
}

// valCorpus reads every Istio object (an apiVersion in an istio.io group) under root.
func valCorpus(t *testing.T, root string) []valCase {
	t.Helper()
	var out []valCase
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch filepath.Ext(path) {
		case ".yaml", ".yml", ".json":
		default:
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for i := 0; ; i++ {
			var obj map[string]any
			if err := dec.Decode(&obj); err != nil {
				if !errors.Is(err, io.EOF) {
					t.Logf("%s: stops at document %d: %v", rel, i, err)
				}
				break
			}
			apiVersion, _ := obj["apiVersion"].(string)
			group, _, _ := strings.Cut(apiVersion, "/")
			if !strings.HasSuffix(group, "istio.io") {
				continue
			}
			out = append(out, valCase{name: fmt.Sprintf("%s#%d %s", rel, i, obj["kind"]), obj: obj})
		}
		return nil
	})
	require.NoError(t, err)
	return out
}

// valMutations derives invalid and borderline objects from the corpus: fields removed or null,
// values of the wrong type, numbers out of range, bad durations, unknown fields, values that break the
// CRDs' CEL rules, and Telemetry expressions that are not CEL. Each object yields a few of each, chosen by position so the corpus is the
// same on every run.
func valMutations(base []valCase) []valCase {
	var out []valCase
	for _, c := range base {
		spec, ok := c.obj["spec"].(map[string]any)
		if !ok {
			continue
		}
		var leaves []valLeaf
		valWalk(spec, []any{"spec"}, &leaves)
		if len(leaves) == 0 {
			continue
		}
		add := func(what string, edit func(obj map[string]any) bool) {
			obj := valCopy(c.obj)
			if edit(obj) {
				out = append(out, valCase{name: c.name + " with " + what, obj: obj})
			}
		}
		for i, l := range valPick(leaves, 3) {
			p := l.path
			add(fmt.Sprintf("%s removed", valPathString(p)), func(o map[string]any) bool { return valDelete(o, p) })
			add(fmt.Sprintf("%s of the wrong type", valPathString(p)), func(o map[string]any) bool { return valSet(o, p, valWrongType(l.value)) })
			add(fmt.Sprintf("%s = null", valPathString(p)), func(o map[string]any) bool { return valSet(o, p, nil) })
			add(fmt.Sprintf("an unknown field beside %s", valPathString(p)), func(o map[string]any) bool {
				return valSet(o, append(append([]any{}, p[:len(p)-1]...), "unknownField"), true)
			})
			if _, isNum := l.value.(float64); isNum {
				bad := []float64{-1, 70000, 4294967296}[i%3]
				add(fmt.Sprintf("%s = %v", valPathString(p), bad), func(o map[string]any) bool { return valSet(o, p, bad) })
			}
		}
		for i, l := range leaves {
			s, ok := l.value.(string)
			if !ok || !valIsDuration(s) {
				continue
			}
			bad := []string{"-5s", "500us", "0.5ms", "5 s", "1.5"}[i%5]
			p := l.path
			add(fmt.Sprintf("%s = %q", valPathString(p), bad), func(o map[string]any) bool { return valSet(o, p, bad) })
		}
		// Values that only the CRDs' CEL rules refuse.
		switch c.obj["kind"] {
		case "PeerAuthentication":
			add("a port-level setting on port 0", func(o map[string]any) bool {
				return valSet(o, []any{"spec", "portLevelMtls"}, map[string]any{"0": map[string]any{"mode": "STRICT"}}) &&
					valSet(o, []any{"spec", "selector"}, map[string]any{"matchLabels": map[string]any{"app": "a"}})
			})
			add("a port-level setting without a selector", func(o map[string]any) bool {
				valDelete(o, []any{"spec", "selector"})
				return valSet(o, []any{"spec", "portLevelMtls"}, map[string]any{"8080": map[string]any{"mode": "DISABLE"}})
			})
		case "Telemetry", "AuthorizationPolicy", "RequestAuthentication", "WasmPlugin":
			if c.obj["kind"] == "Telemetry" {
				// Expressions that are not CEL: the CRD takes any string, istiod refuses them.
				add("an access log filter that is not CEL", func(o map[string]any) bool {
					return valSet(o, []any{"spec", "accessLogging"}, []any{map[string]any{"filter": map[string]any{"expression": "response.code >="}}})
				})
				add("a tag override that is not CEL", func(o map[string]any) bool {
					return valSet(o, []any{"spec", "metrics"}, []any{map[string]any{"overrides": []any{map[string]any{
						"tagOverrides": map[string]any{"source": map[string]any{"value": `request.host | "unknown"`}}}}}})
				})
			}
			add("both selector and targetRef", func(o map[string]any) bool {
				return valSet(o, []any{"spec", "selector"}, map[string]any{"matchLabels": map[string]any{"app": "a"}}) &&
					valSet(o, []any{"spec", "targetRef"}, map[string]any{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "g"})
			})
		case "DestinationRule", "VirtualService", "Gateway", "ServiceEntry":
			add("a wildcard in exportTo", func(o map[string]any) bool {
				return valSet(o, []any{"spec", "exportTo"}, []any{"*", "shop"})
			})
		}
	}
	return out
}

type valLeaf struct {
	path  []any // string keys and int indices from the object's root
	value any
}

func valWalk(v any, path []any, out *[]valLeaf) {
	switch t := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			valWalk(t[k], append(append([]any{}, path...), k), out)
		}
	case []any:
		for i, e := range t {
			valWalk(e, append(append([]any{}, path...), i), out)
		}
	default:
		*out = append(*out, valLeaf{path: path, value: v})
	}
}

// valPick takes n leaves spread over the list.
func valPick(leaves []valLeaf, n int) []valLeaf {
	if len(leaves) <= n {
		return leaves
	}
	out := make([]valLeaf, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, leaves[i*len(leaves)/n])
	}
	return out
}

func valWrongType(v any) any {
	switch t := v.(type) {
	case string:
		return 42
	case float64:
		return fmt.Sprint(t) // attempts: "2"
	case bool:
		return "yes"
	}
	return map[string]any{"a": 1}
}

func valIsDuration(s string) bool {
	_, err := time.ParseDuration(s)
	return err == nil && strings.ContainsAny(s, "hms")
}

// valParent walks to the container holding path's last element, creating maps on the way when
// create is set.
func valParent(obj map[string]any, path []any, create bool) (any, bool) {
	var cur any = obj
	for _, seg := range path[:len(path)-1] {
		switch c := cur.(type) {
		case map[string]any:
			k, _ := seg.(string)
			next, ok := c[k]
			if !ok {
				if !create {
					return nil, false
				}
				next = map[string]any{}
				c[k] = next
			}
			cur = next
		case []any:
			i, _ := seg.(int)
			if i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

func valSet(obj map[string]any, path []any, v any) bool {
	parent, ok := valParent(obj, path, true)
	if !ok {
		return false
	}
	switch c := parent.(type) {
	case map[string]any:
		k, _ := path[len(path)-1].(string)
		c[k] = v
		return true
	case []any:
		i, _ := path[len(path)-1].(int)
		c[i] = v
		return true
	}
	return false
}

func valDelete(obj map[string]any, path []any) bool {
	parent, ok := valParent(obj, path, false)
	if !ok {
		return false
	}
	m, ok := parent.(map[string]any)
	if !ok {
		return false
	}
	k, _ := path[len(path)-1].(string)
	if _, ok := m[k]; !ok {
		return false
	}
	delete(m, k)
	return true
}

func valCopy(obj map[string]any) map[string]any {
	data, _ := json.Marshal(obj)
	var out map[string]any
	_ = json.Unmarshal(data, &out)
	return out
}

func valPathString(path []any) string {
	var b strings.Builder
	for i, seg := range path {
		switch s := seg.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", s)
		case string:
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s)
		}
	}
	return b.String()
}

func orAccepted(err error) string {
	if err == nil {
		return "accepted"
	}
	return err.Error()
}

func orAcceptedList(msgs []string) string {
	if len(msgs) == 0 {
		return "accepted"
	}
	return strings.Join(msgs, "; ")
}
