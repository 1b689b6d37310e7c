package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sort"
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
		cfg: cfg, now: opts.Now, custom: opts.Custom,
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
	bs := builtinOpts(builtins(cfg.MeshDomain, envoy))
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

// Problem turns a document that could not be decoded into an MG001 finding; nil when MG001 is off.
func (e *Engine) Problem(p *manifest.Problem) *Finding {
	if !e.enabled[RuleInvalidDocument] {
		return nil
	}
	f := &Finding{
		Rule: RuleInvalidDocument, Severity: e.Severity(RuleInvalidDocument),
		Kind: p.Kind, APIVersion: p.APIVersion, Namespace: p.Namespace, Name: p.Name,
		File: p.File, Line: p.Line, Path: p.Path, Message: p.Message,
	}
	if r := e.byID[RuleInvalidDocument]; r != nil && p.Path != "" {
		f.Hint = r.Remediation
	} else if p.Path == "" {
		// Not a field of an object: the rule's hint about fields would mislead.
		f.Hint = "Make the document valid YAML or JSON with apiVersion and kind, or leave the file out of the paths given."
	}
	return f
}

// Review evaluates every enabled rule that applies to obj, comparing it against inv. A panic in
// a rule is recovered and returned as an error wrapping ErrEvaluation.
func (e *Engine) Review(ctx context.Context, obj *manifest.Object, inv Inventory) (fs []Finding, err error) {
	defer func() {
		if r := recover(); r != nil {
			fs, err = nil, fmt.Errorf("review %s: %w: panic: %v\n%s", obj.Ref(), ErrEvaluation, r, debug.Stack())
		}
	}()
	r := review{e: e, obj: obj}
	silenced := r.exceptions()

	complete := inv != nil && inv.Complete()
	act := &activation{object: obj.Raw, allParams: e.paramsAny, rootNamespace: e.cfg.RootNamespace, related: noRelated}
	if inv != nil {
		act.related = e.relatedFor(obj, inv)
	}
	for _, g := range e.celKind[celKey{obj.Kind, complete}] {
		for _, site := range r.sites(g.scope) {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("review %s: %w", obj.Ref(), err)
			}
			act.site = site.Value
			res, err := g.eval(act)
			if err != nil {
				// Evaluate the group's rules one by one to name the rule that failed.
				res, err = e.evalCELRules(ctx, g, act)
				if err != nil {
					return nil, fmt.Errorf("review %s: %w at %s", obj.Ref(), err, orRoot(site.Path))
				}
			}
			for i, vs := range res {
				for _, v := range vs {
					r.add(g.rules[i].ID, joinPath(site.Path, v.field), v.message)
				}
			}
		}
	}

	if q := e.rego.queries[regoKey{obj.Kind, inv != nil && inv.Complete()}]; q != nil {
		res, err := q.eval(ctx, e.regoInput(&r, inv))
		if err != nil {
			return nil, fmt.Errorf("review %s: rego rules: %w: %v", obj.Ref(), ErrEvaluation, err)
		}
		for _, rule := range q.rules {
			for _, v := range res[rule.ID] {
				r.add(rule.ID, v.field, v.message)
			}
		}
	}

	if e.custom != nil {
		found, err := e.custom.eval(ctx, obj)
		if err != nil {
			return nil, fmt.Errorf("review %s: custom policies: %w: %v", obj.Ref(), ErrEvaluation, err)
		}
		for _, c := range found {
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
	out := r.findings[:0]
	for _, f := range r.findings {
		if !silenced[f.Rule] {
			out = append(out, f)
		}
	}
	return out, nil
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
				var in []*Rule
				for _, r := range rules {
					if r.Scope == scope && r.AppliesTo(kind) && (complete || r.Inventory != NeedAbsence) {
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
	return nil
}

// noRelated is what rules see without an inventory; they read it, never write it.
var noRelated = map[string]any{"hosts": map[string]any{}}

type celKey struct {
	kind     string
	complete bool
}

// relatedFor tells the rules what the inventory says about obj. For a VirtualService: per
// destination host as its routes write it, the host's FQDN and what its DestinationRules
// configure. For a DestinationRule: the effective mTLS mode of its host's namespace. Istio's
// host and policy resolution lives here, in Go, once, rather than in every rule.
func (e *Engine) relatedFor(obj *manifest.Object, inv Inventory) map[string]any {
	switch obj.Kind {
	case manifest.KindVirtualService:
		hosts := map[string]any{}
		for _, host := range routeHosts(obj) {
			if _, ok := hosts[host]; ok {
				continue
			}
			fqdn := mesh.FQDN(host, obj.Namespace, e.cfg.MeshDomain)
			hosts[host] = hostFacts(fqdn, inv.DestinationRules(fqdn))
		}
		return map[string]any{"hosts": hosts}
	case manifest.KindDestinationRule:
		host := specString(obj, "host")
		ns, ok := mesh.HostNamespace(host, obj.Namespace, e.cfg.MeshDomain)
		if !ok {
			return noRelated
		}
		eff := inv.MTLS().Namespace(ns)
		m := map[string]any{"namespace": ns, "mode": string(eff.Mode), "level": string(eff.Level), "policy": "(none: Istio's default)"}
		if eff.Policy != nil {
			m["policy"] = eff.Policy.Namespace + "/" + eff.Policy.Name
		}
		return map[string]any{"mtls": m}
	case manifest.KindPeerAuthentication, manifest.KindTelemetry:
		// Only the siblings that compete for the same scope: namespace- or mesh-wide ones.
		if scoped(obj) {
			return map[string]any{"scoped": true}
		}
		var siblings []any
		for _, o := range inv.List(obj.Kind, obj.Namespace) {
			// A name defined in several files of a lint run is one sibling, not several.
			if o.Name != obj.Name && !scoped(o) && !slices.Contains(siblings, any(o.Name)) {
				siblings = append(siblings, o.Name)
			}
		}
		return map[string]any{"scoped": false, "unscopedSiblings": siblings}
	}
	return noRelated
}

func (e *Engine) evalCELRules(ctx context.Context, g *celGroup, act *activation) ([][]violation, error) {
	res := make([][]violation, len(g.rules))
	for i, rule := range g.rules {
		one := *act
		one.params = e.params[rule.ID]
		vs, err := e.cel[rule.ID].eval(ctx, &one)
		if err != nil {
			return nil, fmt.Errorf("rule %s: %w: %v", rule.ID, ErrEvaluation, err)
		}
		res[i] = vs
	}
	return res, nil
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
	sitesBy  map[Scope][]Site
	findings []Finding
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

// hostFacts says what the DestinationRules of one host configure: whether any traffic policy
// has outlier detection or a retry budget, and which subsets exist. Each DestinationRule is
// summarised once and cached on the object.
func hostFacts(fqdn string, drs []*manifest.Object) map[string]any {
	var outlier, budget bool
	subsets := []any{}
	names := []any{}
	for _, dr := range drs {
		s := dr.Memo("summary", func() any { return summarize(dr) }).(drSummary)
		outlier = outlier || s.outlier
		budget = budget || s.budget
		for _, n := range s.subsets {
			subsets = append(subsets, n)
		}
		names = append(names, dr.Namespace+"/"+dr.Name)
	}
	return map[string]any{"fqdn": fqdn, "destinationRules": names, "outlierDetection": outlier, "retryBudget": budget, "subsets": subsets}
}

type drSummary struct {
	outlier, budget bool
	subsets         []string
}

func summarize(dr *manifest.Object) drSummary {
	var s drSummary
	for _, site := range Sites(dr, ScopeTrafficPolicy) {
		if site.Value["outlierDetection"] != nil {
			s.outlier = true
		}
		if site.Value["retryBudget"] != nil {
			s.budget = true
		}
		if cp, ok := site.Value["connectionPool"].(map[string]any); ok {
			if h, ok := cp["http"].(map[string]any); ok && h["maxRetries"] != nil {
				s.budget = true
			}
		}
	}
	spec := dr.SpecMap()
	subsets, _ := spec["subsets"].([]any)
	for _, sub := range subsets {
		if m, ok := sub.(map[string]any); ok {
			if n, ok := m["name"].(string); ok {
				s.subsets = append(s.subsets, n)
			}
		}
	}
	return s
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

// routeHosts lists the destination hosts of a VirtualService's HTTP routes.
func routeHosts(o *manifest.Object) []string {
	spec := o.SpecMap()
	routes, _ := spec["http"].([]any)
	var hosts []string
	for _, rt := range routes {
		rm, _ := rt.(map[string]any)
		dests, _ := rm["route"].([]any)
		for _, d := range dests {
			dm, _ := d.(map[string]any)
			dest, _ := dm["destination"].(map[string]any)
			if h, ok := dest["host"].(string); ok {
				hosts = append(hosts, h)
			}
		}
	}
	sort.Strings(hosts)
	return hosts
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

func orRoot(p string) string {
	if p == "" {
		return "object"
	}
	return p
}
