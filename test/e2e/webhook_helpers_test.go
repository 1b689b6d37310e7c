package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/client-go/rest"

	"github.com/meshguard/meshguard/test/harness"
)

// Bounds of the waits in these tests. Generous: the machines have two busy cores.
const (
	whReadyTimeout   = 90 * time.Second // process start, cache sync, first TLS handshake
	whEffectTimeout  = 30 * time.Second // a webhook configuration, a config reload or a cert rotation taking effect
	whKubectlTimeout = 60 * time.Second // one kubectl run
	whPoll           = 100 * time.Millisecond
	whName           = "validate.meshguard.io"
	whStopGrace      = 20 * time.Second
)

func meshguardBinary(t *testing.T) string {
	t.Helper()
	return harness.MeshguardBinary(t)
}

// whConfigMap is a directory laid out the way the kubelet mounts a ConfigMap, so the server's
// reload is tested against the real thing: config.yaml -> ..data/config.yaml, ..data -> a
// timestamped directory, swapped atomically on update.
type whConfigMap struct {
	t   *testing.T
	dir string
	n   int
}

func whNewConfigMap(t *testing.T, content string) *whConfigMap {
	t.Helper()
	c := &whConfigMap{t: t, dir: t.TempDir()}
	c.update(content)
	require.NoError(t, os.Symlink(filepath.Join("..data", "config.yaml"), c.path()))
	return c
}

func (c *whConfigMap) path() string { return filepath.Join(c.dir, "config.yaml") }

func (c *whConfigMap) update(content string) {
	c.t.Helper()
	c.n++
	ts := fmt.Sprintf("..2026_01_01_00_00_%02d.%d", c.n, time.Now().UnixNano())
	require.NoError(c.t, os.Mkdir(filepath.Join(c.dir, ts), 0o755))
	require.NoError(c.t, os.WriteFile(filepath.Join(c.dir, ts, "config.yaml"), []byte(content), 0o644))
	old, _ := os.Readlink(filepath.Join(c.dir, "..data"))
	tmp := filepath.Join(c.dir, "..data_tmp")
	require.NoError(c.t, os.Symlink(ts, tmp))
	require.NoError(c.t, os.Rename(tmp, filepath.Join(c.dir, "..data")))
	if old != "" {
		require.NoError(c.t, os.RemoveAll(filepath.Join(c.dir, old)))
	}
}

// whServer is a running `meshguard serve` process.
type whServer struct {
	proc                         *harness.Process
	port, metricsPort, probePort int
	certDir                      string
	caPEM                        []byte
	url                          string
	config                       *whConfigMap
	kubeconfig                   string
}

// whRegistered starts a control plane and `meshguard serve` with configYAML, registered as the
// chart registers it (failurePolicy Fail, timeoutSeconds 10).
func whRegistered(t *testing.T, configYAML string) (*harness.ControlPlane, *whServer) {
	t.Helper()
	bin := meshguardBinary(t)
	cp := harness.StartControlPlane(t)
	srv := whStartServer(t, bin, cp.KubeconfigPath(), whNewConfigMap(t, configYAML))
	cp.RegisterValidatingWebhook(t, harness.WebhookOptions{
		Name: whName, URL: srv.url, CABundle: srv.caPEM,
		FailurePolicy: admissionregistrationv1.Fail, TimeoutSeconds: 10,
	})
	return cp, srv
}

func whStartServer(t *testing.T, bin, kubeconfig string, cm *whConfigMap) *whServer {
	t.Helper()
	s := &whServer{
		port: harness.FreePort(t), metricsPort: harness.FreePort(t), probePort: harness.FreePort(t),
		certDir: t.TempDir(), config: cm, kubeconfig: kubeconfig,
	}
	s.caPEM = harness.GenerateServingCert(t, s.certDir)
	s.url = fmt.Sprintf("https://127.0.0.1:%d/validate", s.port)
	s.proc = harness.NewProcess(t, "meshguard-serve", bin, "serve",
		"--kubeconfig="+kubeconfig,
		"--cert-dir="+s.certDir,
		"--config="+cm.path(),
		"--port="+strconv.Itoa(s.port),
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", s.metricsPort),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", s.probePort),
	)
	s.proc.StopTimeout = whStopGrace
	require.NoError(t, s.proc.Start())
	s.waitReady(t)
	return s
}

func (s *whServer) waitReady(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), whReadyTimeout)
	defer cancel()
	began := time.Now()
	if err := s.proc.WaitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", s.probePort)); err != nil {
		// WaitHTTP's tail is the readiness poll's own noise; the start of the log and the
		// verbose check list say why.
		verbose := "(unreachable)"
		if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz?verbose", s.probePort)); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			verbose = string(b)
		}
		head, _ := os.ReadFile(s.proc.LogPath())
		if len(head) > 8192 {
			head = head[:8192]
		}
		t.Fatalf("meshguard serve not ready: %v\n/readyz?verbose:\n%s\nlog head:\n%s", err, verbose, head)
	}
	t.Logf("meshguard serve ready in %s (pid %d)", time.Since(began).Round(time.Millisecond), s.proc.Pid())
}

// metric returns the sum of the samples of a metric whose label set contains all of labels
// (given as `name="value"` pairs), read from the server's /metrics.
func (s *whServer) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	sum, _ := s.series(t, name, labels...)
	return sum
}

// series is metric that also counts the matching series.
func (s *whServer) series(t *testing.T, name string, labels ...string) (sum float64, n int) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", s.metricsPort))
	require.NoError(t, err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
lines:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue lines
			}
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		require.NoError(t, err, line)
		sum += v
		n++
	}
	require.NoError(t, sc.Err())
	return sum, n
}

// servedSerial is the serial of the certificate the server presents now (a new connection).
func (s *whServer) servedSerial(t *testing.T) string {
	t.Helper()
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(s.caPEM))
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", s.port),
		&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	require.NoError(t, err)
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// whWarnings collects the Warning headers the API server sends the Go client.
type whWarnings struct {
	mu   sync.Mutex
	list []string
}

func (w *whWarnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *whWarnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.list
	w.list = nil
	return out
}

// whIstioWithWarnings is an Istio clientset whose warnings are collected rather than logged.
func whIstioWithWarnings(t *testing.T, cfg *rest.Config) (istioclient.Interface, *whWarnings) {
	t.Helper()
	w := &whWarnings{}
	cfg.WarningHandler = w
	c, err := istioclient.NewForConfig(cfg)
	require.NoError(t, err)
	return c, w
}
