package lint

import "github.com/meshguard/meshguard/internal/manifest"

// Place puts objects that name no namespace into namespace, as `kubectl apply -n namespace`
// would, before anything compares them: a short host then expands where the object will live,
// and policies compete with their real neighbours. It runs once, right after loading.
func Place(objects []*manifest.Object, namespace string) {
	for _, o := range objects {
		if o.Namespace != "" {
			continue
		}
		o.Namespace = namespace
		if md, ok := o.Raw["metadata"].(map[string]any); ok {
			md["namespace"] = namespace
		} else {
			o.Raw["metadata"] = map[string]any{"namespace": namespace}
		}
	}
}
