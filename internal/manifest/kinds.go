package manifest

import (
	"strings"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
	telemetry "istio.io/api/telemetry/v1alpha1"
)

// The Istio kinds meshguard checks. Every served version of a kind shares one protobuf type
// (networking/v1 and v1beta1 are aliases of v1alpha3), so all versions are checked alike.
const (
	KindVirtualService     = "VirtualService"
	KindDestinationRule    = "DestinationRule"
	KindPeerAuthentication = "PeerAuthentication"
	KindTelemetry          = "Telemetry"
	// AuthorizationPolicy is read for what it asks of peers' identities (MG304).
	KindAuthorizationPolicy = "AuthorizationPolicy"
	// Service (core v1) is inventory only: its selector and ports tell which workloads are
	// behind a host; no rule reviews it and its fields are not checked.
	KindService = "Service"
	// Pods and the workload controllers' pod templates are inventory only too: their labels
	// are what PeerAuthentication selectors match, for the runtime checker reading manifests.
	KindPod         = "Pod"
	KindDeployment  = "Deployment"
	KindStatefulSet = "StatefulSet"
	KindDaemonSet   = "DaemonSet"
)

type kindInfo struct {
	group    string
	versions []string
	newSpec  func() proto.Message // nil for an inventory-only kind
}

var kinds = map[string]kindInfo{
	KindVirtualService: {"networking.istio.io", []string{"v1", "v1beta1", "v1alpha3"},
		func() proto.Message { return &networking.VirtualService{} }},
	KindDestinationRule: {"networking.istio.io", []string{"v1", "v1beta1", "v1alpha3"},
		func() proto.Message { return &networking.DestinationRule{} }},
	KindPeerAuthentication: {"security.istio.io", []string{"v1", "v1beta1"},
		func() proto.Message { return &security.PeerAuthentication{} }},
	KindAuthorizationPolicy: {"security.istio.io", []string{"v1", "v1beta1"},
		func() proto.Message { return &security.AuthorizationPolicy{} }},
	KindTelemetry: {"telemetry.istio.io", []string{"v1", "v1alpha1"},
		func() proto.Message { return &telemetry.Telemetry{} }},
	KindService:     {"", []string{"v1"}, nil},
	KindPod:         {"", []string{"v1"}, nil},
	KindDeployment:  {"apps", []string{"v1"}, nil},
	KindStatefulSet: {"apps", []string{"v1"}, nil},
	KindDaemonSet:   {"apps", []string{"v1"}, nil},
}

// Kinds lists the checked kinds in a stable order; KindService, read but never checked, is not
// one of them.
func Kinds() []string {
	return []string{KindAuthorizationPolicy, KindDestinationRule, KindPeerAuthentication, KindTelemetry, KindVirtualService}
}

// GroupVersions returns the API group ("" for the core group) and the versions served for kind.
func GroupVersions(kind string) (group string, versions []string) {
	k, ok := kinds[kind]
	if !ok {
		return "", nil
	}
	return k.group, k.versions
}

// InventoryOnly tells whether kind is read only as context for the checked kinds (a Service, a
// Pod, a workload controller).
func InventoryOnly(kind string) bool {
	k, ok := kinds[kind]
	return ok && k.newSpec == nil
}

// classify tells whether a document with apiVersion and kind is one meshguard checks. An Istio
// kind under a version Istio does not serve is reported (known=true, served=false) rather than
// skipped, so a typo in apiVersion never turns into a silent pass.
func classify(apiVersion, kind string) (known, served bool) {
	k, ok := kinds[kind]
	if !ok {
		return false, false
	}
	group, version, found := strings.Cut(apiVersion, "/")
	if !found {
		group, version = "", apiVersion // the core group: apiVersion v1
	}
	if group != k.group {
		// Another group's kind of the same name (for example a Gateway API kind) is not ours.
		return false, false
	}
	for _, v := range k.versions {
		if v == version {
			return true, true
		}
	}
	// An inventory-only kind in a version meshguard does not read is left alone, not reported.
	return k.newSpec != nil, false
}
