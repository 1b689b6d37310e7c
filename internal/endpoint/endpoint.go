// Package endpoint builds the HTTP clients of the endpoints meshguard check talks to
// (Prometheus, Alertmanagers): their TLS CA, credentials and extra headers, from the config.
package endpoint

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/meshguard/meshguard/internal/config"
)

// DoFunc sends one HTTP request. Tests inject one in place of the network, as Prometheus's
// notifier does with its Do field.
type DoFunc func(*http.Request) (*http.Response, error)

// RoundTrip makes a DoFunc an http.RoundTripper.
func (f DoFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Transport builds the round tripper for an endpoint: its TLS CA, then its bearer token or basic
// auth, then its extra headers. Token, password and header files are read on each request, so
// rotated secrets are picked up without a restart. With do set, do replaces the network and TLS; credentials are still added.
//
// (prometheus/common/config does the same but pulls in three more modules.)
func Transport(ep config.Endpoint, do DoFunc) (http.RoundTripper, error) {
	u, err := url.Parse(ep.URL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("endpoint URL %q: want http(s)://host:port[/prefix]", ep.URL)
	}
	if ep.BearerToken != "" && ep.BearerTokenFile != "" {
		return nil, fmt.Errorf("endpoint %s: set bearerToken or bearerTokenFile, not both", ep.URL)
	}
	if ep.BasicAuth != nil && (ep.BearerToken != "" || ep.BearerTokenFile != "") {
		return nil, fmt.Errorf("endpoint %s: set basic auth or a bearer token, not both", ep.URL)
	}
	var base http.RoundTripper = do
	if do == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = time.Minute
		if ep.TLS != nil {
			tc := &tls.Config{InsecureSkipVerify: ep.TLS.InsecureSkipVerify} //nolint:gosec // the user's explicit choice
			if ep.TLS.CAFile != "" {
				pem, err := os.ReadFile(ep.TLS.CAFile)
				if err != nil {
					return nil, fmt.Errorf("endpoint %s: read CA file: %w", ep.URL, err)
				}
				pool := x509.NewCertPool()
				if !pool.AppendCertsFromPEM(pem) {
					return nil, fmt.Errorf("endpoint %s: CA file %s holds no PEM certificate", ep.URL, ep.TLS.CAFile)
				}
				tc.RootCAs = pool
			}
			t.TLSClientConfig = tc
		}
		base = t
	}
	if len(ep.Headers) > 0 || len(ep.HeaderFiles) > 0 {
		h, err := newHeaderRoundTripper(ep, base)
		if err != nil {
			return nil, err
		}
		base = h
	}
	switch {
	case ep.BearerToken != "" || ep.BearerTokenFile != "":
		return &authRoundTripper{next: base, header: func() (string, error) {
			tok, err := secret(ep.BearerToken, ep.BearerTokenFile)
			return "Bearer " + tok, err
		}}, nil
	case ep.BasicAuth != nil:
		ba := *ep.BasicAuth
		if ba.Password != "" && ba.PasswordFile != "" {
			return nil, fmt.Errorf("endpoint %s: set basicAuth.password or passwordFile, not both", ep.URL)
		}
		return &authRoundTripper{next: base, basic: func() (string, string, error) {
			pw, err := secret(ba.Password, ba.PasswordFile)
			return ba.Username, pw, err
		}}, nil
	}
	return base, nil
}

// secret returns value, or the trimmed content of file.
func secret(value, file string) (string, error) {
	if file == "" {
		return value, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read secret file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", errors.New("secret file " + file + " is empty")
	}
	return s, nil
}

// authRoundTripper adds credentials to each request (on a clone: a RoundTripper must not
// modify its request).
type authRoundTripper struct {
	next   http.RoundTripper
	header func() (string, error)
	basic  func() (user, password string, err error)
}

func (a *authRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if a.header != nil {
		h, err := a.header()
		if err != nil {
			return nil, err
		}
		r.Header.Set("Authorization", h)
	}
	if a.basic != nil {
		u, p, err := a.basic()
		if err != nil {
			return nil, err
		}
		r.SetBasicAuth(u, p)
	}
	return a.next.RoundTrip(r)
}

// reservedHeaders are set by the client or by the endpoint's own settings; Prometheus' HTTP
// client configuration refuses them in its headers for the same reason.
var reservedHeaders = map[string]bool{
	"Authorization": true, "Host": true, "Content-Length": true, "Content-Type": true, "Content-Encoding": true,
	"Accept-Encoding": true, "Connection": true, "Transfer-Encoding": true, "Upgrade": true, "User-Agent": true,
	"Proxy-Authorization": true,
}

// headerRoundTripper adds an endpoint's extra headers (a Mimir or Cortex tenant's X-Scope-OrgID).
type headerRoundTripper struct {
	next   http.RoundTripper
	static http.Header
	files  map[string]string // canonical header name: file
}

func newHeaderRoundTripper(ep config.Endpoint, next http.RoundTripper) (*headerRoundTripper, error) {
	h := &headerRoundTripper{next: next, static: http.Header{}, files: map[string]string{}}
	check := func(name string) (string, error) {
		canon := http.CanonicalHeaderKey(name)
		switch {
		case !httpguts.ValidHeaderFieldName(name):
			return "", fmt.Errorf("endpoint %s: %q is not a valid header name", ep.URL, name)
		case reservedHeaders[canon]:
			return "", fmt.Errorf("endpoint %s: header %s is set by the client or by bearerToken/basicAuth, not by headers", ep.URL, canon)
		}
		if _, ok := ep.Headers[name]; ok && ep.HeaderFiles[name] != "" {
			return "", fmt.Errorf("endpoint %s: header %s is in both headers and headerFiles", ep.URL, canon)
		}
		return canon, nil
	}
	for name, value := range ep.Headers {
		canon, err := check(name)
		if err != nil {
			return nil, err
		}
		h.static.Set(canon, value)
	}
	for name, file := range ep.HeaderFiles {
		canon, err := check(name)
		if err != nil {
			return nil, err
		}
		h.files[canon] = file
	}
	return h, nil
}

func (h *headerRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h.static {
		r.Header[k] = v
	}
	for k, file := range h.files {
		v, err := secret("", file)
		if err != nil {
			return nil, fmt.Errorf("header %s: %w", k, err)
		}
		r.Header.Set(k, v)
	}
	return h.next.RoundTrip(r)
}
