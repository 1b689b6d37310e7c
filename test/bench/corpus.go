// Package bench generates the corpus meshguard's lint benchmarks and the comparison with
// conftest (conftest/run.sh) run on: realistic Istio objects, as many as asked for.
package bench

import (
	"fmt"
	"os"
	"path/filepath"
)

// A realistic set: a VirtualService with two retrying routes, its DestinationRule with subsets
// and port-level settings, a namespace PeerAuthentication and a Telemetry.
const vsTemplate = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: svc-%[1]d
  namespace: ns-%[2]d
spec:
  hosts: [svc-%[1]d]
  http:
  - match:
    - headers:
        end-user: {exact: jason}
    route:
    - destination: {host: svc-%[1]d, subset: v2}
    timeout: 4s
    retries: {attempts: 3, perTryTimeout: 1s, retryOn: "gateway-error,connect-failure"}
  - route:
    - destination: {host: svc-%[1]d, subset: v1}
      weight: 90
    - destination: {host: svc-%[1]d, subset: v3}
      weight: 10
    timeout: 3s
    retries: {attempts: 2, perTryTimeout: 1s}
`

const drTemplate = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: svc-%[1]d
  namespace: ns-%[2]d
spec:
  host: svc-%[1]d
  trafficPolicy:
    connectionPool:
      http: {maxRetries: 64}
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}
    portLevelSettings:
    - port: {number: 9080}
      outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 30}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - name: v3
    labels: {version: v3}
    trafficPolicy:
      tls: {mode: ISTIO_MUTUAL}
`

const paTemplate = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: ns-%[2]d
spec:
  mtls: {mode: STRICT}
`

const telTemplate = `apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: default
  namespace: ns-%[2]d
spec:
  tracing: [{randomSamplingPercentage: 1}]
  metrics:
  - providers: [{name: prometheus}]
    overrides:
    - tagOverrides:
        request_host: {value: "has(request.host) ? request.host : 'unknown'"}
`

// Generate writes n objects into dir: per namespace one PeerAuthentication and one Telemetry,
// the rest VirtualService/DestinationRule pairs, 100 objects per file, 20 files per directory.
func Generate(dir string, n int) error {
	var buf []byte
	file := 0
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		p := filepath.Join(dir, fmt.Sprintf("team-%03d", file/20), fmt.Sprintf("objects-%04d.yaml", file))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("generate corpus: %w", err)
		}
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			return fmt.Errorf("generate corpus: %w", err)
		}
		buf, file = buf[:0], file+1
		return nil
	}
	count := 0
	for i := 0; count < n; i++ {
		ns := i / 50
		var tmpl string
		switch {
		case i%50 == 0:
			tmpl = paTemplate
		case i%50 == 1:
			tmpl = telTemplate
		case i%2 == 0:
			tmpl = vsTemplate
		default:
			tmpl = drTemplate
		}
		buf = append(buf, "---\n"...)
		buf = fmt.Appendf(buf, tmpl, i/2, ns)
		count++
		if count%100 == 0 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}
