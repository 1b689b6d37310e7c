package main

import (
	"encoding/json"
	"encoding/xml"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

func TestVersionComesFromTheBuildInfo(t *testing.T) {
	read := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.4.0"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.modified", Value: "true"},
		}}, true
	}
	require.Equal(t, "meshguard v1.4.0, revision 0123abcd (modified), go1.26.0", readBuildInfo(read).String())
	require.Equal(t, "meshguard (devel)", readBuildInfo(func() (*debug.BuildInfo, bool) { return nil, false }).String())

	for _, args := range [][]string{{"version"}, {"--version"}} {
		t.Run(strings.Join(args, " ")+" prints the version and the Go version and exits 0", func(t *testing.T) {
			out, stderr, code := run(t, "", args...)
			require.Equal(t, 0, code, stderr)
			require.Regexp(t, `^meshguard \S+.*, go1\.\d+`, out)
			require.NotContains(t, out, "dev\n")
		})
	}
	t.Run("version -o json has the Go version", func(t *testing.T) {
		out, _, code := run(t, "", "version", "-o", "json")
		require.Equal(t, 0, code)
		var b buildInfo
		require.NoError(t, json.Unmarshal([]byte(out), &b))
		require.True(t, strings.HasPrefix(b.GoVersion, "go1."), out)
	})
}

func TestTyposInCommandsExit2WithASuggestion(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"an unknown subcommand of a group", []string{"policies", "lst"}, `unknown command "lst" for "meshguard policies"; did you mean list`},
		{"an unknown top-level command", []string{"lnt", "k8s/"}, `unknown command "lnt" for "meshguard"; did you mean lint?`},
		{"an unknown help topic", []string{"help", "audti"}, `unknown command "audti" for "meshguard"; did you mean audit?`},
		{"an unknown nested help topic", []string{"help", "policies", "tset"}, `did you mean test?`},
	} {
		t.Run(tc.name+" exits 2 and suggests the command meant", func(t *testing.T) {
			_, stderr, code := run(t, "", tc.args...)
			require.Equal(t, 2, code)
			require.Contains(t, stderr, tc.want)
		})
	}
	t.Run("help for a known topic still exits 0", func(t *testing.T) {
		out, _, code := run(t, "", "help", "policies", "list")
		require.Equal(t, 0, code)
		require.Contains(t, out, "Print every rule")
	})
}

func TestEveryCommandWordsAnUnknownFormatTheSameWay(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
	for _, args := range [][]string{{"lint", "-o", "yaml", good}, {"policies", "list", "-o", "yaml"}, {"version", "-o", "yaml"}, {"check", "--once", "-o", "yaml"}, {"graph", "-o", "yaml"}} {
		t.Run(args[0], func(t *testing.T) {
			_, stderr, code := run(t, "", args...)
			require.Equal(t, 2, code)
			require.Contains(t, stderr, `unknown output format "yaml" (want `)
		})
	}
}

// helmOutput is what `helm template app` prints for a chart with two templates.
const helmOutput = `---
# Source: app/templates/ok.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: x
---
# Source: app/templates/vs.yaml
` + badVS

func TestStandardInputFindingsPointAtAFile(t *testing.T) {
	t.Run("--stdin-filename names standard input in annotations", func(t *testing.T) {
		out, _, code := run(t, badVS, "lint", "-o", "github", "--stdin-filename", "k8s/storm.yaml", "-")
		require.Equal(t, 1, code)
		require.Contains(t, out, "file=k8s/storm.yaml,line=12::")
		require.NotContains(t, out, "<stdin>")
	})
	t.Run("helm's # Source: comments map findings to the chart's template file", func(t *testing.T) {
		out, _, code := run(t, helmOutput, "lint", "-o", "github", "-")
		require.Equal(t, 1, code)
		require.Contains(t, out, "file=app/templates/vs.yaml,line=12::")
	})
	t.Run("SARIF has a relative, percent-encoded URI for standard input", func(t *testing.T) {
		out, _, _ := run(t, badVS, "lint", "-o", "sarif", "--stdin-filename", "k8s/retry storm.yaml", "-")
		require.Contains(t, out, `"uri": "k8s/retry%20storm.yaml"`)
		require.Contains(t, out, `"uriBaseId": "%SRCROOT%"`)
		require.Contains(t, out, `"exitCode": 1`)
		require.Contains(t, out, `"partialFingerprints"`)
		require.Contains(t, out, `"helpUri": "https://github.com/meshguard/meshguard/blob/main/docs/rules.md#mg101"`)
	})
	t.Run("--context prints the lines of standard input around a finding", func(t *testing.T) {
		out, _, _ := run(t, badVS, "lint", "--context", "1", "-")
		require.Contains(t, out, ">    12 |       attempts: 10")
		require.Contains(t, out, "     13 |       perTryTimeout: 500ms")
	})
}

func TestJUnitListsCleanFilesAsPassingCases(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.yaml", badVS)
	good := writeFile(t, dir, "good.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
	out, _, _ := run(t, "", "lint", "-o", "junit", dir)
	var suites struct {
		Errors string `xml:"errors,attr"`
		Time   string `xml:"time,attr"`
		Suites []struct {
			Name   string `xml:"name,attr"`
			Errors string `xml:"errors,attr"`
			Cases  []struct {
				Name    string    `xml:"name,attr"`
				Failure *struct{} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	require.NoError(t, xml.Unmarshal([]byte(out), &suites))
	require.NotEmpty(t, suites.Time)
	require.Len(t, suites.Suites, 2)
	require.Equal(t, bad, suites.Suites[0].Name)
	require.Equal(t, good, suites.Suites[1].Name)
	require.Equal(t, "0", suites.Suites[1].Errors)
	require.Len(t, suites.Suites[1].Cases, 1)
	require.Nil(t, suites.Suites[1].Cases[0].Failure, "a clean file is a passing case")
}

func TestGitHubFormatWritesTheStepSummary(t *testing.T) {
	summary := filepath.Join(t.TempDir(), "summary.md")
	t.Setenv("GITHUB_STEP_SUMMARY", summary)
	_, _, code := run(t, badVS, "lint", "-o", "github", "--stdin-filename", "k8s/storm.yaml", "-")
	require.Equal(t, 1, code)
	data, err := os.ReadFile(summary)
	require.NoError(t, err)
	require.Contains(t, string(data), "| error | [MG101](")
	require.Contains(t, string(data), "k8s/storm.yaml:12")
}

func TestLintSelectsPathsAndRulesFromTheCommandLine(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "k8s/bad.yaml", badVS)
	writeFile(t, dir, "vendor/bad.yaml", strings.Replace(badVS, "name: storm", "name: vendored", 1))
	writeFile(t, dir, "chart/Chart.yaml", "apiVersion: v2\nname: chart\nversion: 0.1.0\n")
	writeFile(t, dir, "chart/templates/vs.yaml", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: {{ .Release.Name }}\n{{- if .Values.x }}\nspec: {}\n{{- end }}\n")
	for _, tc := range []struct {
		name       string
		args       []string
		want, not  []string
		wantStderr string
	}{
		{"--ignore leaves out a directory by glob", []string{"--ignore", "vendor/**"}, []string{"shop/storm"}, []string{"shop/vendored"}, ""},
		{"--ignore without a slash matches a name anywhere", []string{"--ignore", "vendor"}, []string{"shop/storm"}, []string{"shop/vendored"}, ""},
		{"--disable turns a rule off", []string{"--disable", "MG101"}, nil, []string{"MG101"}, ""},
		{"a chart's templates are one note, not an MG001 per template", nil, []string{"shop/storm"}, []string{"MG001", "templates/vs.yaml"}, "is a Helm chart: its templates are not linted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Chdir(dir)
			out, stderr, _ := run(t, "", append([]string{"lint", "."}, tc.args...)...)
			for _, w := range tc.want {
				require.Contains(t, out, w)
			}
			for _, n := range tc.not {
				require.NotContains(t, out, n)
			}
			require.Contains(t, stderr, tc.wantStderr)
		})
	}
	t.Run("--enable turns back on a rule the config file turns off", func(t *testing.T) {
		cfg := writeFile(t, t.TempDir(), "c.yaml", "rules:\n  MG101: {enabled: false}\n")
		out, _, code := run(t, "", "lint", "--config", cfg, "--enable", "MG101", filepath.Join(dir, "k8s"))
		require.Equal(t, 1, code)
		require.Contains(t, out, "MG101")
	})
}

func TestLintFindsTheConfigFileOnItsOwn(t *testing.T) {
	repo := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(repo, ".git"), 0o755))
	writeFile(t, repo, ".meshguard.yaml", "rules:\n  MG101: {enabled: false}\n")
	bad := writeFile(t, repo, "deploy/bad.yaml", badVS)
	t.Chdir(filepath.Join(repo, "deploy"))
	out, stderr, code := run(t, "", "lint", bad)
	require.Equal(t, 0, code, out)
	require.NotContains(t, out, "MG101")
	require.Contains(t, stderr, "using config "+filepath.Join(repo, ".meshguard.yaml"))
}

func TestConfigErrorsNameTheLineAndTheKeyMeant(t *testing.T) {
	cfg := writeFile(t, t.TempDir(), "c.yaml", "rootNamespace: istio-system\nwebhook:\n  enforcment: warn\n")
	_, stderr, code := run(t, "", "policies", "list", "--config", cfg)
	require.Equal(t, 2, code)
	require.Contains(t, stderr, `line 3: unknown key "webhook.enforcment"; did you mean "enforcement"?`)
	require.NotContains(t, stderr, "JSON")
}

func TestColourFollowsTheFlagNOCOLORAndTheTerminal(t *testing.T) {
	for _, tc := range []struct {
		name     string
		flag     bool
		env      string
		output   string
		terminal bool
		want     bool
	}{
		{"text on a terminal is coloured", false, "", "text", true, true},
		{"NO_COLOR with any value turns colour off", false, "0", "text", true, false},
		{"--no-color turns colour off", true, "", "text", true, false},
		{"a pipe is never coloured", false, "", "text", false, false},
		{"other formats are never coloured", false, "", "json", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, useColor(tc.flag, tc.env, tc.output, tc.terminal))
		})
	}
}

func TestServeCheckAndAuditShareOneSetOfLoggingFlags(t *testing.T) {
	root := newRootCmd()
	for _, name := range []string{"serve", "check", "audit"} {
		t.Run(name+" takes --log-level and --log-format", func(t *testing.T) {
			cmd, _, err := root.Find([]string{name})
			require.NoError(t, err)
			for _, flag := range []string{"log-level", "log-format"} {
				f := cmd.Flags().Lookup(flag)
				require.NotNil(t, f, "--%s", flag)
			}
			require.Equal(t, "log level: debug, info, warn or error", cmd.Flags().Lookup("log-level").Usage)
		})
	}
	for _, tc := range []struct {
		name       string
		flags      logFlags
		verbosity  int
		wantErr    string
		debugShown bool
	}{
		{"info hides debug", logFlags{level: "info", format: "json"}, 0, "", false},
		{"debug shows debug", logFlags{level: "debug", format: "text"}, 0, "", true},
		{"serve's --v lowers the level below info", logFlags{level: "info", format: "json"}, 4, "", true},
		{"an unknown level is refused", logFlags{level: "loud", format: "json"}, 0, `--log-level "loud": want debug, info, warn or error`, false},
		{"an unknown format is refused", logFlags{level: "info", format: "xml"}, 0, `--log-format "xml": want json or text`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf strings.Builder
			h, err := tc.flags.handler(&buf, tc.verbosity)
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.debugShown, h.Enabled(t.Context(), slog.LevelDebug))
		})
	}
}

// TestTheActionAndThePreCommitHooksCallRealFlags keeps action.yml and .pre-commit-hooks.yaml in
// step with the CLI: a renamed flag or command would break every user's pipeline silently.
func TestTheActionAndThePreCommitHooksCallRealFlags(t *testing.T) {
	root := newRootCmd()
	lint, _, err := root.Find([]string{"lint"})
	require.NoError(t, err)

	var hooks []struct {
		ID    string `json:"id"`
		Entry string `json:"entry"`
		Files string `json:"files"`
	}
	data, err := os.ReadFile("../../.pre-commit-hooks.yaml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(data, &hooks))
	require.NotEmpty(t, hooks)
	for _, h := range hooks {
		t.Run("hook "+h.ID+" runs meshguard lint on YAML and JSON", func(t *testing.T) {
			args := strings.Fields(h.Entry)
			require.Equal(t, "meshguard", args[0])
			cmd, rest, err := root.Find(args[1:])
			require.NoError(t, err)
			require.Equal(t, lint, cmd)
			require.Empty(t, rest)
			require.Regexp(t, h.Files, "k8s/vs.yaml")
			require.Regexp(t, h.Files, "k8s/vs.json")
		})
	}

	var action struct {
		Runs struct {
			Using string `json:"using"`
			Steps []struct {
				Run string `json:"run"`
			} `json:"steps"`
		} `json:"runs"`
	}
	data, err = os.ReadFile("../../action.yml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(data, &action))
	require.Equal(t, "composite", action.Runs.Using)
	var calls int
	for _, s := range action.Runs.Steps {
		for _, line := range strings.Split(s.Run, "\n") {
			fields := strings.Fields(line)
			if len(fields) < 2 || fields[0] != "meshguard" || fields[1] != "lint" {
				continue
			}
			calls++
			for i, f := range fields {
				if strings.HasPrefix(f, "--") {
					require.NotNil(t, lint.Flags().Lookup(strings.TrimPrefix(f, "--")), "action.yml: lint has no %s", f)
				}
				if f == "-o" {
					require.Contains(t, []string{"github", "sarif"}, fields[i+1])
				}
			}
		}
	}
	require.Equal(t, 2, calls, "the action lints for annotations and for SARIF")
}

func TestBuildInfoIsAMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(buildInfoCollector()))
	families, err := reg.Gather()
	require.NoError(t, err)
	require.Len(t, families, 1)
	require.Equal(t, "meshguard_build_info", families[0].GetName())
	m := families[0].GetMetric()[0]
	require.Equal(t, 1.0, m.GetGauge().GetValue())
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	require.Equal(t, readBuildInfo(debug.ReadBuildInfo).Version, labels["version"])
	require.True(t, strings.HasPrefix(labels["goversion"], "go1."), labels)
}

func TestSARIFPlacesInventoryFindingsOnAFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "k8s/vs.yaml", badVS)
	t.Chdir(dir)
	out, _, code := run(t, "", "lint", "--complete", "-o", "sarif", "k8s")
	require.Equal(t, 1, code)
	var log struct {
		Runs []struct {
			Results []struct {
				RuleID    string `json:"ruleId"`
				Locations []struct {
					PhysicalLocation *struct {
						ArtifactLocation struct {
							URI       string `json:"uri"`
							URIBaseID string `json:"uriBaseId"`
						} `json:"artifactLocation"`
					} `json:"physicalLocation"`
				} `json:"locations"`
			} `json:"results"`
		} `json:"runs"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &log))
	var inventory int
	for _, r := range log.Runs[0].Results {
		loc := r.Locations[0].PhysicalLocation
		require.NotNil(t, loc, "%s has a file, so code scanning shows it", r.RuleID)
		require.Equal(t, "k8s/vs.yaml", loc.ArtifactLocation.URI, r.RuleID)
		require.Equal(t, "%SRCROOT%", loc.ArtifactLocation.URIBaseID)
		if r.RuleID == "MG504" {
			inventory++
		}
	}
	require.Equal(t, 1, inventory, "the missing mesh-wide policy is reported")
}
