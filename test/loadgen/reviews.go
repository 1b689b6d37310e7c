// Package loadgen drives an admission webhook the way kube-apiserver does: AdmissionReview v1
// requests over HTTPS (HTTP/2, one multiplexed connection), at fixed rates or as fast as the
// server answers, and measures latency percentiles and the server's CPU time per review. It
// serves both `meshguard serve` and the allow-everything floor server (floor/), so the two are
// measured with the same generator, bodies and machine.
package loadgen

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// Namespaces is how many application namespaces the generated objects spread over.
const Namespaces = 40

// Objects returns the stored configuration the reviews are made against: per namespace a
// namespace-wide STRICT PeerAuthentication, a Telemetry, and for each of three services a
// DestinationRule (outlier detection, retry budget, subsets) and a VirtualService routing to
// it; plus the mesh-wide STRICT PeerAuthentication. Every object is clean, so the inventory
// rules have something real to compare against.
func Objects() []map[string]any {
	objs := []map[string]any{peerAuthentication("istio-system", "default", "STRICT", nil)}
	for n := range Namespaces {
		ns := namespace(n)
		objs = append(objs, peerAuthentication(ns, "default", "STRICT", nil), telemetry(ns, "default", 1))
		for _, svc := range services() {
			objs = append(objs, destinationRule(ns, svc, svc, 50), virtualService(ns, svc, svc, 2, "3s"))
		}
	}
	return objs
}

// services are the services of each namespace.
func services() []string { return []string{"cart", "checkout", "catalog"} }

func namespace(n int) string { return fmt.Sprintf("shop-%02d", n) }

// Reviews returns n AdmissionReview bodies in the mix an API server of a busy mesh sends:
// mostly updates and creates of VirtualServices and DestinationRules, fewer PeerAuthentications
// and Telemetries, a few deletes; about one in ten breaks a rule (denied) and one in ten only
// draws warnings. Objects carry what kubectl and the API server add (managedFields,
// last-applied-configuration, labels), so bodies have realistic sizes (2 to 6 KiB). The same
// seed gives the same bodies.
func Reviews(n int, seed uint64) ([][]byte, error) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([][]byte, 0, n)
	for i := range n {
		ns := namespace(rng.IntN(Namespaces))
		svc := services()[rng.IntN(3)]
		var obj map[string]any
		var kind metav1.GroupVersionKind
		var resource string
		quality := rng.IntN(10) // 0: breaks a rule, 1: warnings only, else clean
		switch k := rng.IntN(100); {
		case k < 45:
			attempts, timeout := 2, "3s"
			switch quality {
			case 0:
				attempts = 10 // MG101
			case 1:
				timeout = "" // MG103
			}
			obj = virtualService(ns, svc, svc, attempts, timeout)
			kind, resource = metav1.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "VirtualService"}, "virtualservices"
		case k < 80:
			eject := 50
			if quality == 0 {
				eject = 100 // MG201
			}
			obj = destinationRule(ns, svc, svc, eject)
			if quality == 1 {
				tp := obj["spec"].(map[string]any)["trafficPolicy"].(map[string]any)
				tp["outlierDetection"].(map[string]any)["consecutive5xxErrors"] = 1 // MG202
			}
			kind, resource = metav1.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "DestinationRule"}, "destinationrules"
		case k < 90:
			mode := "STRICT"
			if quality == 0 {
				mode = "PERMISSIVE" // MG301
			}
			obj = peerAuthentication(ns, "default", mode, nil)
			kind, resource = metav1.GroupVersionKind{Group: "security.istio.io", Version: "v1", Kind: "PeerAuthentication"}, "peerauthentications"
		default:
			pct := 1.0
			if quality == 1 {
				pct = 20 // MG402 only applies mesh-wide; a namespace Telemetry at 20% is clean
			}
			obj = telemetry(ns, "default", pct)
			kind, resource = metav1.GroupVersionKind{Group: "telemetry.istio.io", Version: "v1", Kind: "Telemetry"}, "telemetries"
		}
		op := admissionv1.Update
		switch r := rng.IntN(100); {
		case r < 30:
			op = admissionv1.Create
		case r < 35:
			op = admissionv1.Delete
		}
		body, err := review(i, op, kind, resource, obj)
		if err != nil {
			return nil, err
		}
		out = append(out, body)
	}
	return out, nil
}

// review wraps obj in an AdmissionReview as kube-apiserver writes it.
func review(i int, op admissionv1.Operation, kind metav1.GroupVersionKind, resource string, obj map[string]any) ([]byte, error) {
	meta := obj["metadata"].(map[string]any)
	decorate(obj, i)
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode object: %w", err)
	}
	req := &admissionv1.AdmissionRequest{
		UID:             types.UID(fmt.Sprintf("00000000-0000-4000-8000-%012d", i)),
		Kind:            kind,
		Resource:        metav1.GroupVersionResource{Group: kind.Group, Version: kind.Version, Resource: resource},
		RequestKind:     &kind,
		RequestResource: &metav1.GroupVersionResource{Group: kind.Group, Version: kind.Version, Resource: resource},
		Name:            meta["name"].(string),
		Namespace:       meta["namespace"].(string),
		Operation:       op,
		UserInfo:        authenticationv1.UserInfo{Username: "system:serviceaccount:argocd:argocd-application-controller", UID: "6a0c5a8e-0d8e-4b8e-9a43-4f7c0b0e2b11", Groups: []string{"system:serviceaccounts", "system:serviceaccounts:argocd", "system:authenticated"}},
		DryRun:          new(bool),
		Options:         runtime.RawExtension{Raw: []byte(`{"kind":"UpdateOptions","apiVersion":"meta.k8s.io/v1","fieldManager":"argocd-controller"}`)},
	}
	switch op {
	case admissionv1.Create:
		req.Object = runtime.RawExtension{Raw: raw}
		req.Options = runtime.RawExtension{Raw: []byte(`{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1","fieldManager":"argocd-controller"}`)}
	case admissionv1.Update:
		req.Object = runtime.RawExtension{Raw: raw}
		req.OldObject = runtime.RawExtension{Raw: raw}
	case admissionv1.Delete:
		req.OldObject = runtime.RawExtension{Raw: raw}
		req.Options = runtime.RawExtension{Raw: []byte(`{"kind":"DeleteOptions","apiVersion":"meta.k8s.io/v1","propagationPolicy":"Background"}`)}
	}
	b, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  req,
	})
	if err != nil {
		return nil, fmt.Errorf("encode review: %w", err)
	}
	return b, nil
}

// decorate adds what a stored object carries besides its spec.
func decorate(obj map[string]any, i int) {
	meta := obj["metadata"].(map[string]any)
	spec, _ := json.Marshal(obj["spec"])
	applied := fmt.Sprintf(`{"apiVersion":%q,"kind":%q,"metadata":{"annotations":{},"labels":{"app.kubernetes.io/part-of":"shop"},"name":%q,"namespace":%q},"spec":%s}`,
		obj["apiVersion"], obj["kind"], meta["name"], meta["namespace"], spec)
	meta["uid"] = fmt.Sprintf("5f0c1e4a-0000-4000-8000-%012d", i)
	meta["resourceVersion"] = fmt.Sprint(100000 + i)
	meta["generation"] = 3
	meta["creationTimestamp"] = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC).Format(time.RFC3339)
	meta["labels"] = map[string]any{"app.kubernetes.io/part-of": "shop", "app.kubernetes.io/managed-by": "argocd", "argocd.argoproj.io/instance": "shop"}
	annotations, _ := meta["annotations"].(map[string]any)
	if annotations == nil {
		annotations = map[string]any{}
	}
	annotations["kubectl.kubernetes.io/last-applied-configuration"] = applied + "\n"
	meta["annotations"] = annotations
	meta["managedFields"] = []any{map[string]any{
		"manager": "argocd-controller", "operation": "Apply", "apiVersion": obj["apiVersion"],
		"time": "2026-03-01T10:00:00Z", "fieldsType": "FieldsV1",
		"fieldsV1": map[string]any{"f:metadata": map[string]any{"f:labels": map[string]any{".": map[string]any{}, "f:app.kubernetes.io/part-of": map[string]any{}}}, "f:spec": map[string]any{".": map[string]any{}}},
	}}
}

func virtualService(ns, name, host string, attempts int, timeout string) map[string]any {
	route := map[string]any{
		"match": []any{map[string]any{"uri": map[string]any{"prefix": "/api/"}}},
		"route": []any{
			map[string]any{"destination": map[string]any{"host": host, "subset": "v1"}, "weight": 90},
			map[string]any{"destination": map[string]any{"host": host, "subset": "v2"}, "weight": 10},
		},
		"retries": map[string]any{"attempts": attempts, "perTryTimeout": "1s", "retryOn": "connect-failure,refused-stream,reset-before-request"},
	}
	if timeout != "" {
		route["timeout"] = timeout
	}
	fallback := map[string]any{
		"route":   []any{map[string]any{"destination": map[string]any{"host": host, "subset": "v1"}}},
		"timeout": "5s",
	}
	return map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec":     map[string]any{"hosts": []any{host}, "http": []any{route, fallback}},
	}
}

func destinationRule(ns, name, host string, maxEject int) map[string]any {
	return map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{
			"host": host,
			"trafficPolicy": map[string]any{
				"connectionPool":   map[string]any{"tcp": map[string]any{"maxConnections": 100}, "http": map[string]any{"http2MaxRequests": 1000, "maxRetries": 16}},
				"outlierDetection": map[string]any{"consecutive5xxErrors": 5, "interval": "10s", "baseEjectionTime": "30s", "maxEjectionPercent": maxEject},
			},
			"subsets": []any{
				map[string]any{"name": "v1", "labels": map[string]any{"version": "v1"}},
				map[string]any{"name": "v2", "labels": map[string]any{"version": "v2"}},
			},
		},
	}
}

func peerAuthentication(ns, name, mode string, selector map[string]any) map[string]any {
	spec := map[string]any{"mtls": map[string]any{"mode": mode}}
	if selector != nil {
		spec["selector"] = map[string]any{"matchLabels": selector}
	}
	return map[string]any{
		"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec":     spec,
	}
}

func telemetry(ns, name string, pct float64) map[string]any {
	return map[string]any{
		"apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{
			"tracing":       []any{map[string]any{"randomSamplingPercentage": pct}},
			"accessLogging": []any{map[string]any{"providers": []any{map[string]any{"name": "envoy"}}, "filter": map[string]any{"expression": "response.code >= 500"}}},
		},
	}
}
