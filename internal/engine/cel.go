package engine

import (
	"context"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"

	"github.com/meshguard/meshguard/internal/mesh"
)

// celRuleEnv is the environment rule expressions are written in. Variables: object (the whole
// document), site (the route or traffic policy under evaluation; the object itself for object
// scope), params (the rule's parameters), rootNamespace, and related: what the inventory says
// about the object, computed in Go (see relatedFor). An expression yields a list of
// violations, each {'field': path relative to the site, 'message': text}.
func celRuleEnv(domain string) (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("object", cel.DynType),
		cel.Variable("site", cel.DynType),
		cel.Variable("params", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("rootNamespace", cel.StringType),
		cel.Variable("related", cel.MapType(cel.StringType, cel.DynType)),
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

// Limits on CEL that an object's author writes (Telemetry filter and tag expressions), which
// meshguard compiles to check it. Without them a list literal nested 245 deep took 1.75 s and
// 136 MB to compile, and a handful of those outlasted the webhook's deadline. Real expressions
// are a line or two: Istio's and Envoy's documented examples are under 200 bytes and 5 deep.
const (
	// MaxEnvoyCELBytes bounds one expression's length.
	MaxEnvoyCELBytes = 4096
	// MaxEnvoyCELDepth bounds the parser's recursion (nested calls, lists, parentheses).
	MaxEnvoyCELDepth = 32
	// maxEnvoyCELNodes bounds the expression's nodes after macro expansion.
	maxEnvoyCELNodes = 2000
	// maxEnvoyCELNesting bounds nested comprehensions (all, exists, map, filter).
	maxEnvoyCELNesting = 2
	// MaxEnvoyCELPerObject bounds how many expressions of one object are compiled; the rest are
	// reported, not checked.
	MaxEnvoyCELPerObject = 64
)

// envoyAttributes are the top-level names Envoy and Istio give CEL expressions in access-log
// filters and metric tag overrides. Envoy's attributes:
// https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/advanced/attributes
// (request, response, connection, upstream, source, destination, metadata, filter_state,
// upstream_filter_state, xds); Istio adds the peers' metadata: upstream_peer and downstream_peer
// (https://istio.io/latest/docs/tasks/observability/metrics/customize-metrics/, e.g.
// upstream_peer.labels['app'].value) and node. They are maps of Envoy-defined shape, so they
// are declared dynamic: a typo in a top-level name is caught, a field access is not.
var envoyAttributes = []string{
	"request", "response", "connection", "upstream", "source", "destination", "metadata",
	"filter_state", "upstream_filter_state", "xds", "node", "upstream_peer", "downstream_peer",
}

// envoyCELEnv declares what Envoy exposes to access-log filters and metric tag expressions,
// under the limits above.
func envoyCELEnv() (*cel.Env, error) {
	opts := []cel.EnvOption{
		ext.Strings(),
		cel.ParserRecursionLimit(MaxEnvoyCELDepth),
		cel.ParserExpressionSizeLimit(MaxEnvoyCELBytes),
		cel.ParserErrorRecoveryLimit(4),
		cel.ExpressionNodeLimit(maxEnvoyCELNodes),
		cel.ASTValidators(cel.ValidateComprehensionNestingLimit(maxEnvoyCELNesting)),
	}
	for _, v := range envoyAttributes {
		opts = append(opts, cel.Variable(v, cel.DynType))
	}
	return cel.NewEnv(opts...)
}

// CheckEnvoyCEL parses and type-checks an Envoy CEL expression; it returns "" when it is valid
// and the error, with its column, otherwise. An expression over the limits is an error: Envoy
// would take it, but meshguard cannot check it at a bounded cost.
func CheckEnvoyCEL(env *cel.Env, expr string) string {
	if len(expr) > MaxEnvoyCELBytes {
		return fmt.Sprintf("the expression is %d bytes long, over meshguard's limit of %d: it is not checked", len(expr), MaxEnvoyCELBytes)
	}
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
	prg, err := env.Program(ast, ruleProgramOptions([]*Rule{r})...)
	if err != nil {
		return nil, fmt.Errorf("compile rule %s (%s): %w", r.ID, r.Source, err)
	}
	return &celProgram{prg: prg}, nil
}

// RuleCostLimit bounds one user rule's evaluation at one site, in CEL's cost units (roughly one
// per value visited; Kubernetes allows 1,000,000 per validation rule call). A user rule ranging
// over a million-element list stops here instead of running for minutes.
const RuleCostLimit = 1_000_000

// ruleProgramOptions are the evaluation options of a rule program. Every program checks for an
// interrupt in its loops, so that ContextEval stops a comprehension when the review's deadline
// passes or the process is told to stop. User rules also get a cost limit (per rule, so a group
// of n rules gets n times the limit, and a rule that exceeds it alone is found when the group is
// evaluated rule by rule). Built-in rules do not: their loops run over the object's own lists,
// so their cost is bounded by the object's size (itself bounded by the request size and the
// decoder), and cel-go's cost tracking doubled their allocations and cost two to five times
// their evaluation time; the deadline bounds them.
func ruleProgramOptions(rules []*Rule) []cel.ProgramOption {
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize), cel.InterruptCheckFrequency(100)}
	if !rules[0].IsBuiltin() {
		opts = append(opts, cel.CostLimit(uint64(len(rules))*RuleCostLimit))
	}
	return opts
}

var violationListType = reflect.TypeOf([]map[string]any{})

type violation struct {
	field   string
	message string
}

func (p *celProgram) eval(ctx context.Context, vars any) ([]violation, error) {
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

// celGroup evaluates every enabled CEL rule of one (kind, scope) in a single program, one
// evaluation per site: the per-evaluation overhead (activation, result conversion) was most of
// the cost of a rule. Each rule is compiled on its own first, for its own error messages, and is
// still evaluated alone when the group fails, so an evaluation error names its rule.
type celGroup struct {
	scope Scope
	rules []*Rule
	prg   cel.Program
}

// celGroupEnv is celRuleEnv with every rule's parameters under allParams; the group binds each
// rule's own as `params`.
func celGroupEnv(domain string) (*cel.Env, error) {
	env, err := celRuleEnv(domain)
	if err != nil {
		return nil, err
	}
	return env.Extend(cel.Variable("allParams", cel.MapType(cel.StringType, cel.MapType(cel.StringType, cel.DynType))))
}

func compileCELGroup(env *cel.Env, scope Scope, rules []*Rule) (*celGroup, error) {
	parts := make([]string, len(rules))
	for i, r := range rules {
		// Each rule reads its own parameters: params.x becomes allParams['MG101'].x. A textual
		// rewrite rather than cel.bind, because a binding is a comprehension evaluated on every
		// site and cost more than the rules themselves.
		expr := paramsRef.ReplaceAllString(r.Expr, "${1}allParams["+strconv.Quote(r.ID)+"]")
		parts[i] = "(" + expr + "\n)"
	}
	ast, iss := env.Compile("[" + strings.Join(parts, ",\n") + "]")
	if iss != nil && iss.Err() != nil {
		return nil, fmt.Errorf("compile rule group %s: %w", scope, iss.Err())
	}
	prg, err := env.Program(ast, ruleProgramOptions(rules)...)
	if err != nil {
		return nil, fmt.Errorf("compile rule group %s: %w", scope, err)
	}
	return &celGroup{scope: scope, rules: rules, prg: prg}, nil
}

var paramsRef = regexp.MustCompile(`(^|[^.\w])params\b`)

// activation resolves the rule variables without building a map per evaluation.
type activation struct {
	object, site  any
	related       any
	params        any
	allParams     any
	rootNamespace string
}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "object":
		return a.object, true
	case "site":
		return a.site, true
	case "params":
		return a.params, a.params != nil
	case "allParams":
		return a.allParams, true
	case "rootNamespace":
		return a.rootNamespace, true
	case "related":
		return a.related, a.related != nil
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

// eval returns each rule's violations, in the group's rule order.
func (g *celGroup) eval(ctx context.Context, act *activation) ([][]violation, error) {
	out, _, err := g.prg.ContextEval(ctx, act)
	if err != nil {
		return nil, err
	}
	lists, ok := out.(traits.Lister)
	if !ok {
		return nil, fmt.Errorf("result is %s, not a list of violation lists", out.Type())
	}
	n := int(lists.Size().(types.Int))
	res := make([][]violation, n)
	for i := 0; i < n; i++ {
		l, ok := lists.Get(types.Int(i)).(traits.Lister)
		if !ok {
			return nil, fmt.Errorf("rule %s: result is not a list", g.rules[i].ID)
		}
		if l.Size() == types.IntZero {
			continue // the common case: no violation, nothing to convert
		}
		native, err := l.ConvertToNative(violationListType)
		if err != nil {
			return nil, fmt.Errorf("rule %s: result is not a list of {'field', 'message'} maps: %w", g.rules[i].ID, err)
		}
		for _, m := range native.([]map[string]any) {
			v := violation{}
			v.field, _ = m["field"].(string)
			if s, ok := m["message"].(string); ok {
				v.message = s
			} else {
				v.message = fmt.Sprint(m["message"])
			}
			res[i] = append(res[i], v)
		}
	}
	return res, nil
}
