package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/internal/engine"
	"github.com/meshguard/meshguard/internal/report"
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

// reportFlags are the output flags of the commands that print a findings report (lint, audit).
type reportFlags struct {
	output  string
	failOn  string
	noColor bool
}

func (f *reportFlags) register(fs *pflag.FlagSet) {
	fs.StringVarP(&f.output, "output", "o", "text", "output format: "+strings.Join(report.Formats(), ", "))
	fs.StringVar(&f.failOn, "fail-on", "error", "exit 1 when a finding is at or above this severity: error, warning, info or none")
	fs.BoolVar(&f.noColor, "no-color", false, "never colour the text output (it is coloured only on a terminal anyway)")
}

// reporter checks the flags, so a bad one is a usage error before any work, and returns what
// writes the report.
func (f *reportFlags) reporter(cmd *cobra.Command) (*reporter, error) {
	threshold, err := parseFailOn(f.failOn)
	if err != nil {
		return nil, err
	}
	color := !f.noColor && f.output == "text" && isTerminal(cmd.OutOrStdout())
	out, err := report.Get(f.output, report.Options{Color: color})
	if err != nil {
		return nil, usageError(err)
	}
	return &reporter{out: out, threshold: threshold}, nil
}

type reporter struct {
	out       report.Outputter
	threshold engine.Severity
}

// write prints rep and turns --fail-on into the exit status.
func (r *reporter) write(cmd *cobra.Command, rep *report.Report) error {
	if err := r.out.Output(cmd.OutOrStdout(), rep); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if r.threshold > 0 && engine.Max(rep.Findings) >= r.threshold {
		return &exitError{code: 1}
	}
	return nil
}
