package output

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"sort"
	"time"

	"github.com/distribution/reference"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ArchiveFormat selects what WriteArchive writes.
type ArchiveFormat int

const (
	// ArchiveOCI is an OCI image layout as a tar (BuildKit's -o type=oci): oci-layout,
	// index.json and blobs/.
	ArchiveOCI ArchiveFormat = iota
	// ArchiveDocker is the same layout plus docker load's manifest.json naming the
	// image's tags (BuildKit's -o type=docker). docker load reads either part.
	ArchiveDocker
)

// WriteArchive streams img to w as an image archive in the layout BuildKit's oci and
// docker exporters write (containerd's archive format): entries sorted by name, the
// blobs first, then index.json, manifest.json (ArchiveDocker only) and oci-layout.
// names are image references; each gets its own index.json entry annotated with the
// full name (io.containerd.image.name) and its tag (org.opencontainers.image.ref.name),
// as docker load, ctr import and skopeo expect. created is the index entries'
// org.opencontainers.image.created. Layers are copied from the image one at a time.
func WriteArchive(w io.Writer, img v1.Image, format ArchiveFormat, names []string, created time.Time) error {
	full, err := normalizeNames(names)
	if err != nil {
		return err
	}
	rawManifest, err := img.RawManifest()
	if err != nil {
		return fmt.Errorf("image archive: %w", err)
	}
	m, err := img.Manifest()
	if err != nil {
		return fmt.Errorf("image archive: %w", err)
	}
	mt, err := img.MediaType()
	if err != nil {
		return fmt.Errorf("image archive: %w", err)
	}
	if mt == "" {
		mt = types.OCIManifestSchema1
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return fmt.Errorf("image archive: %w", err)
	}
	digest, err := img.Digest()
	if err != nil {
		return fmt.Errorf("image archive: %w", err)
	}
	desc := v1.Descriptor{
		MediaType:   mt,
		Digest:      digest,
		Size:        int64(len(rawManifest)),
		Annotations: map[string]string{annotationCreated: created.UTC().Format(time.RFC3339)},
	}
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("image archive: %w", err)
	}

	var recs []record
	blobs := map[string]bool{}
	addBlob := func(r record) {
		if !blobs[r.name] {
			blobs[r.name] = true
			recs = append(recs, r)
		}
	}
	addBlob(bytesRecord(blobPath(desc.Digest), rawManifest, 0o444))
	addBlob(bytesRecord(blobPath(m.Config.Digest), rawConfig, 0o444))
	for i, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return fmt.Errorf("image archive: layer %d: %w", i, err)
		}
		size, err := l.Size()
		if err != nil {
			return fmt.Errorf("image archive: layer %d: %w", i, err)
		}
		addBlob(record{name: blobPath(d), size: size, mode: 0o444, open: l.Compressed})
	}

	index := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	if len(full) == 0 {
		index.Manifests = append(index.Manifests, desc)
	}
	for _, n := range full {
		d := desc
		d.Annotations = map[string]string{
			annotationCreated:   desc.Annotations[annotationCreated],
			annotationImageName: n.String(),
			annotationRefName:   ociRefName(n),
		}
		index.Manifests = append(index.Manifests, d)
	}
	b, err := json.Marshal(index)
	if err != nil {
		return err
	}
	recs = append(recs, bytesRecord("index.json", b, 0o644))
	if format == ArchiveDocker {
		entry := dockerManifest{Config: blobPath(m.Config.Digest), RepoTags: []string{}}
		for _, n := range full {
			if _, ok := n.(reference.Tagged); ok {
				entry.RepoTags = append(entry.RepoTags, reference.FamiliarString(n))
			}
		}
		for _, l := range m.Layers {
			entry.Layers = append(entry.Layers, blobPath(l.Digest))
		}
		b, err := json.Marshal([]dockerManifest{entry})
		if err != nil {
			return err
		}
		recs = append(recs, bytesRecord("manifest.json", b, 0o644))
	}
	recs = append(recs, bytesRecord("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o444),
		record{name: "blobs/", dir: true, mode: 0o755},
		record{name: "blobs/sha256/", dir: true, mode: 0o755})
	sort.Slice(recs, func(i, j int) bool { return recs[i].name < recs[j].name })

	tw := tar.NewWriter(w)
	for _, r := range recs {
		if err := r.write(tw); err != nil {
			return fmt.Errorf("image archive: %s: %w", r.name, err)
		}
	}
	return tw.Close()
}

// annotationCreated is the OCI annotation for when the index entry was made.
const annotationCreated = "org.opencontainers.image.created"

// dockerManifest is one entry of docker load's manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// normalizeNames parses names as Docker does (foo:1 is docker.io/library/foo:1; a
// name without tag or digest gets :latest).
func normalizeNames(names []string) ([]reference.Named, error) {
	var out []reference.Named
	for _, s := range names {
		n, err := reference.ParseNormalizedNamed(s)
		if err != nil {
			return nil, fmt.Errorf("image archive: name %q: %w", s, err)
		}
		out = append(out, reference.TagNameOnly(n))
	}
	return out, nil
}

// ociRefName is what the OCI spec suggests for org.opencontainers.image.ref.name: the
// tag alone; for a digest reference, the whole name.
func ociRefName(n reference.Named) string {
	if t, ok := n.(reference.Tagged); ok {
		if _, digested := n.(reference.Digested); !digested {
			return t.Tag()
		}
	}
	return n.String()
}

func blobPath(h v1.Hash) string { return path.Join("blobs", h.Algorithm, h.Hex) }

// record is one entry of an archive: a directory, or a file of known size whose
// contents open streams.
type record struct {
	name string
	dir  bool
	size int64
	mode int64
	open func() (io.ReadCloser, error)
}

func bytesRecord(name string, b []byte, mode int64) record {
	return record{name: name, size: int64(len(b)), mode: mode, open: func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}}
}

func (r record) write(tw *tar.Writer) error {
	if r.dir {
		return tw.WriteHeader(&tar.Header{Name: r.name, Typeflag: tar.TypeDir, Mode: r.mode})
	}
	if err := tw.WriteHeader(&tar.Header{Name: r.name, Typeflag: tar.TypeReg, Mode: r.mode, Size: r.size}); err != nil {
		return err
	}
	rc, err := r.open()
	if err != nil {
		return err
	}
	defer rc.Close()
	n, err := io.Copy(tw, io.LimitReader(rc, r.size))
	if err != nil {
		return err
	}
	if n != r.size {
		return fmt.Errorf("the blob has %d bytes, its descriptor says %d", n, r.size)
	}
	return nil
}
