package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"

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
		out         reportFlags
		complete    bool
		maxFileSize int64
		namespace   string
		ignore      []string
		stdinName   string
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
			tuneGC(logr.Discard(), gcBatch)
			rep, err := out.reporter(cmd)
			if err != nil {
				return err
			}
			rf.stderr = cmd.ErrOrStderr()
			filter, err := lint.NewPathFilter(ignore)
			if err != nil {
				return usageError(err)
			}
			in, err := readStdin(cmd, args, maxFileSize)
			if err != nil {
				return usageError(err)
			}
			// Reading the files and compiling the rules are independent, and each takes about
			// a tenth of a second on a large directory: they overlap.
			loader := manifest.Loader{MaxFileSize: maxFileSize, Stdin: bytes.NewReader(in), Skip: filter.Skip}
			var res *manifest.Result
			var loadErr error
			loaded := make(chan struct{})
			go func() {
				defer close(loaded)
				res, loadErr = loader.Load(args)
			}()
			_, eng, err := rf.build(cmd.Context())
			<-loaded
			if err != nil {
				return err
			}
			if loadErr != nil {
				return usageError(loadErr)
			}
			for _, s := range res.Skipped {
				fmt.Fprintln(cmd.ErrOrStderr(), "meshguard: skipped", s)
			}
			for _, n := range filter.Notes {
				fmt.Fprintln(cmd.ErrOrStderr(), "meshguard: note:", n)
			}
			lint.Place(res.Objects, namespace)
			findings, err := lint.Run(cmd.Context(), eng, res.Objects, res.Problems, complete)
			if err != nil {
				return err
			}
			var paths []string
			for _, p := range res.Paths {
				if p == manifest.Stdin {
					paths = append(paths, lint.StdinFiles(in, stdinName)...)
					continue
				}
				paths = append(paths, p)
			}
			rep.read = func(file string) ([]byte, error) {
				if file == stdinName || file == lint.StdinName {
					return in, nil
				}
				return os.ReadFile(file)
			}
			findings = lint.Relocate(findings, in, stdinName)
			return rep.write(cmd, &report.Report{Findings: findings, Rules: eng.Rules(), Files: res.Files, Objects: lint.Checked(res.Objects), Paths: paths})
		},
	}
	fs := cmd.Flags()
	rf.discover = true
	rf.register(fs)
	out.register(fs)
	fs.StringArrayVar(&ignore, "ignore", nil, "leave out files and directories matching this glob (* within a name, ** across directories; without a slash it matches a name anywhere); repeatable")
	fs.StringVar(&stdinName, "stdin-filename", "", "the file name findings on standard input are reported under (helm's # Source: comments take precedence)")
	fs.BoolVar(&complete, "complete", false, "the files are the whole configuration: also run the rules that report something missing (MG502, MG503, MG504, MG506)")
	fs.StringVarP(&namespace, "namespace", "n", "default", "the namespace objects without metadata.namespace will be applied to (as kubectl apply -n)")
	fs.Int64Var(&maxFileSize, "max-file-size", manifest.DefaultMaxFileSize, "refuse input files larger than this many bytes")
	return cmd
}

// readStdin reads standard input when "-" is among the paths, keeping it for --context and for
// mapping helm's # Source: comments; one byte over the limit lets the loader refuse it.
func readStdin(cmd *cobra.Command, args []string, limit int64) ([]byte, error) {
	if !slices.Contains(args, manifest.Stdin) {
		return nil, nil
	}
	if limit <= 0 {
		limit = manifest.DefaultMaxFileSize
	}
	data, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), limit+1))
	if err != nil {
		return nil, fmt.Errorf("read standard input: %w", err)
	}
	return data, nil
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
