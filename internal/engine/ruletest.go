package engine

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/meshguard/meshguard/internal/manifest"
)

// Test annotations in a rule's testdata: the field paths the rule must report on that object
// (comma-separated; absent means none), and, for inventory rules, that the file's inventory must
// produce a finding.
const (
	ExpectAnnotation          = "test.meshguard.io/expect"
	ExpectInventoryAnnotation = "test.meshguard.io/expect-inventory"
)

// CaseResult is the outcome of one object (or inventory) in a rule's testdata.
type CaseResult struct {
	Rule   string
	File   string
	Object string
	Want   []string
	Got    []string
	Err    error
}

// Failed tells whether the case did not hold.
func (c CaseResult) Failed() bool { return c.Err != nil || !slices.Equal(c.Want, c.Got) }

func (c CaseResult) String() string {
	if c.Err != nil {
		return fmt.Sprintf("%s %s %s: %v", c.Rule, c.File, c.Object, c.Err)
	}
	return fmt.Sprintf("%s %s %s: want findings at %v, got %v", c.Rule, c.File, c.Object, c.Want, c.Got)
}

// TestRule evaluates a rule's testdata/pass.yaml and testdata/fail.yaml (each file one complete
// inventory) and reports, per object, the field paths the rule was expected to report and the
// ones it did.
func (e *Engine) TestRule(ctx context.Context, r *Rule) ([]CaseResult, error) {
	if r.FS == nil {
		return nil, fmt.Errorf("test rule %s: no testdata", r.ID)
	}
	var results []CaseResult
	for _, name := range []string{"pass.yaml", "fail.yaml"} {
		file := path.Join(r.Dir, "testdata", name)
		data, err := fs.ReadFile(r.FS, file)
		if err != nil {
			return nil, fmt.Errorf("test rule %s: %w", r.ID, err)
		}
		objs, problems := manifest.Parse(file, data)
		inv := NewIndex(objs, true, e.cfg.RootNamespace, e.cfg.MeshDomain)
		if r.Scope == ScopeInventory {
			res := CaseResult{Rule: r.ID, File: file, Object: "(inventory)"}
			for _, o := range objs {
				if o.Annotations[ExpectInventoryAnnotation] == "true" {
					res.Want = []string{""}
				}
			}
			fs, err := e.ReviewInventory(ctx, inv)
			res.Err = err
			for _, f := range fs {
				if f.Rule == r.ID {
					res.Got = []string{""}
				}
			}
			results = append(results, res)
			continue
		}
		for _, p := range problems {
			res := CaseResult{Rule: r.ID, File: file, Object: p.Kind + " " + p.Name, Want: expected(p.Annotations)}
			if r.ID == RuleInvalidDocument {
				res.Got = []string{p.Path}
			}
			results = append(results, res)
		}
		for _, o := range objs {
			if manifest.InventoryOnly(o.Kind) {
				continue // context for the cases, not a case
			}
			res := CaseResult{Rule: r.ID, File: file, Object: o.Ref(), Want: expected(o.Annotations)}
			fs, err := e.Review(ctx, o, inv)
			res.Err = err
			fs = append(fs, e.Validate(ctx, o, false)...)
			for _, f := range fs {
				if f.Rule == r.ID {
					res.Got = append(res.Got, f.Path)
				}
			}
			sort.Strings(res.Got)
			results = append(results, res)
		}
	}
	return results, nil
}

func expected(ann map[string]string) []string {
	v, ok := ann[ExpectAnnotation]
	if !ok || v == "" {
		return nil
	}
	out := strings.Split(v, ",")
	for i := range out {
		out[i] = strings.TrimSpace(out[i])
	}
	sort.Strings(out)
	return out
}
