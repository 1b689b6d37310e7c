// Package image tests the container image `make image` writes: an OCI image layout tarball
// whose binary runs, as a non-root user, and which the chart's default image names.
package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Annotations map[string]string `json:"annotations"`
}

// archive reads the oci-archive into memory, by file name.
func archive(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err, "make image writes %s", path)
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		require.NoError(t, err)
		data, err := io.ReadAll(tr)
		require.NoError(t, err)
		files[h.Name] = data
	}
}

func blob(t *testing.T, files map[string][]byte, digest string, v any) []byte {
	t.Helper()
	data, ok := files["blobs/"+strings.Replace(digest, ":", "/", 1)]
	require.True(t, ok, "blob %s is in the archive", digest)
	if v != nil {
		require.NoError(t, json.Unmarshal(data, v))
	}
	return data
}

func TestTheImageRunsMeshguardAsANonRootUser(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary from the image")
	}
	path := os.Getenv("MESHGUARD_IMAGE")
	if path == "" {
		t.Skip("MESHGUARD_IMAGE is not set: make test builds the image and sets it")
	}
	files := archive(t, path)

	var index struct {
		SchemaVersion int          `json:"schemaVersion"`
		Manifests     []descriptor `json:"manifests"`
	}
	require.NoError(t, json.Unmarshal(files["index.json"], &index))
	require.Contains(t, string(files["oci-layout"]), `"imageLayoutVersion"`)
	require.Len(t, index.Manifests, 1)
	m := index.Manifests[0]
	require.Equal(t, "application/vnd.oci.image.manifest.v1+json", m.MediaType)

	t.Run("the chart's default image is the one built", func(t *testing.T) {
		var chart struct {
			AppVersion string `json:"appVersion"`
		}
		var values struct {
			Image struct {
				Repository string `json:"repository"`
				Tag        string `json:"tag"`
			} `json:"image"`
		}
		readYAML(t, "../../charts/meshguard/Chart.yaml", &chart)
		readYAML(t, "../../charts/meshguard/values.yaml", &values)
		tag := values.Image.Tag
		if tag == "" {
			tag = chart.AppVersion
		}
		require.Equal(t, values.Image.Repository+":"+tag, m.Annotations["org.opencontainers.image.ref.name"])
	})

	var manifest struct {
		Config descriptor   `json:"config"`
		Layers []descriptor `json:"layers"`
	}
	blob(t, files, m.Digest, &manifest)
	var config struct {
		OS     string `json:"os"`
		Config struct {
			Entrypoint []string `json:"Entrypoint"`
			User       string   `json:"User"`
		} `json:"config"`
	}
	blob(t, files, manifest.Config.Digest, &config)

	t.Run("the entrypoint is the binary and the user is not root", func(t *testing.T) {
		require.Equal(t, "linux", config.OS)
		require.Equal(t, []string{"/meshguard"}, config.Config.Entrypoint)
		require.Equal(t, "65532:65532", config.Config.User, "the chart's runAsUser")
	})

	t.Run("the binary inside runs version", func(t *testing.T) {
		require.Len(t, manifest.Layers, 1)
		zr, err := gzip.NewReader(bytes.NewReader(blob(t, files, manifest.Layers[0].Digest, nil)))
		require.NoError(t, err)
		tr := tar.NewReader(zr)
		bin := filepath.Join(t.TempDir(), "meshguard")
		for {
			h, err := tr.Next()
			require.NoError(t, err, "the layer holds /meshguard")
			if h.Name != "meshguard" {
				continue
			}
			require.Equal(t, int64(0o755), h.Mode&0o777)
			require.Equal(t, 0, h.Uid, "root owns the binary, so the non-root user cannot replace it")
			data, err := io.ReadAll(tr)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(bin, data, 0o755))
			break
		}
		out, err := exec.Command(bin, "version").CombinedOutput()
		require.NoError(t, err, string(out))
		require.Regexp(t, `^meshguard v\d+\.\d+\.\d+.*, go1\.`, string(out))
	})
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(data, v))
}
