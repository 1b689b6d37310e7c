package cluster

import (
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/meshguard/meshguard/internal/mesh"
)

func TestPodOfReadsTheControllerAmongThePodsOwners(t *testing.T) {
	meta := func(refs ...metav1.OwnerReference) *metav1.PartialObjectMetadata {
		return &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: "billing", Name: "ledger-5d8-x", GenerateName: "ledger-5d8-",
			Labels: map[string]string{"pod-template-hash": "5d8"}, OwnerReferences: refs}}
	}
	tests := []struct {
		name string
		pod  *metav1.PartialObjectMetadata
		want string
	}{
		{"the controlling ReplicaSet names the Deployment", meta(
			metav1.OwnerReference{Kind: "ConfigMap", Name: "x"},
			metav1.OwnerReference{Kind: "ReplicaSet", Name: "ledger-5d8", Controller: ptr.To(true)}), "ledger"},
		{"an owner that does not control the pod is not its workload", meta(
			metav1.OwnerReference{Kind: "ReplicaSet", Name: "ledger-5d8", Controller: ptr.To(false)}), "ledger-5d8-x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, mesh.WorkloadName(PodOf(tt.pod)))
		})
	}
}
