package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/meshguard/meshguard/internal/engine"
	"github.com/meshguard/meshguard/internal/lint"
	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/meshguard/meshguard/internal/report"
)

func newLintCmd() *cobra.Command {
	var (
		rf          ruleFlags
		output      string
		failOn      string
		complete    bool
		noColor     bool
		maxFileSize int64
	)
	cmd := &cobra.Command{
		Use:   "lint PATH... (or - for standard input)",
		Short: "Check Istio YAML and JSON files before they reach a cluster",
		Long: `Check VirtualService, DestinationRule, PeerAuthentication and Telemetry objects in files and
directories (recursively: .yaml, .yml, .json; "-" reads standard input) against the rule bundle.

Exit status: 0 when no finding is at or above --fail-on, 1 when one is, 2 for usage errors and
unreadable paths.`,
		Example: `  meshguard lint k8s/
  helm template charts/app | meshguard lint -
  meshguard lint --complete -o sarif k8s/ > meshguard.sarif`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tuneGC(logr.Discard())
			threshold, err := parseFailOn(failOn)
			if err != nil {
				return err
			}
			color := !noColor && output == "text" && isTerminal(cmd.OutOrStdout())
			out, err := report.Get(output, report.Options{Color: color})
			if err != nil {
				return usageError(err)
			}
			_, eng, err := rf.build(cmd.Context())
			if err != nil {
				return err
			}
			loader := manifest.Loader{MaxFileSize: maxFileSize, Stdin: cmd.InOrStdin()}
			res, err := loader.Load(args)
			if err != nil {
				return usageError(err)
			}
			for _, s := range res.Skipped {
				fmt.Fprintln(cmd.ErrOrStderr(), "meshguard: skipped", s)
			}
			findings, err := lint.Run(cmd.Context(), eng, res.Objects, res.Problems, complete)
			if err != nil {
				return err
			}
			rep := &report.Report{Findings: findings, Rules: eng.Rules(), Files: res.Files, Objects: len(res.Objects)}
			if err := out.Output(cmd.OutOrStdout(), rep); err != nil {
				return fmt.Errorf("write report: %w", err)
			}
			if threshold > 0 && engine.Max(findings) >= threshold {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	fs := cmd.Flags()
	rf.register(fs)
	fs.StringVarP(&output, "output", "o", "text", "output format: "+strings.Join(report.Formats(), ", "))
	fs.StringVar(&failOn, "fail-on", "error", "exit 1 when a finding is at or above this severity: error, warning, info or none")
	fs.BoolVar(&complete, "complete", false, "the files are the whole configuration: also run the rules that report something missing (MG502, MG503, MG504, MG506)")
	fs.BoolVar(&noColor, "no-color", false, "never colour the text output (it is coloured only on a terminal anyway)")
	fs.Int64Var(&maxFileSize, "max-file-size", manifest.DefaultMaxFileSize, "refuse input files larger than this many bytes")
	return cmd
}

func parseFailOn(s string) (engine.Severity, error) {
	if s == "none" {
		return 0, nil
	}
	sev, err := engine.ParseSeverity(s)
	if err != nil {
		return 0, usageError(fmt.Errorf("--fail-on: %w", err))
	}
	return sev, nil
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
