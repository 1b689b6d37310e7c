package e2e

// The checker against multi-tenant backends: Mimir and Cortex answer only requests that carry
// the tenant's X-Scope-OrgID, for queries and for their Alertmanager alike.

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/checks"
	"github.com/meshguard/meshguard/test/meshsim"
)

// tenantGate stands in front of a real Prometheus or Alertmanager as Mimir's gateway does: a
// request without the tenant's X-Scope-OrgID is refused with 401 ("no org id"), the others pass.
type tenantGate struct {
	srv    *httptest.Server
	tenant string

	mu       sync.Mutex
	passed   int
	refused  []string // method and path of each refused request
	tenantOf map[string]bool
}

func startTenantGate(t *testing.T, backend, tenant string) *tenantGate {
	t.Helper()
	u, err := url.Parse(backend)
	require.NoError(t, err)
	g := &tenantGate{tenant: tenant, tenantOf: map[string]bool{}}
	proxy := httputil.NewSingleHostReverseProxy(u)
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		org := r.Header.Get("X-Scope-OrgID")
		if org != g.tenant {
			g.refused = append(g.refused, r.Method+" "+r.URL.Path)
			g.mu.Unlock()
			http.Error(w, "no org id", http.StatusUnauthorized)
			return
		}
		g.passed++
		g.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *tenantGate) counts() (passed int, refused []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.passed, append([]string(nil), g.refused...)
}

// TestCheckTenantHeaders runs `check --once` against Prometheus and two Alertmanagers behind
// tenant gates: every query, read-back and post carries the tenant from the config (a header
// file for Prometheus, a header for the Alertmanagers), and the tenant appears in no output.
func TestCheckTenantHeaders(t *testing.T) {
	bin := meshguardBinary(t)
	plain := meshsim.Flow{Source: checkLegacy, Destination: meshsim.Workload{Name: "api-v1", Namespace: "strict", App: "api"}, Rate: 5, Plaintext: true}
	st := checkStartStack(t, 2, plain)
	checkAwaitData(t, st.prom, `rate(istio_requests_total{destination_workload="api-v1"}[10s]) > 0`)
	const promTenant, amTenant = "tenant-7f3a9c-prom", "tenant-51d2e8-am"
	prom := startTenantGate(t, st.prom.URL(), promTenant)
	ams := []*tenantGate{startTenantGate(t, st.ams[0].URL(), amTenant), startTenantGate(t, st.ams[1].URL(), amTenant)}

	dir := t.TempDir()
	orgFile := filepath.Join(dir, "org-id")
	require.NoError(t, os.WriteFile(orgFile, []byte(promTenant+"\n"), 0o600))
	cfg := filepath.Join(dir, "meshguard.yaml")
	writeConfig := func(promHeaders string) {
		require.NoError(t, os.WriteFile(cfg, fmt.Appendf(nil, `check:
  prometheus:
    url: %s
    %s
  alertmanagers:
    - url: %s
      headers: {X-Scope-OrgID: %s}
    - url: %s
      headers: {X-Scope-OrgID: %s}
`, prom.srv.URL, promHeaders, ams[0].srv.URL, amTenant, ams[1].srv.URL, amTenant), 0o600))
	}
	writeConfig("headerFiles: {X-Scope-OrgID: " + orgFile + "}")
	args := []string{"check", "--once", "--config", cfg, "--config-from", checkConfigDir(t, checkMeshStrictPA),
		"--window", checkWindow.String(), "--checker-namespace", haNamespace, "--log-level", "debug"}

	out, stderr, code := checkRunCLI(t, bin, append(args, "-o", "json")...)
	require.Equal(t, 1, code, stderr)
	require.Contains(t, out, checks.AlertPlaintextTraffic)
	checkAwaitActive(t, st.ams, checkLabels("alertname", checks.AlertPlaintextTraffic, "namespace", "strict"), checkFireWait)
	for _, g := range append([]*tenantGate{prom}, ams...) {
		passed, refused := g.counts()
		require.Positive(t, passed, g.srv.URL)
		require.Empty(t, refused, "%s: every request carries the tenant", g.srv.URL)
	}
	for _, s := range []string{out, stderr} {
		require.NotContains(t, s, promTenant)
		require.NotContains(t, s, amTenant)
	}

	t.Run("a wrong tenant is refused, and the error does not show the header's value", func(t *testing.T) {
		require.NoError(t, os.WriteFile(orgFile, []byte("tenant-other-2b4d"), 0o600))
		out, stderr, code := checkRunCLI(t, bin, args...)
		require.Equal(t, 2, code, stderr)
		require.Contains(t, stderr, "401")
		_, refused := prom.counts()
		require.NotEmpty(t, refused, "the new file is read on the next request")
		require.NotContains(t, out+stderr, "tenant-other-2b4d")
		require.NotContains(t, out+stderr, amTenant)
		for _, am := range st.ams {
			require.Len(t, checkActiveAlerts(t, am, checkLabels("alertname", checks.AlertCheckerDegraded)), 1,
				"the Alertmanagers' tenant still works: MeshCheckerDegraded is raised")
		}
	})

	t.Run("a header the client sets itself is refused as a usage error", func(t *testing.T) {
		writeConfig("headers: {Authorization: Bearer s3cr3t-9e1}")
		_, stderr, code := checkRunCLI(t, bin, args...)
		require.Equal(t, 2, code, stderr)
		require.Contains(t, stderr, "header Authorization is set by the client")
		require.False(t, strings.Contains(stderr, "s3cr3t-9e1"))
	})
}
