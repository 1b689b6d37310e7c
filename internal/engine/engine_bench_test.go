package engine_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/internal/config"
	"github.com/meshguard/meshguard/internal/engine"
	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/meshguard/meshguard/policies"
)

const benchObjects = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: bookinfo
spec:
  hosts: [reviews]
  http:
  - match:
    - headers:
        end-user: {exact: jason}
    route:
    - destination: {host: reviews, subset: v2}
    timeout: 4s
    retries: {attempts: 3, perTryTimeout: 1s, retryOn: "gateway-error,connect-failure"}
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 90
    - destination: {host: reviews, subset: v3}
      weight: 10
    timeout: 3s
    retries: {attempts: 2, perTryTimeout: 1s}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: bookinfo
spec:
  host: reviews
  trafficPolicy:
    connectionPool:
      http: {maxRetries: 64}
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls: {mode: STRICT}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: default
  namespace: bookinfo
spec:
  tracing: [{randomSamplingPercentage: 1}]
`

// BenchmarkReview evaluates the full built-in bundle (CEL and Rego, cross-object rules on a
// complete inventory) on one object of each kind.
func BenchmarkReview(b *testing.B) {
	eng, err := policies.Engine(context.Background(), config.Default(), nil, nil)
	require.NoError(b, err)
	objs, problems := manifest.Parse("bench.yaml", []byte(benchObjects))
	require.Empty(b, problems)
	inv := engine.NewIndex(objs, true, "istio-system", "cluster.local")
	for _, o := range objs {
		b.Run(o.Kind, func(b *testing.B) {
			ctx := context.Background()
			for b.Loop() {
				fs, err := eng.Review(ctx, o, inv)
				if err != nil || len(fs) != 0 {
					b.Fatalf("%v %v", err, fs)
				}
			}
		})
	}
}
