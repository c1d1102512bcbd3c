package output

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// WriteDigestFiles writes kaniko's digest files for img; an empty file name skips that
// file:
//
//   - digestFile (--digest-file): the manifest digest, "sha256:…", without a newline;
//   - nameWithDigestFile (--image-name-with-digest-file): "registry/repo@sha256:…",
//     one line per reference;
//   - nameTagWithDigestFile (--image-name-tag-with-digest-file):
//     "registry/repo:tag@sha256:…", one line per reference (no tag for a digest
//     reference).
//
// Names are fully qualified ("index.docker.io/library/app"), as kaniko writes them.
// Missing parent directories are created.
func WriteDigestFiles(img v1.Image, refs []name.Reference, digestFile, nameWithDigestFile, nameTagWithDigestFile string) error {
	if digestFile == "" && nameWithDigestFile == "" && nameTagWithDigestFile == "" {
		return nil
	}
	digest, err := img.Digest()
	if err != nil {
		return fmt.Errorf("computing the image digest: %w", err)
	}

	var withDigest, withTag strings.Builder
	for _, ref := range refs {
		repo := ref.Context().Name()
		fmt.Fprintf(&withDigest, "%s@%s\n", repo, digest)
		if t, ok := ref.(name.Tag); ok {
			repo += ":" + t.TagStr()
		}
		fmt.Fprintf(&withTag, "%s@%s\n", repo, digest)
	}

	files := []struct{ path, content string }{
		{digestFile, digest.String()},
		{nameWithDigestFile, withDigest.String()},
		{nameTagWithDigestFile, withTag.String()},
	}
	for _, f := range files {
		if f.path == "" {
			continue
		}
		if err := writeFile(f.path, f.content); err != nil {
			return err
		}
	}
	return nil
}

// writeFile writes content to path, creating its parent directories.
func writeFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("digest file %s: %w", path, err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return fmt.Errorf("digest file %s: %w", path, err)
	}
	return nil
}
