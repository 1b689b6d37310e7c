package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/internal/engine"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// sample is one run covering what the formats must get right: a finding with a line, one in a
// file whose name needs percent-encoding, one under an absolute path inside the base directory
// and one outside it, an inventory finding with no file, a custom rule without docs, and a
// clean file.
func sample() *Report {
	return &Report{
		Findings: []engine.Finding{
			{Rule: "MG101", Severity: engine.SeverityError, Kind: "VirtualService", APIVersion: "networking.istio.io/v1", Namespace: "shop", Name: "checkout", File: "k8s/retry storm.yaml", Line: 19, Path: "spec.http[0].retries.attempts", Message: "retries.attempts is 10, above the budget of 3", Hint: "Lower retries.attempts to 3."},
			{Rule: "MG102", Severity: engine.SeverityWarning, Kind: "VirtualService", APIVersion: "networking.istio.io/v1", Namespace: "shop", Name: "checkout", File: "k8s/retry storm.yaml", Line: 17, Path: "spec.http[0].retries", Message: "retries without perTryTimeout"},
			{Rule: "MG301", Severity: engine.SeverityError, Kind: "PeerAuthentication", APIVersion: "security.istio.io/v1", Namespace: "shop", Name: "default", File: "/src/repo/k8s/a:b%.yaml", Line: 7, Path: "spec.mtls.mode", Message: "mtls.mode is PERMISSIVE"},
			{Rule: "MG201", Severity: engine.SeverityError, Kind: "DestinationRule", APIVersion: "networking.istio.io/v1", Namespace: "shop", Name: "cart", File: "/elsewhere/dr.yaml", Line: 3, Path: "spec.trafficPolicy.outlierDetection.maxEjectionPercent", Message: "maxEjectionPercent is 100 <all> & \"more\""},
			{Rule: "MG504", Severity: engine.SeverityWarning, Message: "no mesh-wide STRICT PeerAuthentication"},
			{Rule: "ACME001", Severity: engine.SeverityInfo, Kind: "Telemetry", Namespace: "shop", Name: "t", File: "k8s/telemetry.yaml", Line: 1, Message: "custom | rule"},
		},
		Rules: []*engine.Rule{
			{Spec: engine.Spec{ID: "MG101", Title: "Retry attempts above the budget", Description: "Retries multiply load.\n", Remediation: "Lower retries.attempts."}, DefaultSeverity: engine.SeverityError, Source: "builtin"},
			{Spec: engine.Spec{ID: "MG102", Title: "Retries without a per-try timeout", Description: "Each try may use the whole timeout.", Remediation: "Set perTryTimeout."}, DefaultSeverity: engine.SeverityWarning, Source: "builtin"},
			{Spec: engine.Spec{ID: "ACME001", Title: "Custom", Description: "A user policy.", Remediation: "Ask the platform team."}, DefaultSeverity: engine.SeverityInfo, Source: "policies/acme"},
		},
		Files:       5,
		Objects:     6,
		Paths:       []string{"k8s/clean.yaml", "k8s/retry storm.yaml", "k8s/telemetry.yaml", "/src/repo/k8s/a:b%.yaml", "/elsewhere/dr.yaml"},
		BaseDir:     "/src/repo",
		ToolVersion: "v1.2.3",
		ExitCode:    1,
		Duration:    1234 * time.Millisecond,
		Time:        time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
	}
}

func render(t *testing.T, format string, opts Options, r *Report) []byte {
	t.Helper()
	out, err := Get(format, opts)
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, out.Output(&buf, r))
	return buf.Bytes()
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./internal/report -update to create it")
	require.Equal(t, string(want), string(got), "%s differs; run go test ./internal/report -update and review the diff", path)
}

func TestEachFormatMatchesItsGoldenFile(t *testing.T) {
	source := func(file string) ([]byte, error) {
		if file == "k8s/retry storm.yaml" {
			return []byte("l1\nl2\nl3\nl4\nl5\nl6\nl7\nl8\nl9\nl10\nl11\nl12\nl13\nl14\nl15\nl16\n    retries:\n      perTryTimeout: 1s\n      attempts: 10\nl20\n"), nil
		}
		return nil, os.ErrNotExist
	}
	for _, tc := range []struct {
		name, format, golden string
		opts                 Options
	}{
		{"text groups findings by file with a summary line", "text", "text.golden", Options{}},
		{"text with --context prints the source lines around each finding", "text", "text-context.golden", Options{Context: 1, Source: source}},
		{"json lists every finding and the summary", "json", "json.golden", Options{}},
		{"sarif has relative encoded URIs, fingerprints, rule links, version and invocation", "sarif", "sarif.golden", Options{}},
		{"junit has a suite per file, a passing case per clean file, errors and time", "junit", "junit.golden", Options{}},
		{"github writes one workflow command per finding", "github", "github.golden", Options{}},
		{"policyreport writes a PolicyReport per namespace and a ClusterPolicyReport", "policyreport", "policyreport.golden", Options{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			golden(t, tc.golden, render(t, tc.format, tc.opts, sample()))
		})
	}
}

func TestNoFormatModifiesItsInput(t *testing.T) {
	for _, format := range Formats() {
		t.Run(format+" leaves the report as it was", func(t *testing.T) {
			r := sample()
			render(t, format, Options{Context: 2, Source: os.ReadFile, Summary: &bytes.Buffer{}}, r)
			require.Equal(t, sample(), r)
		})
	}
}

func TestTheGitHubFormatWritesAStepSummaryWhenAsked(t *testing.T) {
	var summary bytes.Buffer
	render(t, "github", Options{Summary: &summary}, sample())
	golden(t, "github-summary.golden", summary.Bytes())
}

func TestAnUnknownFormatIsRefusedWithTheValidOnes(t *testing.T) {
	_, err := Get("sarif2", Options{})
	require.EqualError(t, err, `unknown output format "sarif2" (want text, json, sarif, junit, github, policyreport)`)
}

// TestSARIFIsValidAgainstTheOASISSchema validates against sarif-schema-2.1.0.json from
// github.com/oasis-tcs/sarif-spec, path sarif-2.1/schema/sarif-schema-2.1.0.json, commit
// e0583813964ec43cea53b6b531b402866095ed1f (see testdata/schema/README.md).
func TestSARIFIsValidAgainstTheOASISSchema(t *testing.T) {
	schemaFile, err := os.Open("testdata/schema/sarif-schema-2.1.0.json")
	require.NoError(t, err)
	defer schemaFile.Close()
	doc, err := jsonschema.UnmarshalJSON(schemaFile)
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	require.NoError(t, c.AddResource("sarif-schema-2.1.0.json", doc))
	schema, err := c.Compile("sarif-schema-2.1.0.json")
	require.NoError(t, err)

	empty := &Report{ExitCode: 0}
	for _, tc := range []struct {
		name string
		r    *Report
	}{
		{"a report with every kind of location is valid", sample()},
		{"a report with no findings is valid", empty},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := jsonschema.UnmarshalJSON(bytes.NewReader(render(t, "sarif", Options{}, tc.r)))
			require.NoError(t, err)
			require.NoError(t, schema.Validate(v))
		})
	}

	t.Run("the schema catches a result without a message, so the check can fail", func(t *testing.T) {
		var log map[string]any
		require.NoError(t, json.Unmarshal(render(t, "sarif", Options{}, sample()), &log))
		res := log["runs"].([]any)[0].(map[string]any)["results"].([]any)[0].(map[string]any)
		delete(res, "message")
		require.Error(t, schema.Validate(log))
	})
}

// TestJUnitIsValidAgainstTheJenkinsXunitSchema validates with xmllint against junit-10.xsd from
// github.com/jenkinsci/xunit-plugin, path
// src/main/resources/org/jenkinsci/plugins/xunit/types/model/xsd/junit-10.xsd, commit
// 8c515de2804b3fd591a3b0f1ff8908a1b1a41887 (see testdata/schema/README.md).
func TestJUnitIsValidAgainstTheJenkinsXunitSchema(t *testing.T) {
	if testing.Short() {
		t.Skip("starts xmllint")
	}
	xmllint, err := exec.LookPath("xmllint")
	require.NoError(t, err, "xmllint (Debian's libxml2-utils) is installed by test/tools/install.sh")
	for _, tc := range []struct {
		name  string
		xml   []byte
		valid bool
	}{
		{"a report with findings and clean files is valid", render(t, "junit", Options{}, sample()), true},
		{"a report without files (audit) is valid", render(t, "junit", Options{}, &Report{Objects: 3}), true},
		{"a suite without errors is refused, so the check can fail", bytes.Replace(render(t, "junit", Options{}, sample()), []byte(`errors="0">`), []byte(`>`), 1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "junit.xml")
			require.NoError(t, os.WriteFile(file, tc.xml, 0o644))
			out, err := exec.Command(xmllint, "--noout", "--schema", "testdata/schema/junit-10.xsd", file).CombinedOutput()
			if tc.valid {
				require.NoError(t, err, string(out))
			} else {
				require.Error(t, err, string(out))
			}
		})
	}
}
