package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/checks"
	"github.com/meshguard/meshguard/policies"
)

// run executes the CLI in-process and returns stdout, stderr and the exit code main would use.
func run(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := newRootCmd()
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(args)
	err := cmd.Execute()
	code := 0
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
			if ee.err != nil {
				errb.WriteString(ee.err.Error())
			}
		} else {
			code = 2
			errb.WriteString(err.Error())
		}
	}
	return out.String(), errb.String(), code
}

const badVS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: storm
  namespace: shop
spec:
  hosts: [cart]
  http:
  - route: [{destination: {host: cart}}]
    timeout: 10s
    retries:
      attempts: 10
      perTryTimeout: 500ms
`

const warnVS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: no-timeout
spec:
  hosts: [cart]
  http:
  - route: [{destination: {host: cart}}]
    retries: {attempts: 2, perTryTimeout: 1s}
`

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

func TestLintExitCodes(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.yaml", badVS)
	warn := writeFile(t, dir, "warn.yaml", warnVS)
	good := writeFile(t, dir, "good.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"an error finding fails the run", []string{"lint", bad}, 1},
		{"a warning passes by default", []string{"lint", warn}, 0},
		{"a warning fails with --fail-on warning", []string{"lint", "--fail-on", "warning", warn}, 1},
		{"nothing fails with --fail-on none", []string{"lint", "--fail-on", "none", bad}, 0},
		{"a file with no Istio objects passes", []string{"lint", good}, 0},
		{"a missing path is a usage error", []string{"lint", filepath.Join(dir, "nope")}, 2},
		{"an unknown format is a usage error", []string{"lint", "-o", "xml", bad}, 2},
		{"an unknown --fail-on is a usage error", []string{"lint", "--fail-on", "fatal", bad}, 2},
		{"a bad --now is a usage error", []string{"lint", "--now", "tomorrow", bad}, 2},
		{"no path at all is a usage error", []string{"lint"}, 2},
		{"a missing config file is a usage error", []string{"lint", "--config", filepath.Join(dir, "none.yaml"), bad}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := run(t, "", tt.args...)
			require.Equal(t, tt.want, code, stderr)
			if tt.want == 2 {
				require.NotEmpty(t, stderr, "a usage error must say what is wrong")
			}
		})
	}
}

func TestLintReadsStandardInput(t *testing.T) {
	out, _, code := run(t, badVS, "lint", "-o", "json", "-")
	require.Equal(t, 1, code)
	var rep struct {
		Findings []map[string]any `json:"findings"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.NotEmpty(t, rep.Findings)
	require.Equal(t, "<stdin>", rep.Findings[0]["file"])
}

func TestLintJSONReportHasTheDocumentedShape(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.yaml", badVS)
	out, _, code := run(t, "", "lint", "-o", "json", bad)
	require.Equal(t, 1, code)
	var rep struct {
		Findings []map[string]any `json:"findings"`
		Summary  map[string]int   `json:"summary"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Len(t, rep.Findings, 1)
	f := rep.Findings[0]
	for _, k := range []string{"rule", "severity", "kind", "apiVersion", "namespace", "name", "file", "line", "path", "message"} {
		require.Contains(t, f, k)
	}
	require.Equal(t, "MG101", f["rule"])
	require.Equal(t, "error", f["severity"])
	require.Equal(t, "spec.http[0].retries.attempts", f["path"])
	require.EqualValues(t, 12, f["line"])
	require.Equal(t, 1, rep.Summary["errors"])
}

func TestLintSARIFNamesRulesAndLines(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.yaml", badVS)
	out, _, _ := run(t, "", "lint", "-o", "sarif", bad)
	var log struct {
		Version string `json:"version"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Rules []struct {
						ID   string            `json:"id"`
						Help map[string]string `json:"help"`
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID    string `json:"ruleId"`
				RuleIndex int    `json:"ruleIndex"`
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct{ URI string }    `json:"artifactLocation"`
						Region           struct{ StartLine int } `json:"region"`
					} `json:"physicalLocation"`
				} `json:"locations"`
			} `json:"results"`
		} `json:"runs"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &log))
	require.Equal(t, "2.1.0", log.Version)
	res := log.Runs[0].Results[0]
	require.Equal(t, "MG101", res.RuleID)
	require.Equal(t, "MG101", log.Runs[0].Tool.Driver.Rules[res.RuleIndex].ID)
	require.NotEmpty(t, log.Runs[0].Tool.Driver.Rules[res.RuleIndex].Help["text"])
	require.Equal(t, "file://"+bad, res.Locations[0].PhysicalLocation.ArtifactLocation.URI, "an absolute path outside the working directory is a file URI")
	require.Equal(t, 12, res.Locations[0].PhysicalLocation.Region.StartLine)
}

func TestLintJUnitAndGitHubFormats(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.yaml", badVS)
	out, _, _ := run(t, "", "lint", "-o", "junit", bad)
	var suites struct {
		Failures int `xml:"failures,attr"`
		Suites   []struct {
			Name  string `xml:"name,attr"`
			Cases []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Type string `xml:"type,attr"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	require.NoError(t, xml.Unmarshal([]byte(out), &suites))
	require.Equal(t, 1, suites.Failures)
	require.Equal(t, bad, suites.Suites[0].Name)
	require.Contains(t, suites.Suites[0].Cases[0].Name, "MG101")

	out, _, _ = run(t, "", "lint", "-o", "github", bad)
	require.Contains(t, out, "::error title=MG101 VirtualService shop/storm,file="+bad+",line=12::spec.http[0].retries.attempts: ")
}

func TestLintTextIsPlainWhenNotATerminal(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.yaml", badVS)
	out, _, _ := run(t, "", "lint", bad)
	require.NotContains(t, out, "\x1b[")
	require.Contains(t, out, bad)
	require.Contains(t, out, "MG101")
	require.Contains(t, out, "1 files, 1 objects: 1 errors, 0 warnings, 0 infos")
}

func TestConfigTunesSeverityParamsAndSwitches(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.yaml", badVS)
	cases := []struct {
		name, config string
		wantCode     int
		wantRule     bool
	}{
		{"a higher budget silences MG101", "rules:\n  MG101:\n    params: {maxRetryAttempts: 10}\n", 0, false},
		{"a disabled rule is silent", "rules:\n  MG101: {enabled: false}\n", 0, false},
		{"a downgraded rule warns", "rules:\n  MG101: {severity: warning}\n", 0, true},
		{"an unknown parameter is refused", "rules:\n  MG101:\n    params: {maxAttempts: 10}\n", 2, false},
		{"an unknown rule is refused", "rules:\n  MG999: {enabled: false}\n", 2, false},
		{"an unknown key is refused", "rulez: {}\n", 2, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := writeFile(t, t.TempDir(), "config.yaml", c.config)
			out, stderr, code := run(t, "", "lint", "--config", cfg, bad)
			require.Equal(t, c.wantCode, code, stderr)
			require.Equal(t, c.wantRule, strings.Contains(out, "MG101"), out)
		})
	}
}

func TestCustomPoliciesReportLikeBuiltInRules(t *testing.T) {
	pol := t.TempDir()
	writeFile(t, pol, "retries.rego", `package main

import rego.v1

deny contains msg if {
	input.kind == "VirtualService"
	some i, route in input.spec.http
	not route.timeout
	msg := {"msg": "every route needs a timeout", "rule": "ACME001", "field": sprintf("spec.http[%d].timeout", [i])}
}

warn contains "VirtualService in the default namespace" if {
	input.kind == "VirtualService"
	input.metadata.namespace == "default"
}
`)
	writeFile(t, pol, "retries_test.rego", `package main

import rego.v1

test_route_without_timeout_is_denied if {
	count(deny) == 1 with input as {"kind": "VirtualService", "spec": {"http": [{}]}}
}

test_route_with_timeout_passes if {
	count(deny) == 0 with input as {"kind": "VirtualService", "spec": {"http": [{"timeout": "1s"}]}}
}
`)
	writeFile(t, pol, "hosts.yaml", `id: ACME002
title: Hosts must be fully qualified
severity: warning
kinds: [VirtualService]
description: Short host names resolve relative to the namespace.
remediation: Write hosts as name.namespace.svc.cluster.local.
cel: |
  object.spec.hosts.filter(h, !h.contains('.')).map(h, {'field': 'spec.hosts', 'message': 'host ' + h + ' is not fully qualified'})
`)
	dir := t.TempDir()
	vs := writeFile(t, dir, "vs.yaml", warnVS)
	out, stderr, code := run(t, "", "lint", "-o", "json", "--policy", pol, vs)
	require.Equal(t, 1, code, stderr)
	var rep struct {
		Findings []map[string]any `json:"findings"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	got := map[string]map[string]any{}
	for _, f := range rep.Findings {
		got[f["rule"].(string)] = f
	}
	require.Equal(t, "spec.http[0].timeout", got["ACME001"]["path"])
	require.Equal(t, "error", got["ACME001"]["severity"])
	require.Equal(t, "warning", got["main"]["severity"])
	require.Equal(t, "warning", got["ACME002"]["severity"])
	require.EqualValues(t, 6, got["ACME002"]["line"])

	out, _, code = run(t, "", "policies", "test", pol)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "2 passed, 0 failed")

	writeFile(t, pol, "broken_test.rego", "package main\n\nimport rego.v1\n\ntest_fails if { count(deny) == 5 with input as {} }\n")
	out, _, code = run(t, "", "policies", "test", pol)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "FAIL")
}

func TestPoliciesListJSONHasEveryRule(t *testing.T) {
	out, _, code := run(t, "", "policies", "list", "-o", "json")
	require.Equal(t, 0, code)
	var rows []struct {
		ID       string         `json:"id"`
		Severity string         `json:"severity"`
		Params   map[string]any `json:"params"`
		Language string         `json:"language"`
		Kinds    []string       `json:"kinds"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rows))
	ids := map[string]bool{}
	langs := map[string]bool{}
	rules := 0
	for _, r := range rows {
		ids[r.ID] = true
		langs[r.Language] = true
		if !slices.Equal(r.Kinds, []string{alertKind}) {
			rules++
		}
	}
	for _, id := range []string{"MG001", "MG008", "MG009", "MG101", "MG106", "MG201", "MG205", "MG301", "MG303", "MG401", "MG406", "MG501", "MG506"} {
		require.True(t, ids[id], id)
	}
	require.True(t, langs["cel"] && langs["rego"], "the bundle uses both engines")
	bundle, err := policies.All()
	require.NoError(t, err)
	require.Equal(t, len(bundle), rules, "every rule of the bundle is listed")
	for _, a := range checks.AllAlerts() {
		require.True(t, ids[a.Alertname], "the runtime alert %s is listed with the rules", a.Alertname)
	}
}

// TestRuleDocsAreCurrent keeps docs/rules.md in step with the bundle: regenerate it with
// `make docs` when a rule changes.
func TestRuleDocsAreCurrent(t *testing.T) {
	out, _, code := run(t, "", "policies", "list", "-o", "md")
	require.Equal(t, 0, code)
	want, err := os.ReadFile("../../docs/rules.md")
	require.NoError(t, err)
	require.Equal(t, string(want), out, "docs/rules.md is stale: run make docs")
}

// TestTheREADMERuleTableIsCurrent keeps the README's rule table the same as docs/rules.md.
func TestTheREADMERuleTableIsCurrent(t *testing.T) {
	docs, err := os.ReadFile("../../docs/rules.md")
	require.NoError(t, err)
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	// The first table, the rules'; the runtime alerts' table links to the runbooks beside it.
	var rows []string
	for _, line := range strings.Split(string(docs), "\n") {
		if !strings.HasPrefix(line, "|") {
			if len(rows) > 0 {
				break
			}
			continue
		}
		rows = append(rows, line)
	}
	require.NotEmpty(t, rows)
	require.Contains(t, string(readme), strings.Join(rows, "\n"), "the README's rule table is stale: copy it from docs/rules.md")
}
