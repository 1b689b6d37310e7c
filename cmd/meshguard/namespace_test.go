package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// A tutorial applied with `kubectl apply -n tutorial` names no namespace: lint -n puts its
// objects where kubectl would, so they meet the namespaced ones.
func TestLintNamespacePlacesObjectsThatHaveNone(t *testing.T) {
	const files = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v1}}]
    retries: {attempts: 0}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: tutorial}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
`
	tests := []struct {
		name      string
		args      []string
		wantNS    string
		wantMG506 bool
	}{
		{"without -n an object lands in default, away from the tutorial's rule", nil, "default", true},
		{"with -n tutorial it meets the rule for its host", []string{"-n", "tutorial"}, "tutorial", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := writeFile(t, t.TempDir(), "tutorial.yaml", files)
			args := append([]string{"lint", "--complete", "--fail-on", "none", "-o", "json"}, tt.args...)
			out, stderr, code := run(t, "", append(args, f)...)
			require.Equal(t, 0, code, stderr)
			var rep struct {
				Findings []struct{ Rule, Kind, Namespace, Message string } `json:"findings"`
			}
			require.NoError(t, json.Unmarshal([]byte(out), &rep))
			got := false
			for _, fd := range rep.Findings {
				if fd.Kind == "VirtualService" {
					require.Equal(t, tt.wantNS, fd.Namespace)
				}
				require.NotContains(t, fd.Message, "..svc", "no message prints an empty namespace")
				got = got || fd.Rule == "MG506"
			}
			require.Equal(t, tt.wantMG506, got)
		})
	}
}
