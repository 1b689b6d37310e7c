package engine

import (
	"context"
	"fmt"
	"reflect"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/ext"

	"github.com/meshguard/meshguard/internal/mesh"
)

// celRuleEnv is the environment rule expressions are written in. Variables: object (the whole
// document), site (the route or traffic policy under evaluation; the object itself for object
// scope), params (the rule's parameters) and rootNamespace. An expression yields a list of
// violations, each {'field': path relative to the site, 'message': text}.
func celRuleEnv(domain string) (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("object", cel.DynType),
		cel.Variable("site", cel.DynType),
		cel.Variable("params", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("rootNamespace", cel.StringType),
		cel.OptionalTypes(),
		cel.CrossTypeNumericComparisons(true),
		ext.Strings(),
		ext.Lists(),
		ext.Bindings(),
		ext.TwoVarComprehensions(),
		cel.Function("isMeshHost",
			cel.Overload("is_mesh_host_string", []*cel.Type{cel.StringType}, cel.BoolType,
				cel.UnaryBinding(func(v ref.Val) ref.Val {
					s, _ := v.Value().(string)
					return types.Bool(mesh.IsMeshHost(s, domain))
				}))),
		cel.Function("isScoped",
			cel.Overload("is_scoped_dyn", []*cel.Type{cel.DynType}, cel.BoolType,
				cel.UnaryBinding(func(v ref.Val) ref.Val {
					m, _ := v.Value().(map[string]any)
					return types.Bool(mesh.Scoped(m))
				}))),
	)
}

// envoyCELEnv declares what Envoy exposes to access-log filters and metric tag expressions.
// https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/advanced/attributes
func envoyCELEnv() (*cel.Env, error) {
	var opts []cel.EnvOption
	for _, v := range []string{"request", "response", "connection", "upstream", "source", "destination", "metadata", "filter_state", "xds"} {
		opts = append(opts, cel.Variable(v, cel.DynType))
	}
	opts = append(opts, ext.Strings())
	return cel.NewEnv(opts...)
}

// CheckEnvoyCEL parses and type-checks an Envoy CEL expression; it returns "" when it is valid
// and the error, with its column, otherwise.
func CheckEnvoyCEL(env *cel.Env, expr string) string {
	_, iss := env.Compile(expr)
	if iss == nil || iss.Err() == nil {
		return ""
	}
	var msgs []string
	for _, e := range iss.Errors() {
		msgs = append(msgs, fmt.Sprintf("column %d: %s", e.Location.Column()+1, e.Message))
	}
	return strings.Join(msgs, "; ")
}

type celProgram struct {
	prg cel.Program
}

func compileCEL(env *cel.Env, r *Rule) (*celProgram, error) {
	ast, iss := env.Compile(r.Expr)
	if iss != nil && iss.Err() != nil {
		return nil, fmt.Errorf("compile rule %s (%s): %w", r.ID, r.Source, iss.Err())
	}
	if t := ast.OutputType(); t.Kind() != types.ListKind && t.Kind() != types.DynKind {
		return nil, fmt.Errorf("compile rule %s (%s): expression yields %s, want a list of {'field', 'message'} maps", r.ID, r.Source, t)
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.InterruptCheckFrequency(100))
	if err != nil {
		return nil, fmt.Errorf("compile rule %s (%s): %w", r.ID, r.Source, err)
	}
	return &celProgram{prg: prg}, nil
}

var violationListType = reflect.TypeOf([]map[string]any{})

type violation struct {
	field   string
	message string
}

func (p *celProgram) eval(ctx context.Context, vars map[string]any) ([]violation, error) {
	out, _, err := p.prg.ContextEval(ctx, vars)
	if err != nil {
		return nil, err
	}
	native, err := out.ConvertToNative(violationListType)
	if err != nil {
		return nil, fmt.Errorf("result is not a list of maps: %w", err)
	}
	list := native.([]map[string]any)
	if len(list) == 0 {
		return nil, nil
	}
	vs := make([]violation, 0, len(list))
	for _, m := range list {
		v := violation{}
		v.field, _ = m["field"].(string)
		if s, ok := m["message"].(string); ok {
			v.message = s
		} else {
			v.message = fmt.Sprint(m["message"])
		}
		vs = append(vs, v)
	}
	return vs, nil
}
