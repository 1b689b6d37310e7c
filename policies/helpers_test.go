package policies

import (
	"testing"

	"github.com/meshguard/meshguard/internal/manifest"
)

func manifestParse(t testing.TB, name string, data []byte) ([]*manifest.Object, []*manifest.Problem) {
	t.Helper()
	return manifest.Parse(name, data)
}
