package validate

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAPIServerPathsBecomeMeshguardPaths(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"fields and indices stay as they are", "spec.http[0].retries.attempts", "spec.http[0].retries.attempts"},
		{"a numeric map key reads like an index, as FieldLine expects", "spec.portLevelMtls[8080].mode", "spec.portLevelMtls[8080].mode"},
		{"a map key with dots and slashes is quoted", "metadata.labels[app.kubernetes.io/name]", `metadata.labels["app.kubernetes.io/name"]`},
		{"a leading dot is dropped", ".spec.host", "spec.host"},
		{"an empty path stays empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, meshPath(tc.in))
		})
	}
}
