package apiserver

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kiln-build/kiln/compression"
	"github.com/kiln-build/kiln/ctxio"
	"github.com/kiln-build/kiln/store"
)

// loadImages answers POST /images/load (docs/server.md, "Images"). The body is a
// docker-archive (docker save), possibly compressed, or an OCI image layout archive.
// It is spooled to a scratch file (never memory), each image is stored under its tags,
// and the answer is dockerd's JSON stream: "Loaded image: app:1" per tag, "Loaded image
// ID: sha256:…" for an untagged image. quiet=1 (sent whenever the CLI's stdout is not a
// terminal) gives the same lines: kiln sends no progress bars to leave out.
func (s *Server) loadImages(w http.ResponseWriter, r *http.Request) {
	st := s.imageStore(w)
	if st == nil {
		return
	}
	ctx := r.Context()
	dir, err := os.MkdirTemp(s.scratchDir(), scratchPrefixLoad)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "creating a scratch directory: "+err.Error())
		return
	}
	defer os.RemoveAll(dir)
	archive := filepath.Join(dir, "archive.tar")
	if err := spoolDecompressed(ctx, r.Body, archive); err != nil {
		writeError(w, http.StatusBadRequest, "reading the image archive: "+err.Error())
		return
	}
	images, err := openImageArchive(archive, filepath.Join(dir, "oci"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid image archive: "+err.Error())
		return
	}
	out := newStream(w)
	fail := func(err error) {
		if out.Started() {
			out.Error(0, err.Error())
			return
		}
		writeError(w, http.StatusInternalServerError, err.Error())
	}
	for _, li := range images {
		id, err := li.img.ConfigName()
		if err != nil {
			fail(fmt.Errorf("reading a loaded image's config: %w", err))
			return
		}
		for _, t := range li.tags {
			if _, old, err := st.Resolve(t.String()); err == nil && old.ID != id {
				out.Stream(fmt.Sprintf("The image %s already exists, renaming the old one with ID %s to empty string\n", store.Familiar(t), old.ID))
			}
		}
		if _, err := st.Put(ctx, li.img, li.tags...); err != nil {
			fail(err)
			return
		}
		if len(li.tags) == 0 {
			out.Stream("Loaded image ID: " + id.String() + "\n")
		}
		for _, t := range li.tags {
			out.Stream("Loaded image: " + store.Familiar(t) + "\n")
		}
	}
}

// loadedImage is one image of an archive with the tags it carries.
type loadedImage struct {
	img  v1.Image
	tags []name.Tag
}

// openImageArchive reads the images of a docker-archive, or of an OCI layout archive
// (extracted below ociDir). A docker-archive written by Docker 25 and later is also an
// OCI layout; its manifest.json is preferred because it carries the tags as docker
// save wrote them.
func openImageArchive(archive, ociDir string) ([]loadedImage, error) {
	names, err := tarEntries(archive)
	if err != nil {
		return nil, err
	}
	switch {
	case names["manifest.json"]:
		return openDockerArchive(archive)
	case names["index.json"] && names["oci-layout"]:
		if err := extractTar(archive, ociDir); err != nil {
			return nil, err
		}
		return openOCILayout(ociDir)
	}
	return nil, errors.New("it has neither manifest.json (docker save) nor index.json and oci-layout (an OCI image layout)")
}

// openDockerArchive returns one image per manifest.json entry.
func openDockerArchive(archive string) ([]loadedImage, error) {
	open := func() (io.ReadCloser, error) { return os.Open(archive) }
	m, err := tarball.LoadManifest(open)
	if err != nil {
		return nil, fmt.Errorf("manifest.json: %w", err)
	}
	if len(m) == 0 {
		return nil, errors.New("manifest.json lists no image")
	}
	var out []loadedImage
	for i, entry := range m {
		var tags []name.Tag
		for _, rt := range entry.RepoTags {
			t, err := store.ParseTag(rt)
			if err != nil {
				return nil, fmt.Errorf("manifest.json: image %d: tag %q: %w", i+1, rt, err)
			}
			tags = append(tags, t)
		}
		// go-containerregistry reads one image of a many-image archive only by tag.
		// An untagged one is reached by showing it an archive whose first entry is a
		// manifest.json naming that image alone: it reads the first manifest.json it
		// meets.
		single, err := singleManifestOpener(archive, entry)
		if err != nil {
			return nil, err
		}
		img, err := tarball.Image(single, nil)
		if err != nil {
			return nil, fmt.Errorf("image %d (%s): %w", i+1, entry.Config, err)
		}
		out = append(out, loadedImage{img: img, tags: tags})
	}
	return out, nil
}

// singleManifestOpener opens archive behind a tar entry manifest.json holding entry
// alone. The prefix has no end-of-archive blocks, so a tar reader goes on into archive.
func singleManifestOpener(archive string, entry tarball.Descriptor) (tarball.Opener, error) {
	data, err := jsonMarshal(tarball.Manifest{entry})
	if err != nil {
		return nil, err
	}
	var prefix bytes.Buffer
	tw := tar.NewWriter(&prefix)
	if err := tw.WriteHeader(&tar.Header{Name: "manifest.json", Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(data); err != nil {
		return nil, err
	}
	if err := tw.Flush(); err != nil {
		return nil, err
	}
	head := prefix.Bytes()
	return func() (io.ReadCloser, error) {
		f, err := os.Open(archive)
		if err != nil {
			return nil, err
		}
		return struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(head), f), f}, nil
	}, nil
}

// spoolDecompressed copies body to path, undoing gzip, bzip2, xz or zstd compression
// as dockerd's load does.
func spoolDecompressed(ctx context.Context, body io.Reader, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r, _, err := compression.NewReader(body)
	if err != nil {
		return err
	}
	defer r.Close()
	if _, err := io.Copy(f, ctxio.NewReader(ctx, r)); err != nil {
		return err
	}
	return f.Close()
}
