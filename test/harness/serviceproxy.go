// This file lets webhook configurations that name a Service, as the Helm chart's does, reach a
// server running on loopback. kube-apiserver resolves a service reference to the Service's
// ClusterIP, which nothing on a test machine routes. The API server is started with an egress
// selector that sends its "cluster" traffic (service-referenced webhooks) through an HTTP CONNECT
// proxy, and the proxy connects each routed ClusterIP to a local address. TLS is end to end: the
// API server still verifies the server's certificate against the webhook's caBundle and the
// Service's DNS name, exactly as in a cluster. URL webhooks use the "controlplane" egress,
// which stays direct.
package harness

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// serviceProxy is a minimal HTTP CONNECT proxy with a routing table keyed by ClusterIP.
type serviceProxy struct {
	ln     net.Listener
	mu     sync.Mutex
	routes map[string]string // ClusterIP -> host:port on loopback
	wg     sync.WaitGroup
}

// startServiceProxy listens on a unix socket: kube-apiserver 1.37 accepts a plaintext proxy only
// over UDS (its TCP transport dereferences the TLS config even for http:// URLs and panics).
func startServiceProxy(socket string) (*serviceProxy, error) {
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return nil, fmt.Errorf("service proxy: %w", err)
	}
	p := &serviceProxy{ln: ln, routes: map[string]string{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

func (p *serviceProxy) addr() string { return p.ln.Addr().String() }

func (p *serviceProxy) route(clusterIP, backend string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.routes[clusterIP] = backend
}

func (p *serviceProxy) close() {
	_ = p.ln.Close()
	p.wg.Wait()
}

func (p *serviceProxy) serve() {
	defer p.wg.Done()
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		go p.handle(conn)
	}
}

func (p *serviceProxy) handle(client net.Conn) {
	defer client.Close()
	_ = client.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(client)
	req, err := http.ReadRequest(br)
	if err != nil || req.Method != http.MethodConnect {
		fmt.Fprint(client, "HTTP/1.1 400 Bad Request\r\n\r\n")
		return
	}
	host, _, err := net.SplitHostPort(req.Host)
	p.mu.Lock()
	backend, ok := p.routes[host]
	p.mu.Unlock()
	if err != nil || !ok {
		fmt.Fprintf(client, "HTTP/1.1 502 Bad Gateway\r\n\r\nno route for %s\n", req.Host)
		return
	}
	upstream, err := net.DialTimeout("tcp", backend, 5*time.Second)
	if err != nil {
		fmt.Fprintf(client, "HTTP/1.1 502 Bad Gateway\r\n\r\n%v\n", err)
		return
	}
	defer upstream.Close()
	if _, err := fmt.Fprint(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	_ = client.SetDeadline(time.Time{})
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(upstream, br); closeWrite(upstream); done <- struct{}{} }()
	go func() { _, _ = io.Copy(client, upstream); closeWrite(client); done <- struct{}{} }()
	<-done
	<-done
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// writeEgressConfig writes the EgressSelectorConfiguration that sends the API server's "cluster"
// traffic through the proxy listening on the unix socket addr.
func writeEgressConfig(dir, addr string) (string, error) {
	path := filepath.Join(dir, "egress-selector.yaml")
	config := fmt.Sprintf(`apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
- name: cluster
  connection:
    proxyProtocol: HTTPConnect
    transport:
      uds:
        udsName: %s
`, addr)
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		return "", fmt.Errorf("egress selector config: %w", err)
	}
	return path, nil
}

// RouteService makes the API server's calls to the Service namespace/name (a webhook's
// clientConfig.service) arrive at backend, a host:port on loopback, whatever the service port.
// The Service must exist and have a ClusterIP.
func (cp *ControlPlane) RouteService(t testing.TB, namespace, name, backend string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc, err := cp.kube.CoreV1().Services(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("route service %s/%s: %v", namespace, name, err)
	}
	ip := svc.Spec.ClusterIP
	if ip == "" || ip == "None" {
		t.Fatalf("route service %s/%s: no ClusterIP (%q)", namespace, name, ip)
	}
	cp.proxy.route(ip, backend)
}
