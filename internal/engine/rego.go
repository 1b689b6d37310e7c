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
		{celErr, rego.Function1(celErr, func(bctx rego.BuiltinContext, expr *ast.Term) (*ast.Term, error) {
			// The cache lives for one evaluation, that is one object: it counts the object's
			// expressions, so that an object holding thousands costs no more than the limit.
			n, _ := bctx.Cache.Get(celCount{})
			count, _ := n.(int)
			if count >= MaxEnvoyCELPerObject {
				return ast.StringTerm(fmt.Sprintf("not checked: the object has more than %d CEL expressions, meshguard's limit per object", MaxEnvoyCELPerObject)), nil
			}
			bctx.Cache.Put(celCount{}, count+1)
			return ast.StringTerm(CheckEnvoyCEL(envoy, str(expr))), nil
		})},
	}
}

// celCount keys the number of CEL expressions compiled in one evaluation.
type celCount struct{}

// regoOpts are the options every Rego query is prepared with: meshguard's functions, built-in
// errors as errors (by default OPA takes a failing built-in as "undefined", so a policy that
// cannot read what an author wrote would pass it), and unless unsafe is set, OPA's built-ins
// without those that reach outside the evaluation.
func regoOpts(bs []builtin, unsafe bool) []func(*rego.Rego) {
	out := make([]func(*rego.Rego), 0, len(bs)+2)
	for _, b := range bs {
		out = append(out, b.opt)
	}
	out = append(out, rego.StrictBuiltinErrors(true))
	if !unsafe {
		out = append(out, rego.Capabilities(sandboxCapabilities()))
	}
	return out
}

// sandboxCapabilities are OPA's built-ins less those OPA marks non-deterministic (http.send,
// net.lookup_ip_addr, time.now_ns, rand.intn, uuid.rfc4122, io.jwt verification against the
// clock, ...) and opa.runtime (the process's environment), with no network host allowed. A
// policy is a function of the object: it cannot send requests from the webhook's network
// position (an SSRF from a policy ConfigMap), read the environment, or give a different
// verdict on the same object twice. A policy that calls one of them fails to compile.
func sandboxCapabilities() *ast.Capabilities {
	caps := ast.CapabilitiesForThisVersion()
	kept := make([]*ast.Builtin, 0, len(caps.Builtins))
	for _, b := range caps.Builtins {
		if b.Nondeterministic || unsafeBuiltins[b.Name] {
			continue
		}
		kept = append(kept, b)
	}
	caps.Builtins = kept
	caps.AllowNet = []string{}
	return caps
}

// unsafeBuiltins are built-ins to drop beyond those OPA marks non-deterministic.
var unsafeBuiltins = map[string]bool{"opa.runtime": true, "http.send": true, "net.lookup_ip_addr": true, "time.now_ns": true}

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
	// single holds one query per rule, in rules' order, evaluated only when query fails, to
	// tell the failing rule from the others.
	single []*preparedRego
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
	names := make([]string, 0, len(mods))
	for name := range mods {
		names = append(names, name)
	}
	sort.Strings(names)
	prepare := func(rules []*Rule) (*preparedRego, error) {
		var parts []string
		for _, r := range rules {
			parts = append(parts, fmt.Sprintf("%q: data.%s.violation", r.ID, r.RegoPackage))
		}
		opts := []func(*rego.Rego){
			rego.Query("out := {" + strings.Join(parts, ", ") + "}"),
			rego.SetRegoVersion(ast.RegoV1),
		}
		for _, name := range names {
			opts = append(opts, rego.Module(name, mods[name]))
		}
		opts = append(opts, builtins...)
		pq, err := rego.New(opts...).PrepareForEval(ctx)
		if err != nil {
			return nil, fmt.Errorf("compile rego rules: %w", err)
		}
		return &preparedRego{query: pq, rules: rules}, nil
	}
	single := map[regoKey]*preparedRego{}
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
			q, err := prepare(applicable)
			if err != nil {
				return nil, err
			}
			for _, r := range applicable {
				k := regoKey{r.ID, complete}
				if single[k] == nil {
					if single[k], err = prepare([]*Rule{r}); err != nil {
						return nil, err
					}
				}
				q.single = append(q.single, single[k])
			}
			set.queries[regoKey{kind, complete}] = q
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
