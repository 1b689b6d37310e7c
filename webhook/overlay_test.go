package webhook

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/internal/engine"
	"github.com/meshguard/meshguard/internal/manifest"
	"github.com/meshguard/meshguard/internal/mesh"
)

const overlayInventory = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system, creationTimestamp: "2026-01-01T00:00:00Z"}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: relaxed, namespace: shop, creationTimestamp: "2026-01-02T00:00:00Z"}
spec: {mtls: {mode: PERMISSIVE}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cart, namespace: shop}
spec:
  host: cart
  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 5}}
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cart-extra, namespace: shop}
spec:
  host: cart.shop.svc.cluster.local
  subsets: [{name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cart, namespace: shop}
spec:
  hosts: [cart]
  http:
  - route: [{destination: {host: cart, subset: v2}}]
    timeout: 2s
    retries: {attempts: 2, perTryTimeout: 500ms}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: default, namespace: shop}
spec: {tracing: [{randomSamplingPercentage: 1}]}
`

// Candidates for the object under review: new ones, and new versions of stored ones (a
// DestinationRule that moves to another host, a PeerAuthentication that turns STRICT).
const overlayCandidates = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cart, namespace: shop}
spec:
  host: payments
  trafficPolicy: {tls: {mode: DISABLE}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: new-rule, namespace: shop}
spec:
  host: cart
  trafficPolicy: {connectionPool: {http: {maxRetries: 3}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: mesh-default, namespace: istio-system}
spec:
  host: "*.local"
  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 5}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: relaxed, namespace: shop, creationTimestamp: "2026-01-02T00:00:00Z"}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system, creationTimestamp: "2026-01-01T00:00:00Z"}
spec: {mtls: {mode: PERMISSIVE}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: second, namespace: shop}
spec: {mtls: {mode: STRICT}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cart, namespace: shop}
spec:
  hosts: [cart]
  http:
  - route: [{destination: {host: cart, subset: v3}}]
    retries: {attempts: 2}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh, namespace: istio-system}
spec: {tracing: [{randomSamplingPercentage: 50}]}
`

// reindex is the overlay done the slow, obviously right way: a new index of base with obj put in
// place of its stored version (or removed). newOverlay must answer exactly as it does.
func reindex(base engine.Inventory, obj *manifest.Object, remove bool, rootNamespace, domain string) engine.Inventory {
	var objects []*manifest.Object
	for _, kind := range manifest.Kinds() {
		for _, o := range base.List(kind, "") {
			if o.Key() != obj.Key() {
				objects = append(objects, o)
			}
		}
	}
	if !remove {
		objects = append(objects, obj)
	}
	return engine.NewIndex(objects, base.Complete(), rootNamespace, domain)
}

// The cheap overlay must answer exactly what a full re-index answers, for every question the
// engine asks and for whole reviews.
func TestOverlayAnswersLikeAFullReindex(t *testing.T) {
	const root, domain = "istio-system", "cluster.local"
	stored, problems := manifest.Parse("inventory.yaml", []byte(overlayInventory))
	require.Empty(t, problems)
	candidates, problems := manifest.Parse("candidates.yaml", []byte(overlayCandidates))
	require.Empty(t, problems)
	base := engine.NewIndex(stored, true, root, domain)
	eng := testRuleSet(t, "").Engine

	namespaces := []string{"", "shop", "istio-system", "other"}
	fqdns := []string{"cart.shop.svc.cluster.local", "payments.shop.svc.cluster.local", "nothing.svc.cluster.local"}
	for _, obj := range append(candidates, stored...) {
		for _, remove := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s removed=%v", obj.Ref(), remove), func(t *testing.T) {
				want := reindex(base, obj, remove, root, domain)
				got := newOverlay(base, obj, remove)
				require.Equal(t, want.Complete(), got.Complete())
				for _, kind := range manifest.Kinds() {
					for _, ns := range namespaces {
						require.Equal(t, keys(want.List(kind, ns)), keys(got.List(kind, ns)), "List(%s, %q)", kind, ns)
					}
				}
				for _, fqdn := range fqdns {
					for _, caller := range namespaces[1:] {
						require.Equal(t, drKeys(want.Mesh().DestinationRule(fqdn, caller)), drKeys(got.Mesh().DestinationRule(fqdn, caller)), "DestinationRule(%s, %s)", fqdn, caller)
					}
				}
				for _, ns := range namespaces[1:] {
					require.Equal(t, effective(want.Mesh().Resolver().Namespace(ns)), effective(got.Mesh().Resolver().Namespace(ns)), "Resolver().Namespace(%s)", ns)
				}
				if remove {
					return
				}
				ctx := context.Background()
				wantF, err := eng.Review(ctx, obj, want)
				require.NoError(t, err)
				gotF, err := eng.Review(ctx, obj, got)
				require.NoError(t, err)
				require.Equal(t, wantF, gotF)
				wantI, err := eng.ReviewInventory(ctx, want)
				require.NoError(t, err)
				gotI, err := eng.ReviewInventory(ctx, got)
				require.NoError(t, err)
				require.Equal(t, wantI, gotI)
			})
		}
	}
}

func TestOverlayNeverChangesTheSharedIndex(t *testing.T) {
	stored, _ := manifest.Parse("inventory.yaml", []byte(overlayInventory))
	base := engine.NewIndex(stored, true, "istio-system", "cluster.local")
	before := keys(base.List(manifest.KindDestinationRule, "shop"))
	candidates, _ := manifest.Parse("candidates.yaml", []byte(overlayCandidates))
	beforeDR := drKeys(base.Mesh().DestinationRule("cart.shop.svc.cluster.local", "shop"))
	o := newOverlay(base, candidates[1], false)
	_ = o.List(manifest.KindDestinationRule, "shop")
	_ = o.Mesh().DestinationRule("cart.shop.svc.cluster.local", "shop")
	require.Equal(t, before, keys(base.List(manifest.KindDestinationRule, "shop")))
	require.Equal(t, beforeDR, drKeys(base.Mesh().DestinationRule("cart.shop.svc.cluster.local", "shop")))
}

func keys(objs []*manifest.Object) []string {
	out := make([]string, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.Key())
	}
	return out
}

func drKeys(d *mesh.DestinationRule) []string {
	if d == nil {
		return nil
	}
	return d.Names()
}

func effective(e mesh.Effective) string {
	p := "-"
	if e.Policy != nil {
		p = e.Policy.Namespace + "/" + e.Policy.Name
	}
	return fmt.Sprintf("%s %s %s %v", e.Mode, e.Level, p, e.Ports)
}
