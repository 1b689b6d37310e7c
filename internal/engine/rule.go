package engine

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/meshguard/meshguard/internal/manifest"
)

// Scope says what one evaluation of a rule looks at.
type Scope string

const (
	// ScopeObject evaluates once per object.
	ScopeObject Scope = "object"
	// ScopeHTTPRoute evaluates once per VirtualService spec.http[] route.
	ScopeHTTPRoute Scope = "httpRoute"
	// ScopeTrafficPolicy evaluates once per DestinationRule traffic policy: the top-level one,
	// each subset's, and each port-level setting of either.
	ScopeTrafficPolicy Scope = "trafficPolicy"
	// ScopeInventory evaluates once per inventory.
	ScopeInventory Scope = "inventory"
)

// Need says what a rule needs of the inventory.
type Need string

const (
	NeedNone Need = ""
	// NeedConflict rules compare objects: they run whenever the others are in the inventory.
	NeedConflict Need = "conflict"
	// NeedAbsence rules report something missing: they run only on a complete inventory.
	NeedAbsence Need = "absence"
)

// Param is one tunable rule parameter.
type Param struct {
	Name        string `json:"name"`
	Type        string `json:"type"` // int, number, string, bool
	Default     any    `json:"default"`
	Description string `json:"description"`
}

// Spec is a rule's metadata as written in its rule.yaml (or a custom CEL rule file).
type Spec struct {
	ID          string   `json:"id"`
	Title       string   `json:"title"`
	Severity    string   `json:"severity"`
	Kinds       []string `json:"kinds,omitempty"`
	Scope       Scope    `json:"scope,omitempty"`
	Inventory   Need     `json:"inventory,omitempty"`
	Params      []Param  `json:"params,omitempty"`
	Description string   `json:"description"`
	Remediation string   `json:"remediation"`
	// CEL is the rule's expression when written inline (custom rule files); built-in rules keep
	// theirs in rule.cel beside rule.yaml.
	CEL string `json:"cel,omitempty"`
	// Builtin marks rules implemented by meshguard itself (document decoding, exceptions).
	Builtin bool `json:"builtin,omitempty"`
}

// Rule is a loaded rule: metadata plus its source, not yet compiled.
type Rule struct {
	Spec
	DefaultSeverity Severity
	// Lang is "cel", "rego" or "go".
	Lang string
	// Source is where the rule came from: "builtin" or a path.
	Source string
	// Dir is the rule's directory in its file system (for its testdata).
	Dir  string
	FS   fs.FS
	Expr string // CEL source
	Rego string // Rego module source
	// RegoPackage is the module's package path, e.g. meshguard.rules.mg501.
	RegoPackage string
}

// IsBuiltin tells whether the rule is one of meshguard's own (policies/), not a user's.
func (r *Rule) IsBuiltin() bool { return r.Source == "builtin" }

// AppliesTo tells whether the rule looks at objects of kind.
func (r *Rule) AppliesTo(kind string) bool {
	if len(r.Kinds) == 0 {
		return true
	}
	for _, k := range r.Kinds {
		if k == kind {
			return true
		}
	}
	return false
}

var ruleIDPattern = regexp.MustCompile(`^[A-Z][A-Z0-9]*[0-9]{3}$`)

// LoadRuleDirs reads every rule directory named in dirs from fsys: rule.yaml plus rule.cel or
// rule.rego.
func LoadRuleDirs(fsys fs.FS, dirs []string, source string) ([]*Rule, error) {
	var rules []*Rule
	var errs []error
	for _, d := range dirs {
		r, err := loadRuleDir(fsys, d, source)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rules = append(rules, r)
	}
	return rules, errors.Join(errs...)
}

func loadRuleDir(fsys fs.FS, dir, source string) (*Rule, error) {
	data, err := fs.ReadFile(fsys, path.Join(dir, "rule.yaml"))
	if err != nil {
		return nil, fmt.Errorf("load rule %s: %w", dir, err)
	}
	r, err := parseRule(data, path.Join(dir, "rule.yaml"))
	if err != nil {
		return nil, err
	}
	r.Source, r.Dir, r.FS = source, dir, fsys
	if b, err := fs.ReadFile(fsys, path.Join(dir, "rule.cel")); err == nil {
		r.Expr, r.Lang = string(b), "cel"
	}
	if b, err := fs.ReadFile(fsys, path.Join(dir, "rule.rego")); err == nil {
		if r.Lang != "" {
			return nil, fmt.Errorf("load rule %s: both rule.cel and rule.rego", dir)
		}
		r.Rego, r.Lang = string(b), "rego"
		r.RegoPackage = regoPackage(r.Rego)
		if r.RegoPackage == "" {
			return nil, fmt.Errorf("load rule %s: rule.rego has no package clause", dir)
		}
	}
	if r.Lang == "" && r.CEL != "" {
		r.Expr, r.Lang = r.CEL, "cel"
	}
	if r.Lang == "" {
		if !r.Builtin {
			return nil, fmt.Errorf("load rule %s: no rule.cel, rule.rego or cel expression", dir)
		}
		r.Lang = "go"
	}
	return r, nil
}

// ParseCELRuleFile reads a custom CEL rule written as one YAML file with an inline `cel:` key.
func ParseCELRuleFile(data []byte, file string) (*Rule, error) {
	r, err := parseRule(data, file)
	if err != nil {
		return nil, err
	}
	if r.CEL == "" {
		return nil, fmt.Errorf("load rule %s: no cel expression", file)
	}
	r.Expr, r.Lang, r.Source = r.CEL, "cel", file
	return r, nil
}

func parseRule(data []byte, file string) (*Rule, error) {
	var s Spec
	if err := yaml.UnmarshalStrict(data, &s); err != nil {
		return nil, fmt.Errorf("load rule %s: %w", file, err)
	}
	var errs []error
	if !ruleIDPattern.MatchString(s.ID) {
		errs = append(errs, fmt.Errorf("id %q must look like MG101 (capital letters, then three digits)", s.ID))
	}
	sev, err := ParseSeverity(s.Severity)
	if err != nil {
		errs = append(errs, fmt.Errorf("severity: %w", err))
	}
	if s.Title == "" {
		errs = append(errs, errors.New("title is required"))
	}
	if s.Remediation == "" {
		errs = append(errs, errors.New("remediation is required"))
	}
	for _, k := range s.Kinds {
		if g, _ := manifest.GroupVersions(k); g == "" {
			errs = append(errs, fmt.Errorf("kinds: %q is not one of %s", k, strings.Join(manifest.Kinds(), ", ")))
		}
	}
	switch s.Scope {
	case "":
		s.Scope = ScopeObject
	case ScopeObject, ScopeInventory:
	case ScopeHTTPRoute:
		if !onlyKind(s.Kinds, manifest.KindVirtualService) {
			errs = append(errs, errors.New("scope httpRoute needs kinds: [VirtualService]"))
		}
	case ScopeTrafficPolicy:
		if !onlyKind(s.Kinds, manifest.KindDestinationRule) {
			errs = append(errs, errors.New("scope trafficPolicy needs kinds: [DestinationRule]"))
		}
	default:
		errs = append(errs, fmt.Errorf("scope %q is not object, httpRoute, trafficPolicy or inventory", s.Scope))
	}
	switch s.Inventory {
	case NeedNone, NeedConflict, NeedAbsence:
	default:
		errs = append(errs, fmt.Errorf("inventory %q is not conflict or absence", s.Inventory))
	}
	for i, p := range s.Params {
		if _, err := coerceParam(p, p.Default); err != nil {
			errs = append(errs, fmt.Errorf("params[%d] %s: default: %w", i, p.Name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("load rule %s: %w", file, err)
	}
	return &Rule{Spec: s, DefaultSeverity: sev}, nil
}

func onlyKind(kinds []string, want string) bool { return len(kinds) == 1 && kinds[0] == want }

var packageRE = regexp.MustCompile(`(?m)^package\s+([A-Za-z0-9_.]+)`)

func regoPackage(src string) string {
	m := packageRE.FindStringSubmatch(src)
	if m == nil {
		return ""
	}
	return m[1]
}

// coerceParam checks a parameter value against its declared type; YAML numbers arrive as
// float64 or int64, and both are fine for an int as long as they are whole.
func coerceParam(p Param, v any) (any, error) {
	switch p.Type {
	case "int":
		switch t := v.(type) {
		case int:
			return int64(t), nil
		case int64:
			return t, nil
		case float64:
			if t == float64(int64(t)) {
				return int64(t), nil
			}
		}
		return nil, fmt.Errorf("%v is not an integer", v)
	case "number":
		switch t := v.(type) {
		case int:
			return float64(t), nil
		case int64:
			return float64(t), nil
		case float64:
			return t, nil
		}
		return nil, fmt.Errorf("%v is not a number", v)
	case "string":
		if s, ok := v.(string); ok {
			return s, nil
		}
		return nil, fmt.Errorf("%v is not a string", v)
	case "bool":
		if b, ok := v.(bool); ok {
			return b, nil
		}
		return nil, fmt.Errorf("%v is not a boolean", v)
	}
	return nil, fmt.Errorf("type %q is not int, number, string or bool", p.Type)
}

// SortRules orders rules by ID.
func SortRules(rs []*Rule) {
	sort.Slice(rs, func(i, j int) bool { return rs[i].ID < rs[j].ID })
}
