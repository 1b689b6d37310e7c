package cluster

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/metadata"

	"github.com/meshguard/meshguard/internal/mesh"
)

// Pods reads the running pods of every namespace as metadata only (labels, annotations and
// owner, never specs), a page at a time, and hands each to add, so what is kept of a big
// cluster is up to add. Pods that have not started or have finished are left out: they serve
// no traffic.
func Pods(ctx context.Context, meta metadata.Interface, add func(mesh.Pod)) error {
	res := meta.Resource(corev1.SchemeGroupVersion.WithResource("pods"))
	opts := metav1.ListOptions{Limit: pageSize, FieldSelector: "status.phase=" + string(corev1.PodRunning)}
	for {
		l, err := res.List(ctx, opts)
		if err != nil {
			return fmt.Errorf("list pods: %w", err)
		}
		for i := range l.Items {
			add(PodOf(&l.Items[i]))
		}
		if opts.Continue = l.Continue; opts.Continue == "" {
			return nil
		}
	}
}

// PodOf reads what the mesh model needs of a pod's metadata.
func PodOf(m metav1.Object) mesh.Pod {
	p := mesh.Pod{Namespace: m.GetNamespace(), Name: m.GetName(), GenerateName: m.GetGenerateName(),
		Labels: m.GetLabels(), Annotations: m.GetAnnotations()}
	if ref := metav1.GetControllerOfNoCopy(m); ref != nil {
		p.OwnerKind, p.OwnerName = ref.Kind, ref.Name
	}
	return p
}
