package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// FileName is the config file the CLI finds on its own, as kube-linter finds .kube-linter.yaml.
const FileName = ".meshguard.yaml"

// Find returns FileName in dir, or else at the root of the git repository dir is in (the
// nearest ancestor with a .git entry), or "" when neither exists.
func Find(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("find %s: %w", FileName, err)
	}
	if p := filepath.Join(abs, FileName); exists(p) {
		return p, nil
	}
	for d := abs; ; d = filepath.Dir(d) {
		if exists(filepath.Join(d, ".git")) {
			if p := filepath.Join(d, FileName); exists(p) {
				return p, nil
			}
			return "", nil
		}
		if filepath.Dir(d) == d {
			return "", nil
		}
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil || !errors.Is(err, fs.ErrNotExist)
}
