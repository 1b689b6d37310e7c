package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/internal/engine"
	"github.com/meshguard/meshguard/policies"
)

// ruleFlags are the flags every command that evaluates rules takes.
type ruleFlags struct {
	configPath string
	policyDirs []string
	now        string
}

func (f *ruleFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.configPath, "config", "", "meshguard config file (rules, severities, parameters, webhook and checker settings)")
	fs.StringArrayVar(&f.policyDirs, "policy", nil, "directory of custom policies (Rego deny/warn rules, rule directories, CEL rule files); repeatable")
	fs.StringVar(&f.now, "now", "", "evaluate exception expiry as of this date (YYYY-MM-DD) instead of today")
}

func (f *ruleFlags) clock() (func() time.Time, error) {
	if f.now == "" {
		return nil, nil
	}
	t, err := time.Parse("2006-01-02", f.now)
	if err != nil {
		return nil, usageError(fmt.Errorf("--now %q: want a date as YYYY-MM-DD", f.now))
	}
	return func() time.Time { return t }, nil
}

// build loads the config and compiles the engine; errors are usage errors (exit 2).
func (f *ruleFlags) build(ctx context.Context) (*config.Config, *engine.Engine, error) {
	cfg, err := config.Load(f.configPath)
	if err != nil {
		return nil, nil, usageError(err)
	}
	now, err := f.clock()
	if err != nil {
		return nil, nil, err
	}
	eng, err := policies.Engine(ctx, cfg, f.policyDirs, now)
	if err != nil {
		return nil, nil, usageError(err)
	}
	return cfg, eng, nil
}
