// This file builds the meshguard binary the end-to-end tests, the chart tests and the demo run.

package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// buildTimeout bounds `go build ./cmd/meshguard`: a cold build compiles controller-runtime, OPA
// and CEL, which takes minutes on two busy cores.
const buildTimeout = 15 * time.Minute

// buildMeshguard builds ./cmd/meshguard once per test binary. The binary goes to the user's
// cache directory rather than a temporary one: every top-level test of a package may use it, and
// only a TestMain could remove a temporary one after the last of them; one file that each run
// overwrites (go build replaces it by rename, so a running server keeps its inode) is the whole
// cost.
var buildMeshguard = sync.OnceValues(func() (string, error) {
	root, err := cpModuleRoot()
	if err != nil {
		return "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("build meshguard: %w", err)
	}
	dir := filepath.Join(cache, "meshguard", "e2e")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("build meshguard: %w", err)
	}
	bin := filepath.Join(dir, "meshguard")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/meshguard")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/meshguard: %w\n%s", err, out)
	}
	return bin, nil
})

// MeshguardBinary returns the path of a freshly built meshguard binary ($MESHGUARD_BIN if set).
func MeshguardBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("MESHGUARD_BIN"); p != "" {
		return p
	}
	began := time.Now()
	bin, err := buildMeshguard()
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Logf("meshguard binary ready in %s: %s", time.Since(began).Round(time.Millisecond), bin)
	return bin
}
