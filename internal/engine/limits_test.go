package engine_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/internal/engine"
	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/meshguard/meshguard/policies"
)

var day = func() time.Time { return time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC) }

// newEngine builds the built-in bundle plus extra rules and Rego modules, with cfgYAML over the
// defaults.
func newEngine(t testing.TB, cfgYAML string, extra []*engine.Rule, rego map[string]string) (*engine.Engine, error) {
	t.Helper()
	cfg := config.Default()
	require.NoError(t, config.Parse([]byte(cfgYAML), cfg))
	rules, err := policies.All()
	require.NoError(t, err)
	var custom *engine.CustomRego
	if rego != nil {
		custom, err = engine.NewCustomRego(rego)
		require.NoError(t, err)
	}
	return engine.New(context.Background(), engine.Options{Rules: append(rules, extra...), Custom: custom, Config: cfg, Now: day})
}

func celRule(t testing.TB, yaml string) *engine.Rule {
	t.Helper()
	r, err := engine.ParseCELRuleFile([]byte(yaml), "user.yaml")
	require.NoError(t, err)
	return r
}

func review(t testing.TB, e *engine.Engine, doc string) ([]engine.Finding, error) {
	t.Helper()
	objs, problems := manifest.Parse("in.yaml", []byte(doc))
	require.Empty(t, problems)
	require.Len(t, objs, 1)
	return e.Review(context.Background(), objs[0], engine.NewIndex(objs, false, "istio-system", "cluster.local"))
}

func rulesOf(fs []engine.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Rule+" "+f.Severity.String()+" "+f.Path)
	}
	slices.Sort(out)
	return out
}

const overflowVS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: overflow, namespace: shop}
spec:
  hosts: [cart]
  http:
  - route: [{destination: {host: cart}}]
    timeout: 1s
    retries: {attempts: 2147483647, perTryTimeout: 100000000s}
`

func TestARuleThatFailsOnAnObjectIsAnErrorFindingAndTheOthersStillReport(t *testing.T) {
	// A user rule that fails on every route (an int conversion of a non-number), next to the
	// built-in rules that must still report the retry storm.
	failing := celRule(t, `id: ACME101
title: Fails on every route
severity: info
kinds: [VirtualService]
scope: httpRoute
remediation: none
cel: "int(string(site.timeout) + 'x') > 0 ? [] : []"
`)
	e, err := newEngine(t, "", []*engine.Rule{failing}, nil)
	require.NoError(t, err)
	fs, err := review(t, e, overflowVS)
	require.NoError(t, err)
	got := rulesOf(fs)
	require.Contains(t, got, "ACME101 error spec.http[0]", "an info rule that fails is an error finding: what it would have found is unknown")
	require.Contains(t, got, "MG101 error spec.http[0].retries.attempts", "the other rules still deny")
	require.Contains(t, got, "MG104 warning spec.http[0].retries.perTryTimeout", "(attempts + 1) x perTryTimeout does not overflow")
	for _, f := range fs {
		if f.Rule == "ACME101" {
			require.Contains(t, f.Message, "could not be evaluated")
		}
	}
}

// failingTwin replaces a rule by one with the same ID, kinds and scope whose evaluation always
// fails at run time.
func failingTwin(r *engine.Rule) *engine.Rule {
	twin := *r
	switch r.Lang {
	case "cel":
		twin.Expr = "int(string(object.kind) + 'x') > 0 ? [] : []"
	case "rego":
		// A function with two answers for one input: a conflict, which OPA reports as an
		// evaluation error.
		twin.Rego = "package " + r.RegoPackage + "\n\nimport rego.v1\n\nviolation contains v if {\n\tv := f(input)\n}\n\nf(x) := 1 if x\n\nf(x) := 2 if x\n"
	}
	return &twin
}

// TestNoRuleFailureChangesAnotherRulesVerdict is the property behind "nothing an author writes
// turns a deny into an allow": for every rule of the bundle, a run where that rule fails on
// every object reports exactly what the healthy run reports for every other rule, on every
// rule's own pass and fail cases.
func TestNoRuleFailureChangesAnotherRulesVerdict(t *testing.T) {
	all, err := policies.All()
	require.NoError(t, err)
	var docs []*manifest.Object
	for _, r := range all {
		for _, name := range []string{"pass.yaml", "fail.yaml"} {
			data, err := fs.ReadFile(r.FS, path.Join(r.Dir, "testdata", name))
			require.NoError(t, err)
			objs, _ := manifest.Parse(r.ID+"/"+name, data)
			docs = append(docs, objs...)
		}
	}
	inv := engine.NewIndex(docs, true, "istio-system", "cluster.local")
	healthy, err := engine.New(context.Background(), engine.Options{Rules: all, Now: day})
	require.NoError(t, err)
	baseline := make([][]engine.Finding, len(docs))
	for i, o := range docs {
		baseline[i], err = healthy.Review(context.Background(), o, inv)
		require.NoError(t, err)
	}
	for _, victim := range all {
		if victim.Lang == "go" {
			continue // built into the engine: nothing to replace
		}
		t.Run(victim.ID+" failing leaves the other rules' findings alone", func(t *testing.T) {
			rules := slices.Clone(all)
			for i, r := range rules {
				if r.ID == victim.ID {
					rules[i] = failingTwin(r)
				}
			}
			e, err := engine.New(context.Background(), engine.Options{Rules: rules, Now: day})
			require.NoError(t, err)
			failedOn := 0
			for i, o := range docs {
				got, err := e.Review(context.Background(), o, inv)
				require.NoError(t, err)
				var others []engine.Finding
				for _, f := range got {
					if f.Rule == victim.ID {
						require.Equal(t, engine.SeverityError, f.Severity)
						require.Contains(t, f.Message, "could not be evaluated")
						failedOn++
					} else {
						others = append(others, f)
					}
				}
				want := slices.DeleteFunc(slices.Clone(baseline[i]), func(f engine.Finding) bool { return f.Rule == victim.ID })
				require.Equal(t, rulesOf(want), rulesOf(others), "object %s", o.Ref())
			}
			if victim.Scope != engine.ScopeInventory {
				require.Positive(t, failedOn, "the failing rule is reported on the objects it applies to")
			}
		})
	}
}

func nestedList(depth int) string {
	return strings.Repeat("[", depth) + "1" + strings.Repeat("]", depth) + " == []"
}

func telemetryWith(expr string) string {
	return fmt.Sprintf(`apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: t, namespace: shop}
spec:
  accessLogging:
  - providers: [{name: envoy}]
    filter:
      expression: %q
`, expr)
}

func TestObjectSuppliedCELIsBoundedBeforeItIsCompiled(t *testing.T) {
	e, err := newEngine(t, "", nil, nil)
	require.NoError(t, err)
	tests := []struct {
		name    string
		expr    string
		problem string // "" when the expression must pass
	}{
		{"Istio's documented peer attribute is valid", "upstream_peer.labels['app'].value == 'reviews'", ""},
		{"a list nested to the depth limit compiles", nestedList(engine.MaxEnvoyCELDepth - 2), ""},
		{"a list nested one past the depth limit is refused", nestedList(engine.MaxEnvoyCELDepth + 1), "recursion"},
		{"the 245-deep list that once took 1.75 s to compile is refused", nestedList(245), "recursion"},
		{"an expression at the length limit is compiled", "request.path == '" + strings.Repeat("a", engine.MaxEnvoyCELBytes-18) + "'", ""},
		{"an expression one byte over the length limit is not compiled", "request.path == '" + strings.Repeat("a", engine.MaxEnvoyCELBytes-17) + "'", "over meshguard's limit"},
		{"three nested comprehensions are refused", "[1].all(a, [2].all(b, [3].all(c, a < b)))", "nest"},
		{"two nested comprehensions are compiled", "[1].all(a, [2].all(b, a < b))", ""},
		{"a list of 1,990 elements is compiled", "[" + strings.Repeat("1,", 1989) + "1] == []", ""},
		{"a list of 2,001 elements is over the node limit", "[" + strings.Repeat("1,", 2000) + "1] == []", "node"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, err := review(t, e, telemetryWith(tt.expr))
			require.NoError(t, err)
			var msgs []string
			for _, f := range fs {
				if f.Rule == "MG403" {
					msgs = append(msgs, f.Message)
				}
			}
			if tt.problem == "" {
				require.Empty(t, msgs)
				return
			}
			require.Len(t, msgs, 1)
			require.Contains(t, msgs[0], tt.problem)
		})
	}
}

func TestUserCELRulesStopAtTheirCostLimit(t *testing.T) {
	// Nested ranges of a million: 10^12 steps, which ran for minutes and reached 6.2 GB before
	// the cost limit.
	costly := celRule(t, `id: ACME102
title: Costly
severity: warning
kinds: [VirtualService]
remediation: none
cel: "lists.range(1000000).exists(i, lists.range(1000000).exists(j, i + j < 0)) ? [{'field': 'spec', 'message': 'never'}] : []"
`)
	e, err := newEngine(t, "", []*engine.Rule{costly}, nil)
	require.NoError(t, err)
	fs, err := review(t, e, overflowVS)
	require.NoError(t, err)
	var msg string
	for _, f := range fs {
		if f.Rule == "ACME102" {
			msg = f.Message
			require.Equal(t, engine.SeverityError, f.Severity)
		}
	}
	require.Contains(t, msg, "cost limit")
	require.Contains(t, rulesOf(fs), "MG101 error spec.http[0].retries.attempts")
}

func TestAnEvaluationPastItsTimeoutIsRefusedAsMG002(t *testing.T) {
	// A Rego comprehension of 10^12 steps; OPA stops at the deadline.
	slow := map[string]string{"slow.rego": `package acme.slow

import rego.v1

deny contains msg if {
	n := count([x | some x in numbers.range(1, 1000000); some y in numbers.range(1, 1000000); x == y + 2000000])
	msg := sprintf("%d", [n])
}
`}
	e, err := newEngine(t, "evaluation: {timeout: 200ms}\n", nil, slow)
	require.NoError(t, err)
	fs, err := review(t, e, overflowVS)
	require.NoError(t, err)
	got := rulesOf(fs)
	require.Contains(t, got, "MG002 error ")
	require.Contains(t, got, "MG101 error spec.http[0].retries.attempts", "what ran before the deadline still reports")
}

func TestACancelledReviewIsAnErrorNotAVerdict(t *testing.T) {
	e, err := newEngine(t, "", nil, nil)
	require.NoError(t, err)
	objs, _ := manifest.Parse("in.yaml", []byte(overflowVS))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = e.Review(ctx, objs[0], nil)
	require.ErrorIs(t, err, context.Canceled)
}

func TestUserRegoCannotReachOutsideTheEvaluation(t *testing.T) {
	for _, call := range []string{
		`http.send({"method": "GET", "url": "http://127.0.0.1:1/"})`,
		`net.lookup_ip_addr("example.com")`,
		`time.now_ns()`,
		`rand.intn("x", 10)`,
		`uuid.rfc4122("x")`,
		`opa.runtime()`,
	} {
		name, _, _ := strings.Cut(call, "(")
		module := map[string]string{"p.rego": "package acme.p\n\nimport rego.v1\n\ndeny contains msg if {\n\tx := " + call + "\n\tmsg := sprintf(\"%v\", [x])\n}\n"}
		t.Run(name+" does not compile by default", func(t *testing.T) {
			_, err := newEngine(t, "", nil, module)
			require.Error(t, err)
			require.Contains(t, err.Error(), name)
		})
		t.Run(name+" compiles with evaluation.unsafeRegoBuiltins", func(t *testing.T) {
			_, err := newEngine(t, "evaluation: {unsafeRegoBuiltins: true}\n", nil, module)
			require.NoError(t, err)
		})
	}
}

func TestAFailingUserRegoRuleIsAnErrorFindingOfItsPackage(t *testing.T) {
	// A built-in's error is an evaluation error, not "undefined": a policy that cannot read
	// the object must not pass it.
	module := map[string]string{"p.rego": "package acme.p\n\nimport rego.v1\n\ndeny contains msg if {\n\tmsg := sprintf(\"%v\", [to_number(input.kind)])\n}\n"}
	e, err := newEngine(t, "", nil, module)
	require.NoError(t, err)
	fs, err := review(t, e, overflowVS)
	require.NoError(t, err)
	got := rulesOf(fs)
	require.Contains(t, got, "acme.p error ")
	require.Contains(t, got, "MG101 error spec.http[0].retries.attempts")
	require.False(t, errors.Is(err, engine.ErrEvaluation))
}
