package checks

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

	"github.com/meshguard/meshguard/internal/config"
)

// DoFunc sends one HTTP request. Tests inject one in place of the network, as Prometheus's
// notifier does with its Do field.
type DoFunc func(*http.Request) (*http.Response, error)

// RoundTrip makes a DoFunc an http.RoundTripper.
func (f DoFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Transport builds the round tripper for an endpoint: its TLS CA, then its bearer token or basic
// auth. Token and password files are read on each request, so rotated secrets are picked up
// without a restart. With do set, do replaces the network and TLS; credentials are still added.
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
