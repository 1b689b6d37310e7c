package policies

import (
	"context"
	"errors"
	"time"

	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/internal/engine"
	"github.com/meshguard/meshguard/internal/validate"
)

// Engine builds the evaluation engine every meshguard command uses: the built-in bundle plus
// the user's policy directories, tuned by cfg, and the cluster's validation of each object.
// now (nil for the wall clock) is the day exceptions expire against.
func Engine(ctx context.Context, cfg *config.Config, policyDirs []string, now func() time.Time) (*engine.Engine, error) {
	rules, err := All()
	if err != nil {
		return nil, err
	}
	var modules map[string]string
	for _, d := range policyDirs {
		pd, err := engine.LoadPolicyDir(d)
		if err != nil {
			return nil, err
		}
		rules = append(rules, pd.Rules...)
		for k, v := range pd.Rego {
			if modules == nil {
				modules = map[string]string{}
			}
			modules[k] = v
		}
	}
	var custom *engine.CustomRego
	if modules != nil {
		if custom, err = engine.NewCustomRego(modules); err != nil {
			return nil, err
		}
	}
	val, err := validate.Default()
	if err != nil {
		return nil, err
	}
	e, err := engine.New(ctx, engine.Options{Rules: rules, Custom: custom, Config: cfg, Now: now, Validator: val})
	if err != nil {
		return nil, errors.Join(errors.New("build rule engine"), err)
	}
	return e, nil
}
