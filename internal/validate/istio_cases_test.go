package validate_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/meshguard/meshguard/internal/manifest"
)

// TestIstiosOwnValidationCases runs the cases of Istio's validation tests (testdata/istio, each
// file naming the test it comes from) through meshguard's judgement of a document: the strict
// decode, the CRD schema and istiod's validation. Its verdict (MG001 or not) and its warnings
// (MG003 or not) must be Istio's.
func TestIstiosOwnValidationCases(t *testing.T) {
	v := validator(t)
	files, err := filepath.Glob(filepath.Join("testdata", "istio", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	total, agreed := 0, 0
	for _, file := range files {
		data, err := os.ReadFile(file)
		require.NoError(t, err)
		objs, problems := manifest.Parse(file, data)
		for _, p := range problems {
			// A document that does not decode is refused; Istio's cases that do not decode
			// must expect that.
			total++
			t.Run(filepath.Base(file)+"/"+p.Annotations["test.meshguard.io/istio-case"], func(t *testing.T) {
				require.Equal(t, "false", p.Annotations["test.meshguard.io/istio-valid"], "meshguard refuses it at decode: %s", p.Message)
				agreed++
			})
		}
		for _, o := range objs {
			total++
			t.Run(filepath.Base(file)+"/"+o.Annotations["test.meshguard.io/istio-case"], func(t *testing.T) {
				var errs, warns []string
				for _, p := range v.Validate(context.Background(), o, false) {
					if p.Warning {
						warns = append(warns, p.Message)
					} else {
						errs = append(errs, p.Path+": "+p.Message)
					}
				}
				require.Equal(t, o.Annotations["test.meshguard.io/istio-valid"] == "true", len(errs) == 0,
					"Istio's verdict is valid=%s; meshguard's errors: %s", o.Annotations["test.meshguard.io/istio-valid"], strings.Join(errs, "; "))
				if len(errs) == 0 {
					// Istio's warnings are only asserted on what it accepts.
					require.Equal(t, o.Annotations["test.meshguard.io/istio-warning"] == "true", len(warns) > 0,
						"Istio's warning expectation is %q; meshguard's warnings: %s", o.Annotations["test.meshguard.io/istio-warning"], strings.Join(warns, "; "))
				}
				agreed++
			})
		}
	}
	t.Logf("Istio validation cases: meshguard agrees on %d of %d", agreed, total)
}
