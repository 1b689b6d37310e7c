// Command image writes meshguard's container image as an OCI image layout tarball, without
// Docker or a registry: one layer with the static binary, a non-root user, the binary as the
// entrypoint. `make image` runs it; `podman load`, `skopeo copy oci-archive:` and `crane push`
// read the result.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// nonRoot is the distroless "nonroot" user the chart's securityContext runs as.
const nonRoot = "65532:65532"

func main() {
	binary := flag.String("binary", "", "the linux meshguard binary to put in the image")
	out := flag.String("out", "", "the OCI layout tarball to write")
	ref := flag.String("ref", "", "the image reference it is named by (org.opencontainers.image.ref.name)")
	arch := flag.String("arch", "amd64", "the binary's architecture")
	version := flag.String("version", "", "the version label")
	flag.Parse()
	if *binary == "" || *out == "" || *ref == "" {
		fmt.Fprintln(os.Stderr, "usage: image -binary FILE -out FILE.tar -ref NAME:TAG [-arch ARCH] [-version V]")
		os.Exit(2)
	}
	if err := build(*binary, *out, *ref, *arch, *version); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func build(binary, out, ref, arch, version string) error {
	bin, err := os.ReadFile(binary)
	if err != nil {
		return fmt.Errorf("read binary: %w", err)
	}
	rootfs, err := rootFS(bin)
	if err != nil {
		return fmt.Errorf("build layer: %w", err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(rootfs)), nil }, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return fmt.Errorf("build layer: %w", err)
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	if img, err = mutate.AppendLayers(img, layer); err != nil {
		return fmt.Errorf("add layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	// A fixed creation time keeps the image digest a function of the binary alone.
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cf.Config = v1.Config{
		Entrypoint: []string{"/meshguard"},
		User:       nonRoot,
		WorkingDir: "/",
		Env:        []string{"PATH=/"},
		Labels: map[string]string{
			"org.opencontainers.image.source":  "https://github.com/meshguard/meshguard",
			"org.opencontainers.image.version": version,
			"org.opencontainers.image.title":   "meshguard",
		},
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return fmt.Errorf("set config: %w", err)
	}

	dir, err := os.MkdirTemp("", "meshguard-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("write layout: %w", err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref}),
		layout.WithPlatform(v1.Platform{OS: "linux", Architecture: arch})); err != nil {
		return fmt.Errorf("write image: %w", err)
	}
	return tarDir(dir, out)
}

// rootFS is the image's one layer: the binary and a world-writable /tmp (Go's and the webhook's
// default scratch space), owned by root so that the non-root user cannot replace the binary.
func rootFS(bin []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777, ModTime: epoch}); err != nil {
		return nil, err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "meshguard", Mode: 0o755, Size: int64(len(bin)), ModTime: epoch}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// tarDir writes the layout directory as a tarball (an oci-archive), entries sorted.
func tarDir(dir, out string) error {
	var files []string
	if err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files = append(files, p)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("list layout: %w", err)
	}
	sort.Strings(files)
	f, err := os.Create(out + ".tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, p := range files {
		rel, _ := filepath.Rel(dir, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("read %s: %w", rel, err)
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(out+".tmp", out)
}
