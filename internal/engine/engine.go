package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/meshguard/meshguard/internal/mesh"
)

// IDs of the rules the engine implements itself.
const (
	RuleInvalidDocument    = "MG001"
	RuleIstioWarning       = "MG003"
	RuleEvaluationLimit    = "MG002"
	RuleMalformedException = "MG008"
	RuleExpiredException   = "MG009"
)

// ErrEvaluation wraps failures of a rule itself (not of the object under review), so callers can
// tell "the policy broke" from "the object is bad".
var ErrEvaluation = errors.New("rule evaluation failed")

// Options configures New.
type Options struct {
	// Rules is the whole bundle: built-in rules plus any custom ones.
	Rules []*Rule
	// Custom is conftest-style Rego (deny/warn/violation rules over the raw object).
	Custom *CustomRego
	// Config tunes rules; nil means defaults.
	Config *config.Config
	// Now is the clock exceptions expire against; nil means time.Now.
	Now func() time.Time
	// Validator judges each object as the cluster would before storing it (MG001, MG003);
	// nil leaves that to the cluster.
	Validator Validator
}

// Validator judges an object as the cluster does before it stores it (internal/validate): what
// it refuses, and what it accepts with a warning (Problem.Warning). schemaChecked says the API
// server has already validated the object against its CRD's schema, as it does before it calls
// validating webhooks.
type Validator interface {
	Validate(ctx context.Context, o *manifest.Object, schemaChecked bool) []*manifest.Problem
}

// Engine evaluates a compiled bundle. Build one with New; it is safe for concurrent use.
type Engine struct {
	cfg      *config.Config
	now      func() time.Time
	rules    []*Rule
	byID     map[string]*Rule
	enabled  map[string]bool
	severity map[string]Severity
	params   map[string]map[string]any
	cel      map[string]*celProgram
	celKind  map[celKey][]*celGroup
	rego     *regoSet
	custom   *CustomRego
	valid    Validator
	paramsV  *ast.Term
	// paramsAny is params typed for CEL's allParams variable.
	paramsAny map[string]any
}

// New validates the configuration against the rules and compiles every enabled rule once.
func New(ctx context.Context, opts Options) (*Engine, error) {
	cfg := opts.Config
	if cfg == nil {
		cfg = config.Default()
	}
	e := &Engine{
		cfg: cfg, now: opts.Now, custom: opts.Custom, valid: opts.Validator,
		byID: map[string]*Rule{}, enabled: map[string]bool{}, severity: map[string]Severity{},
		params: map[string]map[string]any{}, cel: map[string]*celProgram{}, celKind: map[celKey][]*celGroup{},
	}
	if e.now == nil {
		e.now = time.Now
	}
	if len(opts.Rules) == 0 && opts.Custom == nil {
		return nil, errors.New("load rules: the bundle is empty")
	}
	var errs []error
	for _, r := range opts.Rules {
		if prev, dup := e.byID[r.ID]; dup {
			errs = append(errs, fmt.Errorf("load rules: %s is defined twice (%s and %s)", r.ID, prev.Source, r.Source))
			continue
		}
		e.byID[r.ID] = r
		e.rules = append(e.rules, r)
	}
	SortRules(e.rules)
	for id, rc := range cfg.Rules {
		if _, ok := e.byID[id]; !ok && !opts.Custom.has(id) {
			errs = append(errs, fmt.Errorf("config rules.%s: no such rule", id))
			continue
		}
		_ = rc
	}
	for _, r := range e.rules {
		rc := cfg.Rules[r.ID]
		e.enabled[r.ID] = rc.Enabled == nil || *rc.Enabled
		e.severity[r.ID] = r.DefaultSeverity
		if rc.Severity != "" {
			s, err := ParseSeverity(rc.Severity)
			if err != nil {
				errs = append(errs, fmt.Errorf("config rules.%s.severity: %w", r.ID, err))
			}
			e.severity[r.ID] = s
		}
		p, err := resolveParams(r, rc.Params)
		if err != nil {
			errs = append(errs, fmt.Errorf("config rules.%s.params: %w", r.ID, err))
		}
		e.params[r.ID] = p
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	env, err := celRuleEnv(cfg.MeshDomain)
	if err != nil {
		return nil, fmt.Errorf("build CEL environment: %w", err)
	}
	envoy, err := envoyCELEnv()
	if err != nil {
		return nil, fmt.Errorf("build Envoy CEL environment: %w", err)
	}
	var regoRules, celRules []*Rule
	for _, r := range e.rules {
		if !e.enabled[r.ID] {
			continue
		}
		switch r.Lang {
		case "cel":
			p, err := compileCEL(env, r)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			e.cel[r.ID] = p
		case "rego":
			regoRules = append(regoRules, r)
		}
		if e.cel[r.ID] != nil {
			celRules = append(celRules, r)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := e.groupCEL(cfg.MeshDomain, celRules); err != nil {
		return nil, err
	}
	bs := regoOpts(builtins(cfg.MeshDomain, envoy), cfg.Evaluation.UnsafeRegoBuiltins)
	if e.rego, err = prepareRego(ctx, regoRules, manifest.Kinds(), bs); err != nil {
		errs = append(errs, err)
	}
	if e.custom != nil {
		if err := e.custom.prepare(ctx, bs); err != nil {
			errs = append(errs, err)
		}
	}
	pv, err := ast.InterfaceToValue(e.params)
	if err != nil {
		errs = append(errs, fmt.Errorf("rule params: %w", err))
	}
	e.paramsV = ast.NewTerm(pv)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return e, nil
}

func resolveParams(r *Rule, overrides map[string]any) (map[string]any, error) {
	out := map[string]any{}
	known := map[string]Param{}
	for _, p := range r.Params {
		known[p.Name] = p
		v, _ := coerceParam(p, p.Default)
		out[p.Name] = v
	}
	var errs []error
	for name, v := range overrides {
		p, ok := known[name]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: unknown parameter", name))
			continue
		}
		cv, err := coerceParam(p, v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		out[name] = cv
	}
	return out, errors.Join(errs...)
}

// Rules lists every rule of the bundle, sorted by ID.
func (e *Engine) Rules() []*Rule { return e.rules }

// Rule returns the rule with id, or nil.
func (e *Engine) Rule(id string) *Rule { return e.byID[id] }

// Enabled tells whether a rule is on.
func (e *Engine) Enabled(id string) bool { return e.enabled[id] }

// Severity returns a rule's configured severity.
func (e *Engine) Severity(id string) Severity {
	if s, ok := e.severity[id]; ok {
		return s
	}
	return SeverityError
}

// Params returns a rule's effective parameters.
func (e *Engine) Params(id string) map[string]any { return e.params[id] }

// Config returns the configuration the engine was built with.
func (e *Engine) Config() *config.Config { return e.cfg }

// Problem turns a document that could not be decoded or that the cluster's validation refuses
// into an MG001 finding, and a warning of Istio's validation into an MG003 finding; nil when
// that rule is off.
func (e *Engine) Problem(p *manifest.Problem) *Finding {
	rule := RuleInvalidDocument
	if p.Warning {
		rule = RuleIstioWarning
	}
	if !e.enabled[rule] {
		return nil
	}
	f := &Finding{
		Rule: rule, Severity: e.Severity(rule),
		Kind: p.Kind, APIVersion: p.APIVersion, Namespace: p.Namespace, Name: p.Name,
		File: p.File, Line: p.Line, Path: p.Path, Message: p.Message,
	}
	if r := e.byID[rule]; r != nil && p.Path != "" {
		f.Hint = r.Remediation
	} else if p.Path == "" {
		// Not a field of an object: the rule's hint about fields would mislead.
		f.Hint = "Make the document valid YAML or JSON with apiVersion and kind, or leave the file out of the paths given."
	}
	return f
}

// Validate judges obj as the cluster would (Options.Validator): MG001 for what it refuses, MG003
// for its warnings. Rules still review what decoded, so call Review as well. schemaChecked
// skips the CRD schema, which the API server applies before it calls validating webhooks: in
// the webhook it was a third of a review's cost, and it could only disagree with the cluster's
// own CRDs.
func (e *Engine) Validate(ctx context.Context, obj *manifest.Object, schemaChecked bool) []Finding {
	if e.valid == nil || manifest.InventoryOnly(obj.Kind) {
		return nil
	}
	if !e.enabled[RuleInvalidDocument] && !e.enabled[RuleIstioWarning] {
		// Nothing the cluster's validation finds would be reported: it is half of lint's time.
		return nil
	}
	var fs []Finding
	for _, p := range e.valid.Validate(ctx, obj, schemaChecked) {
		if f := e.Problem(p); f != nil {
			fs = append(fs, *f)
		}
	}
	return fs
}

// Review evaluates every enabled rule that applies to obj, comparing it against inv.
//
// The object's author is not trusted, so nothing in it may turn a deny into an allow: a rule
// that fails on the object (an arithmetic overflow, its cost limit, a panic) becomes an error
// finding of that rule at the site where it failed, and every other rule still runs and still
// reports. An evaluation that outlasts evaluation.timeout (or ctx's deadline) stops with an
// MG002 error finding. Review returns an error only when ctx is cancelled (the process is
// stopping) or for faults outside any rule; the caller decides what those mean.
func (e *Engine) Review(ctx context.Context, obj *manifest.Object, inv Inventory) (fs []Finding, err error) {
	if manifest.InventoryOnly(obj.Kind) {
		return nil, nil // a Service is context for the checked kinds, never reviewed itself
	}
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > e.cfg.Evaluation.Timeout.Duration {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.cfg.Evaluation.Timeout.Duration)
		defer cancel()
	}
	defer func() {
		if r := recover(); r != nil {
			fs, err = nil, fmt.Errorf("review %s: %w: panic: %v\n%s", obj.Ref(), ErrEvaluation, r, debug.Stack())
		}
	}()
	r := review{e: e, obj: obj, ctx: ctx}
	silenced := r.exceptions()
	r.limits()

	complete := inv != nil && inv.Complete()
	act := &activation{object: obj.Raw, allParams: e.paramsAny, rootNamespace: e.cfg.RootNamespace, related: noRelated}
	if inv != nil {
		act.related = e.relatedFor(obj, inv)
	}
groups:
	for _, g := range e.celKind[celKey{obj.Kind, complete}] {
		for _, site := range r.sites(g.scope) {
			if r.stopped() {
				break groups
			}
			act.site = site.Value
			res, err := guard(func() ([][]violation, error) { return g.eval(ctx, act) })
			if err != nil {
				// Evaluate the group's rules one by one: the failing one is reported, the
				// others still count.
				res = r.evalCELRules(g, act, site.Path)
			}
			for i, vs := range res {
				for _, v := range vs {
					r.add(g.rules[i].ID, joinPath(site.Path, v.field), v.message)
				}
			}
		}
	}

	if q := e.rego.queries[regoKey{obj.Kind, complete}]; q != nil && !r.stopped() {
		r.evalRego(q, e.regoInput(&r, inv))
	}

	if e.custom != nil && !r.stopped() {
		for _, c := range e.custom.eval(ctx, obj) {
			if c.err != nil {
				if !r.stopped() {
					r.failed(c.rule, "", c.err)
				}
				continue
			}
			if rc, ok := e.cfg.Rules[c.rule]; ok && rc.Enabled != nil && !*rc.Enabled {
				continue
			}
			sev := c.severity
			if rc, ok := e.cfg.Rules[c.rule]; ok && rc.Severity != "" {
				sev, _ = ParseSeverity(rc.Severity)
			}
			r.addWith(c.rule, sev, c.field, c.message, "")
		}
	}
	if err := r.interrupted(); err != nil {
		return nil, err
	}
	out := r.findings[:0]
	for _, f := range r.findings {
		if !silenced[f.Rule] {
			out = append(out, f)
		}
	}
	return out, nil
}

// guard runs one evaluation and turns a panic in it into an error, so that a rule that panics
// on an object is that rule's failure and not the whole review's.
func guard[T any](eval func() (T, error)) (res T, err error) {
	defer func() {
		if r := recover(); r != nil {
			var zero T
			res, err = zero, fmt.Errorf("%w: panic: %v", ErrEvaluation, r)
		}
	}()
	return eval()
}

// evalRego evaluates the built-in Rego rules for the object in one query, and rule by rule when
// that query fails, so that the failing rule is reported and the others still count.
func (r *review) evalRego(q *preparedRego, input ast.Value) {
	res, err := guard(func() (map[string][]violation, error) { return q.eval(r.ctx, input) })
	if err != nil {
		res = map[string][]violation{}
		for i, rule := range q.rules {
			if r.stopped() {
				return
			}
			vs, err := guard(func() (map[string][]violation, error) { return q.single[i].eval(r.ctx, input) })
			if err != nil {
				r.failed(rule.ID, "", err)
				continue
			}
			res[rule.ID] = vs[rule.ID]
		}
	}
	for _, rule := range q.rules {
		for _, v := range res[rule.ID] {
			r.add(rule.ID, v.field, v.message)
		}
	}
}

// groupCEL compiles one program per (kind, scope) holding every enabled CEL rule for it.
func (e *Engine) groupCEL(domain string, rules []*Rule) error {
	env, err := celGroupEnv(domain)
	if err != nil {
		return fmt.Errorf("build CEL environment: %w", err)
	}
	e.paramsAny = map[string]any{}
	for id, p := range e.params {
		e.paramsAny[id] = p
	}
	for _, kind := range manifest.Kinds() {
		for _, complete := range []bool{false, true} {
			for _, scope := range []Scope{ScopeObject, ScopeHTTPRoute, ScopeTrafficPolicy} {
				// Built-in and user rules are grouped apart: only user rules pay for cost
				// tracking (see ruleProgramOptions).
				for _, builtin := range []bool{true, false} {
					var in []*Rule
					for _, r := range rules {
						if r.Scope == scope && r.AppliesTo(kind) && (complete || r.Inventory != NeedAbsence) && r.IsBuiltin() == builtin {
							in = append(in, r)
						}
					}
					if len(in) == 0 {
						continue
					}
					g, err := compileCELGroup(env, scope, in)
					if err != nil {
						return err
					}
					key := celKey{kind, complete}
					e.celKind[key] = append(e.celKind[key], g)
				}
			}
		}
	}
	return nil
}

// noRelated is what rules see without an inventory; they read it, never write it.
var noRelated = map[string]any{"hosts": map[string]any{}}

type celKey struct {
	kind     string
	complete bool
}

// evalCELRules evaluates a group's rules one by one at one site. A rule that fails is reported
// as an error finding of that rule there; the others' results are kept.
func (r *review) evalCELRules(g *celGroup, act *activation, sitePath string) [][]violation {
	res := make([][]violation, len(g.rules))
	for i, rule := range g.rules {
		if r.stopped() {
			break
		}
		one := *act
		one.params = r.e.params[rule.ID]
		vs, err := guard(func() ([]violation, error) { return r.e.cel[rule.ID].eval(r.ctx, &one) })
		if err != nil {
			r.failed(rule.ID, sitePath, err)
			continue
		}
		res[i] = vs
	}
	return res
}

// ReviewInventory evaluates the rules that look at the inventory as a whole (MG504: no
// mesh-wide STRICT policy), which run on complete inventories only.
func (e *Engine) ReviewInventory(ctx context.Context, inv Inventory) ([]Finding, error) {
	q := e.rego.queries[regoKey{"", inv.Complete()}]
	if q == nil {
		return nil, nil
	}
	var meshWide []any
	for _, pa := range inv.List(manifest.KindPeerAuthentication, e.cfg.RootNamespace) {
		spec := pa.SpecMap()
		if !mesh.Scoped(spec) {
			meshWide = append(meshWide, pa.Raw)
		}
	}
	input, err := ast.InterfaceToValue(map[string]any{
		"related":       map[string]any{"meshWidePeerAuthentications": meshWide},
		"rootNamespace": e.cfg.RootNamespace,
		"complete":      inv.Complete(),
		"params":        e.params,
	})
	if err != nil {
		return nil, fmt.Errorf("review inventory: %w", err)
	}
	res, err := q.eval(ctx, input)
	if err != nil {
		return nil, fmt.Errorf("review inventory: %w: %v", ErrEvaluation, err)
	}
	var out []Finding
	for _, rule := range q.rules {
		for _, v := range res[rule.ID] {
			out = append(out, Finding{
				Rule: rule.ID, Severity: e.Severity(rule.ID), Kind: manifest.KindPeerAuthentication,
				Namespace: e.cfg.RootNamespace, Path: v.field, Message: v.message, Hint: rule.Remediation,
			})
		}
	}
	return out, nil
}

// review is the state of one object's evaluation.
type review struct {
	e        *Engine
	obj      *manifest.Object
	ctx      context.Context
	sitesBy  map[Scope][]Site
	findings []Finding
	timedOut bool
}

// stopped tells whether the evaluation must stop: the deadline passed (reported once, as MG002)
// or the caller cancelled it.
func (r *review) stopped() bool {
	err := r.ctx.Err()
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) && !r.timedOut {
		r.timedOut = true
		r.limit("", fmt.Sprintf("the evaluation did not finish within its time budget (evaluation.timeout %s, or the webhook's deadline): the rules that had not run yet did not run", r.e.cfg.Evaluation.Timeout))
	}
	return true
}

// interrupted returns the caller's cancellation: the process is stopping, and a partial review
// must not be taken for a verdict. A passed deadline is not an interruption: it is MG002.
func (r *review) interrupted() error {
	if err := r.ctx.Err(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("review %s: %w", r.obj.Ref(), err)
	}
	return nil
}

// failed reports that rule could not be evaluated on the object: an error finding, whatever
// the rule's severity, since what the rule would have found is unknown. When the deadline is
// what stopped the rule, MG002 says so instead.
func (r *review) failed(rule, path string, err error) {
	if r.stopped() {
		return
	}
	short, _, _ := strings.Cut(err.Error(), "\n")
	hint := "The object is refused because meshguard cannot tell whether it breaks this rule. Look for extreme values (huge counts or durations) near the field named."
	r.addWith(rule, SeverityError, path, "the rule could not be evaluated on this object: "+short, hint)
}

// limit adds an MG002 finding: the object is beyond what meshguard evaluates at a bounded cost.
func (r *review) limit(path, message string) {
	if !r.e.enabled[RuleEvaluationLimit] {
		return
	}
	r.add(RuleEvaluationLimit, path, message)
}

// limits reports what is over the evaluation limits before any rule runs: CEL expressions
// beyond the number meshguard compiles per object (the rest are not checked, so the object
// cannot pass as checked).
func (r *review) limits() {
	if r.obj.Kind != manifest.KindTelemetry {
		return
	}
	if n := countEnvoyCEL(r.obj.SpecMap()); n > MaxEnvoyCELPerObject {
		r.limit("spec", fmt.Sprintf("the Telemetry has %d CEL expressions; meshguard checks at most %d per object, so the rest are not checked", n, MaxEnvoyCELPerObject))
	}
}

// countEnvoyCEL counts a Telemetry's CEL expressions: access-log filters and metric tag values.
func countEnvoyCEL(spec map[string]any) int {
	n := 0
	logs, _ := spec["accessLogging"].([]any)
	for _, l := range logs {
		lm, _ := l.(map[string]any)
		f, _ := lm["filter"].(map[string]any)
		if _, ok := f["expression"].(string); ok {
			n++
		}
	}
	metrics, _ := spec["metrics"].([]any)
	for _, m := range metrics {
		mm, _ := m.(map[string]any)
		overrides, _ := mm["overrides"].([]any)
		for _, o := range overrides {
			om, _ := o.(map[string]any)
			tags, _ := om["tagOverrides"].(map[string]any)
			for _, t := range tags {
				tm, _ := t.(map[string]any)
				if _, ok := tm["value"].(string); ok {
					n++
				}
			}
		}
	}
	return n
}

func (r *review) sites(s Scope) []Site {
	if v, ok := r.sitesBy[s]; ok {
		return v
	}
	if r.sitesBy == nil {
		r.sitesBy = map[Scope][]Site{}
	}
	v := Sites(r.obj, s)
	r.sitesBy[s] = v
	return v
}

func (r *review) add(rule, path, message string) {
	hint := ""
	if rr := r.e.byID[rule]; rr != nil {
		hint = rr.Remediation
	}
	r.addWith(rule, r.e.Severity(rule), path, message, hint)
}

func (r *review) addWith(rule string, sev Severity, path, message, hint string) {
	o := r.obj
	r.findings = append(r.findings, Finding{
		Rule: rule, Severity: sev, Kind: o.Kind, APIVersion: o.APIVersion, Namespace: o.Namespace,
		Name: o.Name, File: o.File, Line: o.FieldLine(path), Path: path, Message: message, Hint: hint,
	})
}

// exceptions reports malformed and expired exception annotations and returns the rules that
// valid ones silence.
func (r *review) exceptions() map[string]bool {
	var silenced map[string]bool
	for _, ex := range exceptionsOf(r.obj) {
		switch {
		case ex.Problem != "":
			if r.e.enabled[RuleMalformedException] {
				r.add(RuleMalformedException, ex.Path, "malformed exception for "+ex.Rule+": "+ex.Problem)
			}
		case r.e.byID[ex.Rule] == nil && !r.e.custom.has(ex.Rule):
			if r.e.enabled[RuleMalformedException] {
				r.add(RuleMalformedException, ex.Path, fmt.Sprintf("exception names unknown rule %q", ex.Rule))
			}
		case ex.Expired(r.e.now()):
			if r.e.enabled[RuleExpiredException] {
				r.add(RuleExpiredException, ex.Path, fmt.Sprintf("exception for %s expired on %s (reason: %s); it silences nothing", ex.Rule, ex.Expires.Format("2006-01-02"), ex.Reason))
			}
		default:
			if silenced == nil {
				silenced = map[string]bool{}
			}
			silenced[ex.Rule] = true
		}
	}
	return silenced
}

// regoInput builds the input of the built-in Rego rules: the object, its sites, the related
// objects the cross-object rules compare against, and every rule's parameters.
func (e *Engine) regoInput(r *review, inv Inventory) ast.Value {
	obj := r.obj
	objTerm := objectTerm(obj)
	sites := ast.NewObject()
	for _, s := range []Scope{ScopeHTTPRoute, ScopeTrafficPolicy} {
		if (s == ScopeHTTPRoute && obj.Kind == manifest.KindVirtualService) || (s == ScopeTrafficPolicy && obj.Kind == manifest.KindDestinationRule) {
			// Sites reuse the object's converted terms instead of converting the maps again.
			var terms []*ast.Term
			for _, site := range r.sites(s) {
				v := termAt(objTerm, site.Path)
				if v == nil {
					continue
				}
				terms = append(terms, ast.ObjectTerm(
					ast.Item(ast.StringTerm("path"), ast.StringTerm(site.Path)),
					ast.Item(ast.StringTerm("value"), v),
				))
			}
			sites.Insert(ast.StringTerm(string(s)), ast.ArrayTerm(terms...))
		}
	}
	return ast.NewObject(
		ast.Item(ast.StringTerm("object"), objTerm),
		ast.Item(ast.StringTerm("scoped"), ast.BooleanTerm(scoped(obj))),
		ast.Item(ast.StringTerm("sites"), ast.NewTerm(sites)),
		ast.Item(ast.StringTerm("related"), ast.ObjectTerm()),
		ast.Item(ast.StringTerm("params"), e.paramsV),
		ast.Item(ast.StringTerm("rootNamespace"), ast.StringTerm(e.cfg.RootNamespace)),
		ast.Item(ast.StringTerm("complete"), ast.BooleanTerm(inv != nil && inv.Complete())),
	)
}

// objectTerm is the object's Rego form, converted once per object.
func objectTerm(o *manifest.Object) *ast.Term {
	return o.Memo("rego", func() any {
		v, err := ast.InterfaceToValue(o.Raw)
		if err != nil {
			return ast.NullTerm()
		}
		return ast.NewTerm(v)
	}).(*ast.Term)
}

// scoped tells whether a policy object narrows itself to some workloads.
func scoped(o *manifest.Object) bool {
	spec := o.SpecMap()
	return mesh.Scoped(spec)
}

// termAt finds the term at a field path such as spec.subsets[1].trafficPolicy.
func termAt(t *ast.Term, path string) *ast.Term {
	for _, seg := range manifest.SplitPath(path) {
		switch v := t.Value.(type) {
		case ast.Object:
			t = v.Get(ast.StringTerm(seg))
		case *ast.Array:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= v.Len() {
				return nil
			}
			t = v.Elem(i)
		default:
			return nil
		}
		if t == nil {
			return nil
		}
	}
	return t
}

func joinPath(site, field string) string {
	switch {
	case field == "":
		return site
	case site == "":
		return field
	case strings.HasPrefix(field, "["):
		return site + field
	}
	return site + "." + field
}
