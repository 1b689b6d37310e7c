package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/types"

	"github.com/meshguard/meshguard/internal/mesh"
)

// builtin is one function meshguard adds to Rego.
type builtin struct {
	decl *rego.Function
	opt  func(*rego.Rego)
}

// builtins are the functions meshguard adds to Rego, so rules share Istio's host and scope
// semantics with the Go code instead of re-implementing them:
//
//	meshguard.fqdn(host, namespace)  expands a host as Istio does
//	meshguard.is_mesh_host(host)     tells whether host is a service inside the mesh
//	meshguard.scoped(spec)           tells whether a policy spec has a selector or targetRef(s)
//	meshguard.cel_error(expr)        "" when expr is a valid Envoy CEL expression, else the error
func builtins(domain string, envoy *cel.Env) []builtin {
	str := func(t *ast.Term) string {
		s, _ := t.Value.(ast.String)
		return string(s)
	}
	fqdn := &rego.Function{Name: "meshguard.fqdn", Decl: types.NewFunction(types.Args(types.S, types.S), types.S)}
	isMesh := &rego.Function{Name: "meshguard.is_mesh_host", Decl: types.NewFunction(types.Args(types.S), types.B)}
	scoped := &rego.Function{Name: "meshguard.scoped", Decl: types.NewFunction(types.Args(types.A), types.B)}
	celErr := &rego.Function{Name: "meshguard.cel_error", Decl: types.NewFunction(types.Args(types.S), types.S), Memoize: true}
	return []builtin{
		{fqdn, rego.Function2(fqdn, func(_ rego.BuiltinContext, host, ns *ast.Term) (*ast.Term, error) {
			return ast.StringTerm(mesh.FQDN(str(host), str(ns), domain)), nil
		})},
		{isMesh, rego.Function1(isMesh, func(_ rego.BuiltinContext, host *ast.Term) (*ast.Term, error) {
			return ast.BooleanTerm(mesh.IsMeshHost(str(host), domain)), nil
		})},
		{scoped, rego.Function1(scoped, func(_ rego.BuiltinContext, spec *ast.Term) (*ast.Term, error) {
			v, err := ast.JSON(spec.Value)
			if err != nil {
				return nil, err
			}
			m, _ := v.(map[string]any)
			return ast.BooleanTerm(mesh.Scoped(m)), nil
		})},
		{celErr, rego.Function1(celErr, func(_ rego.BuiltinContext, expr *ast.Term) (*ast.Term, error) {
			return ast.StringTerm(CheckEnvoyCEL(envoy, str(expr))), nil
		})},
	}
}

func builtinOpts(bs []builtin) []func(*rego.Rego) {
	out := make([]func(*rego.Rego), len(bs))
	for i, b := range bs {
		out[i] = b.opt
	}
	return out
}

// TesterBuiltins are the meshguard Rego functions in the form OPA's test runner takes.
func TesterBuiltins(domain string) ([]*tester.Builtin, error) {
	envoy, err := envoyCELEnv()
	if err != nil {
		return nil, err
	}
	var out []*tester.Builtin
	for _, b := range builtins(domain, envoy) {
		out = append(out, &tester.Builtin{Decl: &ast.Builtin{Name: b.decl.Name, Decl: b.decl.Decl}, Func: b.opt})
	}
	return out, nil
}

// regoSet is the built-in Rego rules compiled into one prepared query per (kind, completeness):
// one evaluation per object answers every applicable rule.
type regoSet struct {
	queries map[regoKey]*preparedRego
}

type regoKey struct {
	kind     string
	complete bool
}

type preparedRego struct {
	query rego.PreparedEvalQuery
	rules []*Rule
}

func regoModules(rules []*Rule) map[string]string {
	mods := map[string]string{}
	for _, r := range rules {
		if r.Lang == "rego" {
			mods[r.Source+"/"+r.Dir+"/rule.rego"] = r.Rego
		}
	}
	return mods
}

func prepareRego(ctx context.Context, rules []*Rule, kinds []string, builtins []func(*rego.Rego)) (*regoSet, error) {
	set := &regoSet{queries: map[regoKey]*preparedRego{}}
	mods := regoModules(rules)
	if len(mods) == 0 {
		return set, nil
	}
	for _, kind := range append(kinds, "") { // "" is the inventory scope
		for _, complete := range []bool{false, true} {
			var applicable []*Rule
			for _, r := range rules {
				if r.Lang != "rego" {
					continue
				}
				if (kind == "") != (r.Scope == ScopeInventory) || (kind != "" && !r.AppliesTo(kind)) {
					continue
				}
				if r.Inventory == NeedAbsence && !complete {
					continue
				}
				applicable = append(applicable, r)
			}
			if len(applicable) == 0 {
				continue
			}
			var parts []string
			for _, r := range applicable {
				parts = append(parts, fmt.Sprintf("%q: data.%s.violation", r.ID, r.RegoPackage))
			}
			opts := []func(*rego.Rego){
				rego.Query("out := {" + strings.Join(parts, ", ") + "}"),
				rego.SetRegoVersion(ast.RegoV1),
			}
			names := make([]string, 0, len(mods))
			for name := range mods {
				names = append(names, name)
			}
			sort.Strings(names)
			for _, name := range names {
				opts = append(opts, rego.Module(name, mods[name]))
			}
			opts = append(opts, builtins...)
			pq, err := rego.New(opts...).PrepareForEval(ctx)
			if err != nil {
				return nil, fmt.Errorf("compile rego rules: %w", err)
			}
			set.queries[regoKey{kind, complete}] = &preparedRego{query: pq, rules: applicable}
		}
	}
	return set, nil
}

// eval runs the query for kind and returns violations by rule ID.
func (p *preparedRego) eval(ctx context.Context, input ast.Value) (map[string][]violation, error) {
	rs, err := p.query.Eval(ctx, rego.EvalParsedInput(input))
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, nil
	}
	out, _ := rs[0].Bindings["out"].(map[string]any)
	res := map[string][]violation{}
	for id, v := range out {
		list, _ := v.([]any)
		for _, item := range list {
			res[id] = append(res[id], toViolation(item))
		}
	}
	return res, nil
}

// toViolation accepts what Rego rules produce: a string message, or an object with msg or
// message and optionally field (or path).
func toViolation(item any) violation {
	switch t := item.(type) {
	case string:
		return violation{message: t}
	case map[string]any:
		v := violation{}
		for _, k := range []string{"message", "msg"} {
			if s, ok := t[k].(string); ok {
				v.message = s
				break
			}
		}
		for _, k := range []string{"field", "path"} {
			if s, ok := t[k].(string); ok {
				v.field = s
				break
			}
		}
		return v
	}
	return violation{message: fmt.Sprint(item)}
}
