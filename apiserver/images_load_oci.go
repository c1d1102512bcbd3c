package apiserver

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/kiln-build/kiln/store"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// tarEntries lists the regular files of a tar by cleaned name. Reading from a file,
// archive/tar seeks past contents, so this costs one pass over the headers.
func tarEntries(archive string) (map[string]bool, error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names := map[string]bool{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names, nil
		}
		if err != nil {
			return nil, fmt.Errorf("not a tar archive: %w", err)
		}
		if hdr.Typeflag == tar.TypeReg {
			names[path.Clean(hdr.Name)] = true
		}
	}
}

// extractTar writes the archive's directories and regular files below dir. Anything
// else (links, devices) is skipped, and names are cleaned and kept inside dir, so a
// hostile archive cannot write elsewhere: with no symlinks created, no path can be
// redirected either.
func extractTar(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("not a tar archive: %w", err)
		}
		rel := path.Clean("/" + hdr.Name)[1:]
		if rel == "" {
			continue
		}
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := writeExtracted(dst, tr); err != nil {
				return fmt.Errorf("%s: %w", hdr.Name, err)
			}
		}
	}
}

func writeExtracted(dst string, r io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Annotations that name an image in an OCI layout: containerd's full name, and the
// OCI ref name, which some tools fill with a full name and others with a bare tag.
const (
	containerdNameAnnotation = "io.containerd.image.name"
	ociRefNameAnnotation     = "org.opencontainers.image.ref.name"
)

// openOCILayout returns the images an OCI layout's index.json lists. An image index
// entry contributes its image for this machine's platform (linux/GOARCH).
func openOCILayout(dir string) ([]loadedImage, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, err
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	var out []loadedImage
	for _, desc := range m.Manifests {
		var img v1.Image
		switch {
		case desc.MediaType.IsImage():
			img, err = idx.Image(desc.Digest)
		case desc.MediaType.IsIndex():
			img, err = platformImage(idx, desc.Digest)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", desc.Digest, err)
		}
		li := loadedImage{img: img}
		if t, ok := annotatedTag(desc.Annotations); ok {
			li.tags = []name.Tag{t}
		}
		out = append(out, li)
	}
	if len(out) == 0 {
		return nil, errors.New("index.json lists no image")
	}
	return out, nil
}

// platformImage picks linux/GOARCH from a nested image index.
func platformImage(parent v1.ImageIndex, h v1.Hash) (v1.Image, error) {
	child, err := parent.ImageIndex(h)
	if err != nil {
		return nil, err
	}
	m, err := child.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range m.Manifests {
		if d.MediaType.IsImage() && d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == runtime.GOARCH {
			return child.Image(d.Digest)
		}
	}
	return nil, fmt.Errorf("no linux/%s image in the index", runtime.GOARCH)
}

// annotatedTag reads an image's name from its annotations, when one is a full
// reference (a bare "latest" names no repository).
func annotatedTag(ann map[string]string) (name.Tag, bool) {
	for _, key := range []string{containerdNameAnnotation, ociRefNameAnnotation} {
		v := ann[key]
		if v == "" || !strings.ContainsAny(v, "/:") {
			continue
		}
		if t, err := store.ParseTag(v); err == nil {
			return t, true
		}
	}
	return name.Tag{}, false
}
