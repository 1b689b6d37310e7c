package mesh

import "github.com/meshguard/meshguard/internal/manifest"

// Istio's retry policy for an HTTP route that has no `retries` (DefaultPolicy in
// pilot/pkg/networking/core/route/retry/retry.go), unless the mesh config's
// defaultHttpRetryPolicy says otherwise.
const (
	DefaultRetryAttempts = 2
	DefaultRetryOn       = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
)

// Retry is the retry policy a route really has.
type Retry struct {
	Attempts      int64
	PerTryTimeout string
	RetryOn       string
	// Default is set when nobody wrote `retries` and these are Istio's defaults.
	Default bool
}

// RetryPolicy returns the retries of a VirtualService HTTP route as Istio's ConvertPolicy
// configures them: Istio's default when `retries` is absent, none when attempts is 0 or unset,
// otherwise what is written (retryOn defaults to Istio's list).
func RetryPolicy(route map[string]any) Retry {
	rt, ok := route["retries"].(map[string]any)
	if !ok {
		return Retry{Attempts: DefaultRetryAttempts, RetryOn: DefaultRetryOn, Default: true}
	}
	r := Retry{Attempts: manifest.Int(rt["attempts"])}
	if r.Attempts <= 0 {
		return Retry{}
	}
	r.PerTryTimeout, _ = rt["perTryTimeout"].(string)
	r.RetryOn, _ = rt["retryOn"].(string)
	if r.RetryOn == "" {
		r.RetryOn = DefaultRetryOn
	}
	return r
}
