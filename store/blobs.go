package store

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-build/kiln/atomicfile"
	"github.com/kiln-build/kiln/compression"
	"github.com/kiln-build/kiln/ctxio"
)

// pendingImage is an image whose blobs are on disk, with its index record ready.
type pendingImage struct {
	imageRecord
	layerSizes map[string]int64 // layer digest → unpacked size
}

// writeImage writes img's layers, config and manifest as blobs and returns the record
// the index will hold for it. The caller holds a blobHold.
func (s *Store) writeImage(ctx context.Context, img v1.Image) (*pendingImage, v1.Hash, error) {
	mt, err := img.MediaType()
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("store: reading the image's media type: %w", err)
	}
	if mt != types.OCIManifestSchema1 && mt != types.DockerManifestSchema2 {
		return nil, v1.Hash{}, fmt.Errorf("store: cannot store a %s: only image manifests", mt)
	}
	id, err := img.ConfigName()
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("store: computing the image ID: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("store: image %s: reading its config: %w", id, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("store: image %s: listing its layers: %w", id, err)
	}
	var known map[string]int64
	if err := s.view(func(ix *index) error {
		known = make(map[string]int64, len(layers))
		for _, l := range layers {
			if d, err := l.Digest(); err == nil {
				if n, ok := ix.ContentSizes[d.String()]; ok {
					known[d.String()] = n
				}
			}
		}
		return nil
	}); err != nil {
		return nil, v1.Hash{}, err
	}
	p := &pendingImage{layerSizes: map[string]int64{}}
	for i, l := range layers {
		d, n, err := s.writeLayer(ctx, l, known)
		if err != nil {
			return nil, v1.Hash{}, fmt.Errorf("store: image %s: layer %d: %w", id, i+1, err)
		}
		p.Layers = append(p.Layers, d.String())
		p.layerSizes[d.String()] = n
		p.Size += n
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("store: image %s: reading its config: %w", id, err)
	}
	if err := s.writeBlob(ctx, id, -1, io.NopCloser(bytes.NewReader(rawCfg))); err != nil {
		return nil, v1.Hash{}, fmt.Errorf("store: image %s: config: %w", id, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("store: image %s: computing the manifest digest: %w", id, err)
	}
	rawManifest, err := img.RawManifest()
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("store: image %s: reading its manifest: %w", id, err)
	}
	if err := s.writeBlob(ctx, digest, -1, io.NopCloser(bytes.NewReader(rawManifest))); err != nil {
		return nil, v1.Hash{}, fmt.Errorf("store: image %s: manifest: %w", id, err)
	}
	p.Manifest = digest.String()
	p.Created = cfg.Created.UTC()
	if len(cfg.Config.Labels) > 0 {
		p.Labels = make(map[string]string, len(cfg.Config.Labels))
		for k, v := range cfg.Config.Labels {
			p.Labels[k] = v
		}
	}
	return p, id, nil
}

// writeLayer stores one layer blob unless it is already there, and returns its digest
// and unpacked size (from known, else by reading the stored blob once).
func (s *Store) writeLayer(ctx context.Context, l v1.Layer, known map[string]int64) (v1.Hash, int64, error) {
	d, err := l.Digest()
	if err != nil {
		return v1.Hash{}, 0, fmt.Errorf("computing its digest: %w", err)
	}
	size, err := l.Size()
	if err != nil {
		return v1.Hash{}, 0, fmt.Errorf("%s: reading its size: %w", d, err)
	}
	if !s.hasBlob(d, size) {
		linked, err := s.linkBlob(d, size, l)
		if err != nil {
			return v1.Hash{}, 0, err
		}
		if !linked {
			rc, err := l.Compressed()
			if err != nil {
				return v1.Hash{}, 0, fmt.Errorf("%s: opening it: %w", d, err)
			}
			if err := s.writeBlob(ctx, d, size, rc); err != nil {
				return v1.Hash{}, 0, err
			}
		}
	} else if n, ok := known[d.String()]; ok {
		return d, n, nil
	}
	if cs, ok := l.(contentSized); ok {
		if n, ok := cs.ContentSize(); ok {
			return d, n, nil
		}
	}
	n, err := contentSize(ctx, s.blobPath(d))
	if err != nil {
		// Not a tar (an artifact layer, say): count what is stored instead.
		n = size
	}
	return d, n, nil
}

// contentSized is a layer that knows its unpacked size as contentSize counts it
// (snapshot.Layer.ContentSize: counted as kiln wrote the layer; false when unknown).
type contentSized interface {
	ContentSize() (int64, bool)
}

// writtenBlob is a layer whose blob is a whole file kiln wrote and digested as it
// wrote it, and that never changes after (snapshot.Layer.WrittenFile: a layer just
// built; "" for a file whose digest is only trusted, as a cache's).
type writtenBlob interface {
	WrittenFile() string
}

// linkBlob stores a writtenBlob's file under want by a hard link instead of a copy,
// trusting the digest computed as it was written; it reports false, with nothing
// done, when l is no writtenBlob, its file is not the blob's size, or cannot be linked
// here (another file system). The link is synced before it is named, as a copied blob
// is.
func (s *Store) linkBlob(want v1.Hash, size int64, l v1.Layer) (bool, error) {
	wb, ok := l.(writtenBlob)
	if !ok || want.Algorithm != "sha256" {
		return false, nil
	}
	src := wb.WrittenFile()
	if src == "" {
		return false, nil
	}
	fi, err := os.Lstat(src)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != size {
		return false, nil
	}
	tmp := filepath.Join(s.dir, tmpDir, want.Hex+"-link-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err := os.Link(src, tmp); err != nil {
		return false, nil
	}
	err = syncFile(tmp)
	if err == nil {
		err = os.Rename(tmp, s.blobPath(want))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return false, fmt.Errorf("blob %s: %w", want, err)
	}
	return true, atomicfile.SyncDir(filepath.Dir(s.blobPath(want)))
}

// syncFile flushes a file's data to disk.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *Store) blobPath(h v1.Hash) string {
	return filepath.Join(s.dir, blobsDir, h.Algorithm, h.Hex)
}

// hasBlob reports whether the blob h is stored with the given size (-1: any size).
func (s *Store) hasBlob(h v1.Hash, size int64) bool {
	fi, err := os.Stat(s.blobPath(h))
	return err == nil && fi.Mode().IsRegular() && (size < 0 || fi.Size() == size)
}

// writeBlob streams rc into blobs/ under want, checking the digest (and size, unless
// it is -1) before renaming the finished file into place, so a blob file is always
// whole and correct. rc is closed.
func (s *Store) writeBlob(ctx context.Context, want v1.Hash, size int64, rc io.ReadCloser) (err error) {
	defer rc.Close()
	if want.Algorithm != "sha256" {
		return fmt.Errorf("blob %s: only sha256 digests are supported", want)
	}
	if s.hasBlob(want, size) {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Join(s.dir, tmpDir), want.Hex+"-*")
	if err != nil {
		return fmt.Errorf("blob %s: %w", want, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), ctxio.NewReader(ctx, rc))
	if err != nil {
		return fmt.Errorf("blob %s: writing %s: %w", want, tmp.Name(), err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want.Hex {
		return fmt.Errorf("blob %s: content has digest sha256:%s", want, got)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("blob %s: %d bytes, expected %d", want, n, size)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("blob %s: syncing %s: %w", want, tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("blob %s: closing %s: %w", want, tmp.Name(), err)
	}
	if err = os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("blob %s: %w", want, err)
	}
	if err = os.Rename(tmp.Name(), s.blobPath(want)); err != nil {
		return fmt.Errorf("blob %s: %w", want, err)
	}
	// The index that will name the blob is synced: so is the blob's name, first.
	return atomicfile.SyncDir(filepath.Dir(s.blobPath(want)))
}

// contentSize returns a layer blob's unpacked size as dockerd reports image sizes: the
// sum of regular files' sizes and symlink target lengths (hard links add nothing). An
// uncompressed blob (every layer kiln builds) is read header by header, seeking past
// the files' contents, not read whole.
func contentSize(ctx context.Context, path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r, kind, err := compression.NewReader(f)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	defer r.Close()
	var tr *tar.Reader
	if kind == compression.Uncompressed {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return 0, err
		}
		tr = tar.NewReader(f) // an io.Seeker: Next skips contents by seeking
	} else {
		tr = tar.NewReader(ctxio.NewReader(ctx, r))
	}
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		switch hdr.Typeflag {
		case tar.TypeReg:
			total += hdr.Size
		case tar.TypeSymlink:
			total += int64(len(hdr.Linkname))
		}
	}
}
