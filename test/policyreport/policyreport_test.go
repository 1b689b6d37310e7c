// Package policyreport tests `meshguard audit -o policyreport` and `--write` against a real
// kube-apiserver serving the Policy WG's PolicyReport CRDs (testdata/, source in its README).
package policyreport

import (
	"context"
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/test/harness"
)

const retryStorm = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: storm
  namespace: shop
spec:
  hosts: [cart]
  http:
  - route: [{destination: {host: cart}}]
    timeout: 10s
    retries: {attempts: 10, perTryTimeout: 500ms}
`

type reportList struct {
	Items []struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
		Summary struct {
			Fail int `json:"fail"`
			Warn int `json:"warn"`
		} `json:"summary"`
		Results []struct {
			Policy    string `json:"policy"`
			Result    string `json:"result"`
			Resources []struct {
				Kind, Name string
			} `json:"resources"`
		} `json:"results"`
	} `json:"items"`
}

func TestAuditPolicyReportsFitTheCRDAndStayInTheCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kube-apiserver and etcd")
	}
	ctx := context.Background()
	cp := harness.StartControlPlane(t)
	bin := harness.MeshguardBinary(t)
	kubectl := func(stdin string, args ...string) string {
		t.Helper()
		var in io.Reader
		if stdin != "" {
			in = strings.NewReader(stdin)
		}
		out, _, err := cp.Kubectl(ctx, in, args...)
		require.NoError(t, err)
		return out
	}
	kubectl("", "apply", "-f", "testdata/wgpolicyk8s.io_policyreports.yaml", "-f", "testdata/wgpolicyk8s.io_clusterpolicyreports.yaml")
	kubectl("", "wait", "--for=condition=established", "--timeout=60s", "crd/policyreports.wgpolicyk8s.io", "crd/clusterpolicyreports.wgpolicyk8s.io")
	cp.CreateNamespace(t, "shop", nil)
	cp.CreateNamespace(t, "istio-system", nil) // MG504 reports on the root namespace
	kubectl(retryStorm, "apply", "-f", "-")

	audit := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"audit", "--kubeconfig", cp.KubeconfigPath()}, args...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			require.NoError(t, err)
		}
		require.NotEqual(t, 2, code, stderr.String())
		return string(out), code
	}

	t.Run("-o policyreport is accepted by the CRD under strict field validation", func(t *testing.T) {
		out, code := audit("-o", "policyreport")
		require.Equal(t, 1, code, "the retry storm is an error")
		require.Contains(t, out, "kind: PolicyReport")
		require.Contains(t, out, "policy: MG101")
		kubectl(out, "apply", "--dry-run=server", "--validate=strict", "-f", "-")
	})

	t.Run("--write keeps a report per namespace that kubectl get reads", func(t *testing.T) {
		_, code := audit("--write", "-o", "json")
		require.Equal(t, 1, code)
		var list reportList
		require.NoError(t, json.Unmarshal([]byte(kubectl("", "get", "policyreports", "-n", "shop", "-o", "json")), &list))
		require.Len(t, list.Items, 1)
		rep := list.Items[0]
		require.Equal(t, "meshguard", rep.Metadata.Name)
		require.Equal(t, 1, rep.Summary.Fail)
		var policies []string
		for _, r := range rep.Results {
			policies = append(policies, r.Policy)
			require.Equal(t, "storm", r.Resources[0].Name)
		}
		require.Contains(t, policies, "MG101")

		require.NoError(t, json.Unmarshal([]byte(kubectl("", "get", "policyreports", "-n", "istio-system", "-o", "json")), &list))
		require.Len(t, list.Items, 1)
		require.Equal(t, "MG504", list.Items[0].Results[0].Policy, "no mesh-wide STRICT policy, reported in the root namespace")
	})

	t.Run("--write removes the report of a namespace that is now clean", func(t *testing.T) {
		kubectl("", "delete", "virtualservice", "-n", "shop", "storm")
		_, code := audit("--write")
		require.Equal(t, 0, code, "only MG504, a warning, is left")
		var list reportList
		require.NoError(t, json.Unmarshal([]byte(kubectl("", "get", "policyreports", "-n", "shop", "-o", "json")), &list))
		require.Empty(t, list.Items)
		require.NoError(t, json.Unmarshal([]byte(kubectl("", "get", "policyreports", "-n", "istio-system", "-o", "json")), &list))
		require.Len(t, list.Items, 1, "the root namespace's finding stays")
	})
}
