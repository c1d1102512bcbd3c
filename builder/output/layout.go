package output

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
)

// Annotations naming an image in an OCI layout's index.json. The OCI spec's ref.name
// conventionally holds only the tag; containerd and docker load read the full name
// from io.containerd.image.name, so both are written, as BuildKit's exporters do.
const (
	annotationRefName   = "org.opencontainers.image.ref.name"
	annotationImageName = "io.containerd.image.name"
)

// WriteLayout saves img into the OCI image layout at path (kaniko's
// --oci-layout-path), creating the layout if needed and adding to it otherwise. Each
// reference gets its own entry in index.json, annotated with the reference's name;
// an entry already holding that name is replaced. With no references the image is
// added unnamed. Blobs the layout already has are not written again.
func WriteLayout(path string, img v1.Image, refs ...name.Reference) error {
	p, err := openLayout(path)
	if err != nil {
		return err
	}
	if len(refs) == 0 {
		if err := p.AppendImage(img); err != nil {
			return fmt.Errorf("oci layout %s: %w", path, err)
		}
		return nil
	}
	for _, ref := range refs {
		annotations := map[string]string{annotationImageName: ref.Name()}
		if t, ok := ref.(name.Tag); ok {
			annotations[annotationRefName] = t.TagStr()
		}
		err := p.ReplaceImage(img, match.Annotation(annotationImageName, ref.Name()),
			layout.WithAnnotations(annotations))
		if err != nil {
			return fmt.Errorf("oci layout %s: adding %s: %w", path, ref, err)
		}
	}
	return nil
}

// openLayout opens the layout at path, or creates an empty one when path does not
// exist or is an empty directory.
func openLayout(path string) (layout.Path, error) {
	_, err := os.Stat(filepath.Join(path, "index.json"))
	switch {
	case err == nil:
		p, err := layout.FromPath(path)
		if err != nil {
			return "", fmt.Errorf("oci layout %s: %w", path, err)
		}
		return p, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("oci layout %s: %w", path, err)
	}
	if entries, err := os.ReadDir(path); err == nil && len(entries) > 0 {
		return "", fmt.Errorf("oci layout %s: directory is not empty and has no index.json", path)
	}
	p, err := layout.Write(path, empty.Index)
	if err != nil {
		return "", fmt.Errorf("oci layout %s: %w", path, err)
	}
	return p, nil
}
