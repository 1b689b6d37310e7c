package validate

import (
	"errors"
	"fmt"
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
		{"the object itself has no path", "<nil>", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, meshPath(tc.in))
		})
	}
}

func TestIstiosAggregatedErrorsBecomeOneFindingEach(t *testing.T) {
	a, b, c := errors.New("a"), errors.New("b"), errors.New("c")
	for _, tc := range []struct {
		name string
		in   error
		want []string
	}{
		{"no error is no finding", nil, nil},
		{"a plain error is one finding", a, []string{"a"}},
		{"joined errors are one finding each, nested ones too", errors.Join(a, errors.Join(b, c)), []string{"a", "b", "c"}},
		{"a go-multierror (Istio's aggregate) is one finding per error", &multi{[]error{a, b}}, []string{"a", "b"}},
		{"an empty aggregate is still reported", &multi{}, []string{"0 errors"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, e := range flatten(tc.in) {
				got = append(got, e.Error())
			}
			require.Equal(t, tc.want, got)
		})
	}
}

// multi has the shape of hashicorp/go-multierror's Error.
type multi struct{ errs []error }

func (m *multi) Error() string          { return fmt.Sprintf("%d errors", len(m.errs)) }
func (m *multi) WrappedErrors() []error { return m.errs }
