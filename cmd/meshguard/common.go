package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
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
	enable     []string
	disable    []string
	// discover looks for .meshguard.yaml when --config is not given (the CLI commands; the
	// webhook reads only what its deployment mounts).
	discover bool
	// stderr receives the note naming a discovered config file.
	stderr io.Writer
}

func (f *ruleFlags) register(fs *pflag.FlagSet) {
	help := "meshguard config file (rules, severities, parameters, webhook and checker settings)"
	if f.discover {
		help += "; default: " + config.FileName + " in the working directory, else at the root of its git repository"
	}
	fs.StringVar(&f.configPath, "config", "", help)
	fs.StringArrayVar(&f.policyDirs, "policy", nil, "directory of custom policies (Rego deny/warn rules, rule directories, CEL rule files); repeatable")
	fs.StringVar(&f.now, "now", "", "evaluate exception expiry as of this date (YYYY-MM-DD) instead of today")
	fs.StringArrayVar(&f.enable, "enable", nil, "turn a rule on (over the config file), by ID; repeatable or comma-separated")
	fs.StringArrayVar(&f.disable, "disable", nil, "turn a rule off (over the config file), by ID; repeatable or comma-separated")
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
	path := f.configPath
	if path == "" && f.discover {
		found, err := config.Find(".")
		if err != nil {
			return nil, nil, usageError(err)
		}
		if found != "" && f.stderr != nil {
			fmt.Fprintln(f.stderr, "meshguard: using config", found)
		}
		path = found
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, usageError(err)
	}
	switchRules(cfg, f.enable, true)
	switchRules(cfg, f.disable, false)
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

// switchRules applies --enable or --disable over the config file's rules section.
func switchRules(cfg *config.Config, ids []string, on bool) {
	for _, list := range ids {
		for _, id := range strings.Split(list, ",") {
			id = strings.ToUpper(strings.TrimSpace(id))
			if id == "" {
				continue
			}
			if cfg.Rules == nil {
				cfg.Rules = map[string]config.RuleConfig{}
			}
			rc := cfg.Rules[id]
			rc.Enabled = &on
			cfg.Rules[id] = rc
		}
	}
}

// logFlags are the logging flags of every command that logs (serve, check, audit): one name and
// one meaning for each.
type logFlags struct {
	level  string
	format string
}

func (f *logFlags) register(fs *pflag.FlagSet, defaultFormat string) {
	fs.StringVar(&f.level, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&f.format, "log-format", defaultFormat, "log format: json or text")
}

// handler returns the slog handler the flags ask for; verbosity (serve's --v) lowers the level
// further, since logr's V(n) is slog level -n.
func (f *logFlags) handler(w io.Writer, verbosity int) (slog.Handler, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.level)); err != nil {
		return nil, usageError(fmt.Errorf("--log-level %q: want debug, info, warn or error", f.level))
	}
	opts := &slog.HandlerOptions{Level: min(level, slog.Level(-verbosity))}
	switch f.format {
	case "json":
		return slog.NewJSONHandler(w, opts), nil
	case "text":
		return slog.NewTextHandler(w, opts), nil
	}
	return nil, usageError(fmt.Errorf("--log-format %q: want json or text", f.format))
}

// reportFlags are the output flags of the commands that print a findings report (lint, audit).
type reportFlags struct {
	output  string
	failOn  string
	noColor bool
	context int
}

func (f *reportFlags) register(fs *pflag.FlagSet) {
	fs.StringVarP(&f.output, "output", "o", "text", "output format: "+strings.Join(report.Formats(), ", "))
	fs.StringVar(&f.failOn, "fail-on", "error", "exit 1 when a finding is at or above this severity: error, warning, info or none")
	fs.BoolVar(&f.noColor, "no-color", false, "never colour the text output (it is coloured only on a terminal anyway; NO_COLOR set does the same)")
	fs.IntVar(&f.context, "context", 0, "text output: print this many source lines before and after each finding's line")
}

// reporter checks the flags, so a bad one is a usage error before any work, and returns what
// writes the report.
func (f *reportFlags) reporter(cmd *cobra.Command) (*reporter, error) {
	threshold, err := parseFailOn(f.failOn)
	if err != nil {
		return nil, err
	}
	if f.context < 0 {
		return nil, usageError(fmt.Errorf("--context %d: want 0 or more lines", f.context))
	}
	if _, err := report.Get(f.output, report.Options{}); err != nil {
		return nil, usageError(err)
	}
	color := useColor(f.noColor, os.Getenv("NO_COLOR"), f.output, isTerminal(cmd.OutOrStdout()))
	return &reporter{flags: f, color: color, threshold: threshold, start: time.Now(), read: os.ReadFile}, nil
}

// useColor colours only text on a terminal, unless --no-color or NO_COLOR (no-color.org: set and
// not empty, whatever its value) says not to.
func useColor(noColorFlag bool, noColorEnv, output string, terminal bool) bool {
	return !noColorFlag && noColorEnv == "" && output == "text" && terminal
}

type reporter struct {
	flags     *reportFlags
	color     bool
	threshold engine.Severity
	start     time.Time
	// read reads a file for --context; lint replaces it to serve standard input's content.
	read func(string) ([]byte, error)
}

// write prints rep and turns --fail-on into the exit status.
func (r *reporter) write(cmd *cobra.Command, rep *report.Report) error {
	code := 0
	if r.threshold > 0 && engine.Max(rep.Findings) >= r.threshold {
		code = 1
	}
	rep.ExitCode = code
	rep.ToolVersion = readBuildInfo(debug.ReadBuildInfo).Version
	rep.Duration = time.Since(r.start)
	rep.Time = r.start
	if wd, err := os.Getwd(); err == nil {
		rep.BaseDir = wd
	}
	opts := report.Options{Color: r.color, Context: r.flags.context, Source: r.read}
	if p := os.Getenv("GITHUB_STEP_SUMMARY"); p != "" && r.flags.output == "github" {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("open step summary: %w", err)
		}
		defer f.Close()
		opts.Summary = f
	}
	out, err := report.Get(r.flags.output, opts)
	if err != nil {
		return usageError(err)
	}
	if err := out.Output(cmd.OutOrStdout(), rep); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}
