package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/atomicfile"
)

// storedImage reads an image straight from the blobs, by manifest digest, so reading
// never depends on the layout's index.json (which is derived, and rewritten after the
// tag index).
type storedImage struct {
	s        *Store
	digest   v1.Hash
	raw      []byte
	manifest *v1.Manifest
}

var _ partial.CompressedImageCore = (*storedImage)(nil)

// image opens the stored image whose manifest digest is h. Its layers are opened
// lazily: a layer removed by garbage collection meanwhile fails when read.
func (s *Store) image(h v1.Hash) (v1.Image, error) {
	raw, err := os.ReadFile(s.blobPath(h))
	if err != nil {
		return nil, fmt.Errorf("reading manifest %s: %w", h, err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parsing manifest %s: %w", h, err)
	}
	return partial.CompressedToImage(&storedImage{s: s, digest: h, raw: raw, manifest: m})
}

func (si *storedImage) RawManifest() ([]byte, error) { return si.raw, nil }

func (si *storedImage) MediaType() (types.MediaType, error) {
	if si.manifest.MediaType != "" {
		return si.manifest.MediaType, nil
	}
	return types.OCIManifestSchema1, nil
}

func (si *storedImage) RawConfigFile() ([]byte, error) {
	return os.ReadFile(si.s.blobPath(si.manifest.Config.Digest))
}

func (si *storedImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == si.manifest.Config.Digest {
		return &storedBlob{path: si.s.blobPath(h), desc: si.manifest.Config}, nil
	}
	for _, d := range si.manifest.Layers {
		if d.Digest == h {
			return &storedBlob{path: si.s.blobPath(h), desc: d}, nil
		}
	}
	return nil, fmt.Errorf("image %s has no layer %s", si.digest, h)
}

// storedBlob is one blob file described by its manifest descriptor.
type storedBlob struct {
	path string
	desc v1.Descriptor
}

func (b *storedBlob) Digest() (v1.Hash, error)            { return b.desc.Digest, nil }
func (b *storedBlob) Size() (int64, error)                { return b.desc.Size, nil }
func (b *storedBlob) MediaType() (types.MediaType, error) { return b.desc.MediaType, nil }
func (b *storedBlob) Compressed() (io.ReadCloser, error)  { return os.Open(b.path) }

// The OCI layout's own index.json lists every stored image, each tag as a
// "org.opencontainers.image.ref.name" annotation (the full normalized name, as
// containerd and skopeo read it) and dangling images without one, so other tools see
// what `docker images` would.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// ensureLayoutMarker writes the oci-layout file that marks dir as an OCI image layout.
func (s *Store) ensureLayoutMarker() error {
	p := filepath.Join(s.dir, "oci-layout")
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	if err := atomicfile.WriteFile(p, []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o600); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// writeLayoutIndex rewrites index.json from the tag index.
func (s *Store) writeLayoutIndex(ix *index) error {
	idx := v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests:     []v1.Descriptor{},
	}
	ids := make([]string, 0, len(ix.Images))
	for id := range ix.Images {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		rec := ix.Images[id]
		desc, err := s.manifestDescriptor(rec.Manifest)
		if err != nil {
			return err
		}
		tags := ix.tagsOf(id)
		if len(tags) == 0 {
			idx.Manifests = append(idx.Manifests, desc)
		}
		for _, t := range tags {
			d := desc
			d.Annotations = map[string]string{refNameAnnotation: t}
			idx.Manifests = append(idx.Manifests, d)
		}
	}
	data, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return fmt.Errorf("store: encoding index.json: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(s.dir, "index.json"), data, 0o600); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// manifestDescriptor describes the stored manifest with digest d.
func (s *Store) manifestDescriptor(d string) (v1.Descriptor, error) {
	h, err := v1.NewHash(d)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("store: manifest %q: %w", d, err)
	}
	raw, err := os.ReadFile(s.blobPath(h))
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("store: reading manifest %s: %w", d, err)
	}
	var m struct {
		MediaType types.MediaType `json:"mediaType"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return v1.Descriptor{}, fmt.Errorf("store: parsing manifest %s: %w", d, err)
	}
	if m.MediaType == "" {
		m.MediaType = types.OCIManifestSchema1
	}
	return v1.Descriptor{MediaType: m.MediaType, Size: int64(len(raw)), Digest: h}, nil
}

// marshalIndex encodes the tag index, indented so a human can read it.
func marshalIndex(ix *index) ([]byte, error) {
	data, err := json.MarshalIndent(ix, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("store: encoding the image index: %w", err)
	}
	return append(data, '\n'), nil
}
