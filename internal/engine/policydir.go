package engine

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// PolicyDir is what a user's policy directory (--policy DIR) holds: rule directories in the
// built-in layout (rule.yaml plus rule.cel or rule.rego), single-file CEL rules (*.yaml with a
// `cel:` key), and conftest-style Rego modules (*.rego outside rule directories). Rego unit
// tests (*_test.rego) are kept for `meshguard policies test`.
type PolicyDir struct {
	Rules  []*Rule
	Rego   map[string]string // conftest-style modules by path
	Tests  map[string]string // *_test.rego by path
	Custom *CustomRego
}

// LoadPolicyDir reads a policy directory.
func LoadPolicyDir(dir string) (*PolicyDir, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("load policies %s: %w", dir, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("load policies %s: not a directory", dir)
	}
	pd := &PolicyDir{Rego: map[string]string{}, Tests: map[string]string{}}
	fsys := os.DirFS(dir)
	var ruleDirs []string
	var errs []error
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != "." && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			if _, err := fs.Stat(fsys, filepath.ToSlash(filepath.Join(p, "rule.yaml"))); err == nil {
				ruleDirs = append(ruleDirs, p)
				return fs.SkipDir
			}
			return nil
		}
		full := filepath.Join(dir, p)
		switch {
		case strings.HasSuffix(p, "_test.rego"):
			b, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			pd.Tests[full] = string(b)
		case strings.HasSuffix(p, ".rego"):
			b, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			pd.Rego[full] = string(b)
		case strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml"):
			if strings.Contains(p, "testdata") {
				return nil
			}
			b, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			r, err := ParseCELRuleFile(b, full)
			if err != nil {
				errs = append(errs, err)
				return nil
			}
			pd.Rules = append(pd.Rules, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load policies %s: %w", dir, err)
	}
	sort.Strings(ruleDirs)
	rules, err := LoadRuleDirs(fsys, ruleDirs, dir)
	errs = append(errs, err)
	pd.Rules = append(pd.Rules, rules...)
	if len(pd.Rego) > 0 {
		c, err := NewCustomRego(pd.Rego)
		errs = append(errs, err)
		pd.Custom = c
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(pd.Rules) == 0 && len(pd.Rego) == 0 && len(pd.Tests) == 0 {
		return nil, fmt.Errorf("load policies %s: no rules (*.rego, rule directories or CEL rule files)", dir)
	}
	return pd, nil
}
