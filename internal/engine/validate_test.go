package engine_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/internal/engine"
	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/meshguard/meshguard/policies"
)

// countingValidator refuses every object and counts the objects it was asked about.
type countingValidator struct{ calls int }

func (v *countingValidator) Validate(_ context.Context, o *manifest.Object, _ bool) []*manifest.Problem {
	v.calls++
	return []*manifest.Problem{
		{File: o.File, Line: o.Line, Path: "spec", Message: "refused"},
		{File: o.File, Line: o.Line, Path: "spec", Message: "deprecated", Warning: true},
	}
}

func TestTheClusterValidationRunsOnlyWhenOneOfItsRulesReports(t *testing.T) {
	for _, c := range []struct {
		name      string
		cfg       string
		wantCalls int
		want      []string
	}{
		{"both rules on: it runs and both report", "", 1, []string{"MG001", "MG003"}},
		{"only MG003 on: it runs for the warning", "rules: {MG001: {enabled: false}}", 1, []string{"MG003"}},
		{"only MG001 on: it runs for the refusal", "rules: {MG003: {enabled: false}}", 1, []string{"MG001"}},
		{"both off: it is not run at all", "rules: {MG001: {enabled: false}, MG003: {enabled: false}}", 0, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := config.Default()
			require.NoError(t, config.Parse([]byte(c.cfg), cfg))
			rules, err := policies.All()
			require.NoError(t, err)
			v := &countingValidator{}
			e, err := engine.New(context.Background(), engine.Options{Rules: rules, Config: cfg, Now: day, Validator: v})
			require.NoError(t, err)
			objs, problems := manifest.Parse("in.yaml", []byte("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a, namespace: b}\nspec: {hosts: [a]}\n"))
			require.Empty(t, problems)
			var got []string
			for _, f := range e.Validate(context.Background(), objs[0], false) {
				got = append(got, f.Rule)
			}
			require.Equal(t, c.want, got)
			require.Equal(t, c.wantCalls, v.calls)
		})
	}
}
