package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/spf13/cobra"

	"github.com/meshguard/meshguard/checks"
	"github.com/meshguard/meshguard/internal/engine"
	"github.com/meshguard/meshguard/internal/report"
)

func newPoliciesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "policies", Short: "List the rules and test policy directories", Args: cobra.ArbitraryArgs, RunE: requireSubcommand}
	cmd.AddCommand(newPoliciesListCmd(), newPoliciesTestCmd())
	return cmd
}

type ruleListing struct {
	ID          string         `json:"id"`
	Title       string         `json:"title"`
	Severity    string         `json:"severity"`
	Enabled     bool           `json:"enabled"`
	Kinds       []string       `json:"kinds"`
	Language    string         `json:"language"`
	Inventory   string         `json:"inventory,omitempty"`
	Params      map[string]any `json:"params"`
	Description string         `json:"description"`
	Remediation string         `json:"remediation"`
	Source      string         `json:"source"`
}

func newPoliciesListCmd() *cobra.Command {
	var rf ruleFlags
	var output string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Print every rule with its ID, severity, default parameters and description",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rf.stderr = cmd.ErrOrStderr()
			cfg, eng, err := rf.build(cmd.Context())
			if err != nil {
				return err
			}
			var rows []ruleListing
			for _, r := range eng.Rules() {
				kinds := r.Kinds
				if len(kinds) == 0 {
					kinds = []string{"*"}
				}
				rows = append(rows, ruleListing{
					ID: r.ID, Title: r.Title, Severity: eng.Severity(r.ID).String(), Enabled: eng.Enabled(r.ID),
					Kinds: kinds, Language: r.Lang, Inventory: string(r.Inventory), Params: eng.Params(r.ID),
					Description: strings.TrimSpace(r.Description), Remediation: r.Remediation, Source: r.Source,
				})
			}
			alerts := alertListings(checks.SettingsFrom(cfg))
			switch output {
			case "json":
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(append(rows, alerts...))
			case "md", "markdown":
				return listMarkdown(cmd.OutOrStdout(), rows, alerts)
			case "text", "":
				return listText(cmd.OutOrStdout(), rows, alerts)
			}
			return usageError(report.UnknownFormat(output, "text", "json", "md"))
		},
	}
	rf.discover = true
	rf.register(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text, json or md")
	return cmd
}

// alertKind is the kinds column of the runtime alerts: they judge live traffic, not objects.
const alertKind = "runtime"

// alertListings lists the runtime checker's alerts beside the rules: the same registry, so a
// reader finds an alert, the keys that tune it and its runbook where the rules are.
func alertListings(s checks.Settings) []ruleListing {
	var rows []ruleListing
	for _, r := range checks.AllAlerts() {
		rows = append(rows, ruleListing{
			ID: r.Alertname, Title: r.Help, Severity: r.Severity, Enabled: true,
			Kinds: []string{alertKind}, Language: "promql", Params: s.AlertParams(r.Alertname),
			Description: r.Help, Remediation: "see docs/runbooks.md#" + strings.ToLower(r.Alertname),
			Source: "meshguard check",
		})
	}
	return rows
}

func paramString(p map[string]any) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(p)) {
		parts = append(parts, fmt.Sprintf("%s=%v", k, p[k]))
	}
	return strings.Join(parts, " ")
}

func listText(w io.Writer, rows, alerts []ruleListing) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSEVERITY\tKINDS\tLANG\tPARAMS\tTITLE")
	for _, r := range rows {
		sev := r.Severity
		if !r.Enabled {
			sev += " (off)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, sev, strings.Join(r.Kinds, ","), r.Language, paramString(r.Params), r.Title)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nRuntime alerts (meshguard check; keys under check.):")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ALERT\tSEVERITY\tPARAMS\tFIRES WHEN")
	for _, a := range alerts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.ID, a.Severity, paramString(a.Params), a.Description)
	}
	return tw.Flush()
}

func listMarkdown(w io.Writer, rows, alerts []ruleListing) error {
	ew := &strings.Builder{}
	fmt.Fprintln(ew, "| ID | Severity | Kinds | Parameters (defaults) | Fires when |")
	fmt.Fprintln(ew, "|---|---|---|---|---|")
	for _, r := range rows {
		desc := strings.ReplaceAll(strings.SplitN(r.Description, "\n\n", 2)[0], "\n", " ")
		fmt.Fprintf(ew, "| %s | %s | %s | %s | **%s.** %s |\n", r.ID, r.Severity, strings.Join(r.Kinds, ", "), paramString(r.Params), r.Title, desc)
	}
	// One heading per rule: its anchor (#mg101) is the helpUri of SARIF results and the link of
	// the GitHub step summary.
	fmt.Fprintln(ew, "\n## Rules in detail")
	for _, r := range rows {
		kinds := "kinds " + strings.Join(r.Kinds, ", ")
		if kinds == "kinds *" {
			kinds = "every kind"
		}
		fmt.Fprintf(ew, "\n### %s\n\n**%s.** Severity %s; %s", r.ID, r.Title, r.Severity, kinds)
		if p := paramString(r.Params); p != "" {
			fmt.Fprintf(ew, "; parameters %s", p)
		}
		fmt.Fprintf(ew, ".\n\n%s\n", r.Description)
		if r.Remediation != "" {
			fmt.Fprintf(ew, "\nFix: %s\n", strings.TrimSpace(r.Remediation))
		}
	}
	// The runtime alerts, each linked to its runbook (the runbook_url the checker sends).
	fmt.Fprintln(ew, "\n## Runtime alerts (meshguard check)")
	fmt.Fprintln(ew, "\nParameters are configuration keys under `check.`.")
	fmt.Fprintln(ew, "\n| Alert | Severity | Parameters (defaults) | Fires when |")
	fmt.Fprintln(ew, "|---|---|---|---|")
	for _, a := range alerts {
		fmt.Fprintf(ew, "| [%s](runbooks.md#%s) | %s | %s | %s |\n", a.ID, strings.ToLower(a.ID), a.Severity, paramString(a.Params), a.Description)
	}
	_, err := io.WriteString(w, ew.String())
	return err
}

func newPoliciesTestCmd() *cobra.Command {
	var verbose bool
	cmd := &cobra.Command{
		Use:   "test DIR...",
		Short: "Run a policy directory's Rego unit tests (test_* rules) and its rule directories' testdata",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, dirs []string) error {
			failed, total := 0, 0
			for _, dir := range dirs {
				pd, err := engine.LoadPolicyDir(dir)
				if err != nil {
					return usageError(err)
				}
				f, n, err := runRegoTests(cmd.Context(), cmd.OutOrStdout(), pd, verbose)
				if err != nil {
					return err
				}
				failed, total = failed+f, total+n
				f, n, err = runRuleTestdata(cmd.Context(), cmd.OutOrStdout(), pd, verbose)
				if err != nil {
					return err
				}
				failed, total = failed+f, total+n
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d passed, %d failed\n", total-failed, failed)
			if failed > 0 {
				return &exitError{code: 1}
			}
			if total == 0 {
				return usageError(fmt.Errorf("no tests found in %s", strings.Join(dirs, ", ")))
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "print every test, not only failures")
	return cmd
}

func runRegoTests(ctx context.Context, w io.Writer, pd *engine.PolicyDir, verbose bool) (failed, total int, err error) {
	if len(pd.Tests) == 0 {
		return 0, 0, nil
	}
	mods := map[string]*ast.Module{}
	all := map[string]string{}
	maps.Copy(all, pd.Rego)
	maps.Copy(all, pd.Tests)
	for _, r := range pd.Rules {
		if r.Lang == "rego" {
			all[r.Source+"/"+r.Dir+"/rule.rego"] = r.Rego
		}
	}
	for name, src := range all {
		m, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return 0, 0, usageError(fmt.Errorf("parse %s: %w", name, err))
		}
		mods[name] = m
	}
	bs, err := engine.TesterBuiltins("cluster.local")
	if err != nil {
		return 0, 0, err
	}
	ch, err := tester.NewRunner().SetModules(mods).AddCustomBuiltins(bs).SetDefaultRegoVersion(ast.RegoV1).RunTests(ctx, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("run rego tests: %w", err)
	}
	var results []*tester.Result
	for r := range ch {
		results = append(results, r)
	}
	sort.Slice(results, func(i, j int) bool { return results[i].Package+results[i].Name < results[j].Package+results[j].Name })
	for _, r := range results {
		total++
		status := "PASS"
		switch {
		case r.Error != nil:
			status, failed = "ERROR", failed+1
		case r.Fail:
			status, failed = "FAIL", failed+1
		}
		if status != "PASS" || verbose {
			fmt.Fprintf(w, "%s %s: %s.%s", status, r.Location.File, strings.TrimPrefix(r.Package, "data."), r.Name)
			if r.Error != nil {
				fmt.Fprintf(w, ": %v", r.Error)
			}
			fmt.Fprintln(w)
		}
	}
	return failed, total, nil
}

func runRuleTestdata(ctx context.Context, w io.Writer, pd *engine.PolicyDir, verbose bool) (failed, total int, err error) {
	if len(pd.Rules) == 0 {
		return 0, 0, nil
	}
	eng, err := engine.New(ctx, engine.Options{Rules: pd.Rules})
	if err != nil {
		return 0, 0, usageError(err)
	}
	for _, r := range pd.Rules {
		if r.FS == nil {
			continue // single-file CEL rules have no testdata directory
		}
		results, err := eng.TestRule(ctx, r)
		if err != nil {
			fmt.Fprintf(w, "SKIP %s: %v\n", r.ID, err)
			continue
		}
		for _, c := range results {
			total++
			if c.Failed() {
				failed++
				fmt.Fprintln(w, "FAIL", c.String())
			} else if verbose {
				fmt.Fprintf(w, "PASS %s %s %s\n", c.Rule, c.File, c.Object)
			}
		}
	}
	return failed, total, nil
}
