package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestConfigErrorsGiveTheLineAndTheClosestKey(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"a misspelt top-level key names its line and the key meant", "meshDomain: cluster.local\nrootNamespce: istio-system\n", `line 2: unknown key "rootNamespce"; did you mean "rootNamespace"?`},
		{"a misspelt nested key gives its whole path", "webhook:\n  enforcement: warn\n  timout: 3s\n", `line 3: unknown key "webhook.timout"; did you mean "timeout"?`},
		{"a key under a rule ID is checked against the rule settings", "rules:\n  MG101:\n    param: {maxRetryAttempts: 5}\n", `line 3: unknown key "rules.MG101.param"; did you mean "params"?`},
		{"a key that is nothing like a known one has no suggestion", "zzzzzzzz: 1\n", `line 1: unknown key "zzzzzzzz"`},
		{"a key inside a list item is checked", "check:\n  alertmanagers:\n  - url: http://am\n    bearerTokn: x\n", `line 4: unknown key "check.alertmanagers[0].bearerTokn"; did you mean "bearerToken"?`},
		{"a value of the wrong type names the field and its line, not JSON", "webhook:\n  maxRequestBytes: lots\n", `line 2: webhook.maxRequestBytes: want int64, not string`},
		{"a YAML syntax error keeps its line", "webhook: {\n", "line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Parse([]byte(tt.yaml), Default())
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.want)
			require.NotContains(t, err.Error(), "JSON")
		})
	}
}

func TestTheConfigFileIsFoundInTheWorkingDirectoryOrTheRepositoryRoot(t *testing.T) {
	repo := t.TempDir()
	sub := filepath.Join(repo, "deploy", "k8s")
	require.NoError(t, os.MkdirAll(sub, 0o755))
	require.NoError(t, os.Mkdir(filepath.Join(repo, ".git"), 0o755))

	got, err := Find(sub)
	require.NoError(t, err)
	require.Empty(t, got, "no file anywhere: no config")

	rootFile := filepath.Join(repo, FileName)
	require.NoError(t, os.WriteFile(rootFile, []byte("meshDomain: example.org\n"), 0o644))
	got, err = Find(sub)
	require.NoError(t, err)
	require.Equal(t, rootFile, got, "found at the repository root")

	subFile := filepath.Join(sub, FileName)
	require.NoError(t, os.WriteFile(subFile, []byte("{}\n"), 0o644))
	got, err = Find(sub)
	require.NoError(t, err)
	require.Equal(t, subFile, got, "the working directory's file wins")
}
