package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// authRecorder is an httptest Prometheus (empty answers) and Alertmanager (accepts posts) that
// records the Authorization header of every request.
type authRecorder struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []string
}

func newAuthRecorder(t *testing.T) *authRecorder {
	r := &authRecorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.seen = append(r.seen, req.Method+" "+req.URL.Path+" "+req.Header.Get("Authorization"))
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasPrefix(req.URL.Path, "/api/v1/query"):
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
		case req.URL.Path == "/api/v2/alerts" && req.Method == http.MethodPost:
			w.WriteHeader(http.StatusOK)
		default:
			http.NotFound(w, req)
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// authorizations returns the distinct Authorization headers of the requests to path.
func (r *authRecorder) authorizations(path string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	set := map[string]bool{}
	for _, s := range r.seen {
		parts := strings.SplitN(s, " ", 3)
		if parts[1] == path {
			set[parts[2]] = true
		}
	}
	var out []string
	for h := range set {
		out = append(out, h)
	}
	return out
}

func TestCredentialsFollowTheirURL(t *testing.T) {
	// The quiet STRICT namespace has no traffic, so MeshTelemetryBlind fires and is posted.
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pa.yaml"), []byte(`apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: quiet}
spec: {mtls: {mode: STRICT}}
`), 0o644))
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("from-flag\n"), 0o600))
	configWith := func(t *testing.T, promURL, amURL string) string {
		p := filepath.Join(t.TempDir(), "meshguard.yaml")
		require.NoError(t, os.WriteFile(p, []byte(fmt.Sprintf(`check:
  prometheus: {url: %s, bearerToken: config-secret}
  alertmanagers: [{url: %s, basicAuth: {username: am, password: config-secret}}]
`, promURL, amURL)), 0o600))
		return p
	}
	const elsewhere = "http://prometheus.config.invalid:9090"

	tests := []struct {
		name string
		// In cfgProm, cfgAM and args, %s is the recorder's URL and %t the token file.
		cfgProm, cfgAM string
		args           []string
		path           string
		want           string
	}{
		{name: "a Prometheus URL from the flag gets no token from the config file",
			cfgProm: elsewhere, cfgAM: "%s",
			args: []string{"check", "--once", "--prometheus-url", "%s"}, path: "/api/v1/query", want: ""},
		{name: "the config file's own Prometheus URL keeps its token",
			cfgProm: "%s", cfgAM: "%s",
			args: []string{"check", "--once"}, path: "/api/v1/query", want: "Bearer config-secret"},
		{name: "the same URL given again by flag keeps its token",
			cfgProm: "%s", cfgAM: "%s",
			args: []string{"check", "--once", "--prometheus-url", "%s/"}, path: "/api/v1/query", want: "Bearer config-secret"},
		{name: "a token file given by flag is what the flag's URL gets",
			cfgProm: elsewhere, cfgAM: "%s",
			args: []string{"check", "--once", "--prometheus-url", "%s", "--prometheus-bearer-token-file", "%t"}, path: "/api/v1/query", want: "Bearer from-flag"},
		{name: "graph with a Prometheus URL from the flag sends no token either",
			cfgProm: elsewhere, cfgAM: "%s",
			args: []string{"graph", "--prometheus-url", "%s"}, path: "/api/v1/query", want: ""},
		{name: "an Alertmanager URL from the flag gets no password from the config file",
			cfgProm: "%s", cfgAM: elsewhere,
			args: []string{"check", "--once", "--alertmanager-url", "%s"}, path: "/api/v2/alerts", want: ""},
		{name: "an Alertmanager URL from the flag gets the token file given by flag",
			cfgProm: "%s", cfgAM: elsewhere,
			args: []string{"check", "--once", "--alertmanager-url", "%s", "--alertmanager-bearer-token-file", "%t"}, path: "/api/v2/alerts", want: "Bearer from-flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newAuthRecorder(t)
			fill := func(s string) string {
				return strings.NewReplacer("%s", rec.srv.URL, "%t", tokenFile).Replace(s)
			}
			var args []string
			for _, a := range tt.args {
				args = append(args, fill(a))
			}
			args = append(args, "--config", configWith(t, fill(tt.cfgProm), fill(tt.cfgAM)), "--config-from", dir)
			_, stderr, code := run(t, "", args...)
			require.NotEqual(t, 2, code, "stderr: %s", stderr)
			require.Equal(t, []string{tt.want}, rec.authorizations(tt.path), "Authorization headers received on %s", tt.path)
		})
	}
}
