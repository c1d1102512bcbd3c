package output

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// WriteTarball saves img at path as a docker-archive (the format of docker save and
// docker load, kaniko's --tar-path), tagged with every tag in refs. With no tags the
// archive is untagged; docker load then prints the image ID instead of a name.
//
// The archive is written next to path and renamed into place, so path is either the
// previous file or a complete archive, never a truncated one.
func WriteTarball(path string, img v1.Image, refs []name.Tag) error {
	digest, err := img.Digest()
	if err != nil {
		return fmt.Errorf("tarball %s: computing the image digest: %w", path, err)
	}
	images := make(map[name.Reference]v1.Image, len(refs)+1)
	for _, t := range refs {
		images[t] = img
	}
	if len(images) == 0 {
		// ggcr's writer needs a reference per image but only records tags in the
		// archive's manifest.json; a digest reference yields an untagged entry.
		untagged, err := name.NewDigest("kiln.invalid/untagged@" + digest.String())
		if err != nil {
			return fmt.Errorf("tarball %s: %w", path, err)
		}
		images[untagged] = img
	}

	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("tarball %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	if err := tarball.MultiRefWrite(images, tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("tarball %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("tarball %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("tarball %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("tarball %s: %w", path, err)
	}
	return nil
}
