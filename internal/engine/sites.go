package engine

import (
	"github.com/meshguard/meshguard/internal/manifest"
)

// Site is one place a setting can live inside an object, with its field path.
type Site struct {
	Path  string
	Value map[string]any
}

// Sites lists the places a scope looks at. For a DestinationRule that is the top-level traffic
// policy, its port-level settings, and the same for each subset; for a VirtualService each
// spec.http[] route. Walking here once, in Go, keeps every rule from re-implementing the walk.
func Sites(o *manifest.Object, scope Scope) []Site {
	spec := o.SpecMap()
	switch scope {
	case ScopeHTTPRoute:
		routes, _ := spec["http"].([]any)
		sites := make([]Site, 0, len(routes))
		for i, r := range routes {
			if m, ok := r.(map[string]any); ok {
				sites = append(sites, Site{Path: manifest.JoinIndex("spec.http", i), Value: m})
			}
		}
		return sites
	case ScopeTrafficPolicy:
		var sites []Site
		sites = trafficPolicySites(sites, spec["trafficPolicy"], "spec.trafficPolicy")
		subsets, _ := spec["subsets"].([]any)
		for i, s := range subsets {
			if m, ok := s.(map[string]any); ok {
				sites = trafficPolicySites(sites, m["trafficPolicy"], manifest.JoinIndex("spec.subsets", i)+".trafficPolicy")
			}
		}
		return sites
	}
	return []Site{{Path: "", Value: o.Raw}}
}

func trafficPolicySites(sites []Site, tp any, path string) []Site {
	m, ok := tp.(map[string]any)
	if !ok {
		return sites
	}
	sites = append(sites, Site{Path: path, Value: m})
	pls, _ := m["portLevelSettings"].([]any)
	for i, p := range pls {
		if pm, ok := p.(map[string]any); ok {
			sites = append(sites, Site{Path: manifest.JoinIndex(path+".portLevelSettings", i), Value: pm})
		}
	}
	return sites
}
