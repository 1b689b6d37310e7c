package engine

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/meshguard/meshguard/internal/manifest"
)

// CustomRego is a user's conftest-style policy set: Rego modules whose deny, violation and warn
// rules (and deny_*, warn_*, violation_* variants) read the raw object as input and produce
// messages, either strings or objects {msg, rule, field}. deny and violation are errors, warn is
// a warning. A message without a rule ID is reported under its package name.
type CustomRego struct {
	modules map[string]string
	queries []customQuery
	ids     map[string]bool
}

type customQuery struct {
	pkg      string
	name     string
	severity Severity
	query    rego.PreparedEvalQuery
}

type customFinding struct {
	rule     string
	severity Severity
	field    string
	message  string
	// err is set when the policy rule failed on the object; rule names its package.
	err error
}

// NewCustomRego takes modules by file name. It fails on a module that does not parse.
func NewCustomRego(modules map[string]string) (*CustomRego, error) {
	c := &CustomRego{modules: modules, ids: map[string]bool{}}
	for name, src := range modules {
		if _, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1}); err != nil {
			return nil, fmt.Errorf("load policy %s: %w", name, err)
		}
	}
	return c, nil
}

func (c *CustomRego) has(id string) bool { return c != nil && c.ids[id] }

// IDs lists the rule IDs the policies report under by default (their package names).
func (c *CustomRego) IDs() []string {
	if c == nil {
		return nil
	}
	out := make([]string, 0, len(c.ids))
	for id := range c.ids {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

var ruleLiteral = regexp.MustCompile(`"(rule|id)"\s*:\s*"([A-Za-z][A-Za-z0-9_.-]*)"`)

func ruleSeverity(name string) (Severity, bool) {
	base, _, _ := strings.Cut(name, "_")
	switch base {
	case "deny", "violation":
		return SeverityError, true
	case "warn":
		return SeverityWarning, true
	}
	return 0, false
}

func (c *CustomRego) prepare(ctx context.Context, builtins []func(*rego.Rego)) error {
	names := make([]string, 0, len(c.modules))
	for n := range c.modules {
		names = append(names, n)
	}
	sort.Strings(names)
	type target struct{ pkg, rule string }
	var targets []target
	seen := map[target]bool{}
	for _, n := range names {
		m, err := ast.ParseModuleWithOpts(n, c.modules[n], ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return fmt.Errorf("load policy %s: %w", n, err)
		}
		pkg := strings.TrimPrefix(m.Package.Path.String(), "data.")
		for _, r := range m.Rules {
			name := r.Head.Name.String()
			if len(r.Head.Ref()) > 0 {
				name = r.Head.Ref()[0].String()
			}
			if _, ok := ruleSeverity(name); !ok || strings.HasPrefix(name, "test_") {
				continue
			}
			t := target{pkg, name}
			if !seen[t] {
				seen[t] = true
				targets = append(targets, t)
			}
		}
	}
	// Rule IDs written as literals in messages ({"rule": "ACME001", ...}) are known IDs too, so
	// exceptions may name them.
	for _, n := range names {
		for _, m := range ruleLiteral.FindAllStringSubmatch(c.modules[n], -1) {
			c.ids[m[2]] = true
		}
	}
	for _, t := range targets {
		opts := []func(*rego.Rego){rego.Query("out := data." + t.pkg + "." + t.rule), rego.SetRegoVersion(ast.RegoV1)}
		for _, n := range names {
			opts = append(opts, rego.Module(n, c.modules[n]))
		}
		opts = append(opts, builtins...)
		pq, err := rego.New(opts...).PrepareForEval(ctx)
		if err != nil {
			return fmt.Errorf("compile policy %s.%s: %w", t.pkg, t.rule, err)
		}
		sev, _ := ruleSeverity(t.rule)
		c.queries = append(c.queries, customQuery{pkg: t.pkg, name: t.rule, severity: sev, query: pq})
		c.ids[t.pkg] = true
	}
	return nil
}

// eval evaluates every policy rule on obj. A rule that fails yields a finding carrying the
// error, and the others still run.
func (c *CustomRego) eval(ctx context.Context, obj *manifest.Object) []customFinding {
	var out []customFinding
	input := objectTerm(obj).Value
	for _, q := range c.queries {
		rs, err := guard(func() (rego.ResultSet, error) { return q.query.Eval(ctx, rego.EvalParsedInput(input)) })
		if err != nil {
			out = append(out, customFinding{rule: q.pkg, err: fmt.Errorf("%s.%s: %w", q.pkg, q.name, err)})
			continue
		}
		if len(rs) == 0 {
			continue
		}
		var items []any
		switch t := rs[0].Bindings["out"].(type) {
		case []any:
			items = t
		case string, map[string]any:
			items = []any{t}
		case bool:
			if t {
				items = []any{q.pkg + "." + q.name}
			}
		}
		for _, it := range items {
			v := toViolation(it)
			f := customFinding{rule: q.pkg, severity: q.severity, field: v.field, message: v.message}
			if m, ok := it.(map[string]any); ok {
				for _, k := range []string{"rule", "id"} {
					if s, ok := m[k].(string); ok && s != "" {
						f.rule = s
						break
					}
				}
			}
			out = append(out, f)
		}
	}
	return out
}
