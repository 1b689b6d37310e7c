package endpoint

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/internal/config"
)

// recordDo answers 200 to every request and keeps its headers.
func recordDo(got *[]http.Header) DoFunc {
	return func(r *http.Request) (*http.Response, error) {
		*got = append(*got, r.Header.Clone())
		return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader("{}")), Request: r}, nil
	}
}

func TestTransportHeaders(t *testing.T) {
	dir := t.TempDir()
	orgFile := filepath.Join(dir, "org")
	require.NoError(t, os.WriteFile(orgFile, []byte("tenant-a\n"), 0o600))
	var got []http.Header
	rt, err := Transport(config.Endpoint{URL: "http://mimir:8080/prometheus", BearerToken: "tok",
		Headers:     map[string]string{"x-extra": "static"},
		HeaderFiles: map[string]string{"X-Scope-OrgID": orgFile}}, recordDo(&got))
	require.NoError(t, err)

	send := func() {
		req, err := http.NewRequest(http.MethodGet, "http://mimir:8080/prometheus/api/v1/query", nil)
		require.NoError(t, err)
		resp, err := rt.RoundTrip(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Empty(t, req.Header, "the caller's request is not modified")
	}
	send()
	require.Equal(t, "tenant-a", got[0].Get("X-Scope-OrgID"), "a header file's value, trimmed")
	require.Equal(t, "static", got[0].Get("X-Extra"))
	require.Equal(t, "Bearer tok", got[0].Get("Authorization"), "headers and credentials together")

	require.NoError(t, os.WriteFile(orgFile, []byte("tenant-b"), 0o600))
	send()
	require.Equal(t, "tenant-b", got[1].Get("X-Scope-OrgID"), "a rotated file is read again")

	require.NoError(t, os.WriteFile(orgFile, nil, 0o600))
	req, err := http.NewRequest(http.MethodGet, "http://mimir:8080/", nil)
	require.NoError(t, err)
	_, err = rt.RoundTrip(req)
	require.ErrorContains(t, err, "X-Scope-Orgid", "an empty header file fails the request, naming the header")
	require.Len(t, got, 2, "nothing is sent without the header")
}

func TestTransportHeadersRefused(t *testing.T) {
	for name, ep := range map[string]config.Endpoint{
		"is set by the client":  {Headers: map[string]string{"authorization": "Bearer s3cret"}},
		"not a valid header":    {Headers: map[string]string{"X Scope": "s3cret"}},
		"both headers and head": {Headers: map[string]string{"X-Scope-OrgID": "s3cret"}, HeaderFiles: map[string]string{"X-Scope-OrgID": "/f"}},
	} {
		t.Run(name, func(t *testing.T) {
			ep.URL = "http://mimir:8080"
			_, err := Transport(ep, nil)
			require.ErrorContains(t, err, name)
			require.NotContains(t, err.Error(), "s3cret", "a header's value never appears in an error")
		})
	}
}
