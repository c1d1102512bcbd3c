// Package store owns kiln's local image store: images the server built or loaded, kept
// as an OCI image layout on disk with a tag index beside it, written atomically so a
// crash never leaves a half-written index, and surviving restarts.
//
// On disk, the store directory is an OCI image layout (oci-layout, index.json,
// blobs/sha256/…) that any OCI tool can read, plus:
//
//	images.json  the tag index: image ID → manifest, layers, repo digests, cached
//	             metadata; normalized tag → image ID. The commit point of every change.
//	index.lock   held (flock) while the index is read, changed and written back, so two
//	             processes sharing a store do not lose each other's changes
//	gc.lock      held shared while blobs are written (Put) or read at length (Hold),
//	             exclusively while unreferenced blobs are collected, so a collection
//	             never removes blobs an image being stored is about to name, nor
//	             those of an image being pushed or saved
//	tmp/         blobs being written, renamed into blobs/ once their digest is checked
//
// Names follow Docker's rules (see ParseTag and Familiar).
//
// It is a leaf package.
package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/gofrs/flock"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/atomicfile"
)

// ErrNotFound is matched (errors.Is) when a reference names no image in the store. The
// error's message is dockerd's: "No such image: busybox:latest".
var ErrNotFound = errors.New("no such image")

// notFoundError names the missing reference the way dockerd does.
type notFoundError struct{ ref string }

func (e notFoundError) Error() string        { return "No such image: " + e.ref }
func (e notFoundError) Is(target error) bool { return target == ErrNotFound }

// Store is a local image store rooted at one directory. It is safe for concurrent use,
// also by several processes sharing the directory.
type Store struct {
	dir string

	// mu guards idx and stamp, and serializes this process's use of indexLock (a
	// Flock is not meant to be shared between goroutines).
	mu        sync.Mutex
	idx       *index
	stamp     fileStamp
	indexLock *flock.Flock

	now func() time.Time
	// beforeRename runs before the index file is renamed into place (tests only).
	beforeRename func(tmp string) error
}

// Image describes one stored image.
type Image struct {
	ID          v1.Hash   // config digest (Docker's image ID)
	Manifest    v1.Hash   // manifest digest
	RepoTags    []string  // familiar names, e.g. "busybox:latest", "127.0.0.1:5000/app:1"
	RepoDigests []string  // familiar repo@sha256:... for pushed or pulled manifests
	Created     time.Time // the config's created time
	Size        int64     // sum of the layers' unpacked file sizes, as dockerd counts it
	Labels      map[string]string
	LastTagTime time.Time // when a tag last moved to this image (zero if never)
	// Layers are the manifest's layers, base first, with their unpacked sizes.
	Layers []Layer
}

// Layer is one layer of a stored image.
type Layer struct {
	Digest v1.Hash // the compressed blob's digest
	Size   int64   // the sum of its files' sizes, as dockerd counts a layer's size
}

// Dangling reports whether the image has no tag: `docker images` shows it as <none>.
func (im Image) Dangling() bool { return len(im.RepoTags) == 0 }

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock that stamps tag times (default time.Now).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// Files in the store directory besides the OCI layout.
const (
	indexFile     = "images.json"
	indexLockFile = "index.lock"
	gcLockFile    = "gc.lock"
	tmpDir        = "tmp"
	blobsDir      = "blobs"
)

// Open opens (creating if needed) the store in dir.
func Open(dir string, opts ...Option) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", dir, err)
	}
	s := &Store{dir: abs, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	for _, d := range []string{abs, filepath.Join(abs, tmpDir), filepath.Join(abs, blobsDir, "sha256")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("store: creating %s: %w", d, err)
		}
	}
	s.indexLock = flock.New(filepath.Join(abs, indexLockFile))
	if err := s.ensureLayoutMarker(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.lockIndex(context.Background()); err != nil {
		return nil, err
	}
	defer s.unlockIndex()
	if err := s.reloadLocked(true); err != nil {
		return nil, err
	}
	// The layout's index.json is derived from images.json; a crash between writing the
	// two leaves it stale, so it is rewritten on every open.
	if err := s.writeLayoutIndex(s.idx); err != nil {
		return nil, err
	}
	return s, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) indexPath() string { return filepath.Join(s.dir, indexFile) }

// lockIndex takes the cross-process index lock; the caller holds s.mu.
func (s *Store) lockIndex(ctx context.Context) error {
	ok, err := s.indexLock.TryLockContext(ctx, 20*time.Millisecond)
	if err != nil {
		return fmt.Errorf("store: locking %s: %w", s.indexLock.Path(), err)
	}
	if !ok {
		return fmt.Errorf("store: locking %s: %w", s.indexLock.Path(), ctx.Err())
	}
	return nil
}

func (s *Store) unlockIndex() { _ = s.indexLock.Unlock() }

// reloadLocked rereads the index file if another writer replaced it since it was read
// (or always, with force). The caller holds s.mu.
func (s *Store) reloadLocked(force bool) error {
	if !force && s.idx != nil {
		fi, err := os.Stat(s.indexPath())
		switch {
		case errors.Is(err, fs.ErrNotExist) && s.stamp == (fileStamp{}):
			return nil
		case err == nil && stampOf(fi) == s.stamp:
			return nil
		}
	}
	ix, stamp, err := readIndex(s.indexPath())
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	s.idx, s.stamp = ix, stamp
	return nil
}

// view runs fn on the current index for reading. fn must not keep or change it.
func (s *Store) view(fn func(ix *index) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reloadLocked(false); err != nil {
		return err
	}
	return fn(s.idx)
}

// update runs fn on a copy of the freshest index under both locks and, if fn succeeds
// and reports a change, commits the copy: images.json atomically, then the layout's
// index.json.
func (s *Store) update(ctx context.Context, fn func(ix *index) (changed bool, err error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.lockIndex(ctx); err != nil {
		return err
	}
	defer s.unlockIndex()
	if err := s.reloadLocked(false); err != nil {
		return err
	}
	next := s.idx.clone()
	changed, err := fn(next)
	if err != nil || !changed {
		return err
	}
	return s.commitLocked(next)
}

// commitLocked writes ix as the new index. The caller holds s.mu and the index lock.
func (s *Store) commitLocked(ix *index) error {
	data, err := marshalIndex(ix)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(s.indexPath(), data, 0o600, atomicfile.BeforeRename(s.beforeRename)); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	fi, err := os.Stat(s.indexPath())
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	s.idx, s.stamp = ix, stampOf(fi)
	return s.writeLayoutIndex(ix)
}

// Put stores img (its blobs and config) and points each tag at it, moving a tag that
// named another image (which stays, dangling, as in dockerd). Layers stream from img
// to disk. It returns the image ID.
func (s *Store) Put(ctx context.Context, img v1.Image, tags ...name.Tag) (v1.Hash, error) {
	keys := make([]string, 0, len(tags))
	for _, t := range tags {
		k, err := tagKey(t)
		if err != nil {
			return v1.Hash{}, fmt.Errorf("store: tag %s: %w", t, err)
		}
		keys = append(keys, k)
	}
	gc, err := s.holdBlobs(ctx)
	if err != nil {
		return v1.Hash{}, err
	}
	defer gc.release()
	rec, id, err := s.writeImage(ctx, img)
	if err != nil {
		return v1.Hash{}, err
	}
	err = s.update(ctx, func(ix *index) (bool, error) {
		if old := ix.Images[id.String()]; old != nil {
			rec.RepoDigests = old.RepoDigests
			rec.LastTagTime = old.LastTagTime
		}
		for _, l := range rec.Layers {
			ix.ContentSizes[l] = rec.layerSizes[l]
		}
		if len(keys) > 0 {
			rec.LastTagTime = s.now().UTC()
		}
		ix.Images[id.String()] = &rec.imageRecord
		for _, k := range keys {
			ix.Tags[k] = id.String()
		}
		return true, nil
	})
	if err != nil {
		return v1.Hash{}, err
	}
	return id, nil
}

// Resolve finds an image by tag (familiar or full: "busybox" is
// docker.io/library/busybox:latest), full ID ("sha256:…" or 64 hex), a unique ID
// prefix of at least 4 hex digits, or repo@sha256 digest.
func (s *Store) Resolve(ref string) (v1.Image, *Image, error) {
	var (
		im  Image
		err error
	)
	err = s.view(func(ix *index) error {
		id, err := resolveIn(ix, ref)
		if err != nil {
			return err
		}
		im = describe(ix, id)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	img, err := s.image(im.Manifest)
	if err != nil {
		return nil, nil, fmt.Errorf("store: image %s: %w", im.ID, err)
	}
	return img, &im, nil
}

// List returns every stored image, newest first (as `docker images` orders them).
func (s *Store) List() ([]Image, error) {
	var out []Image
	err := s.view(func(ix *index) error {
		out = make([]Image, 0, len(ix.Images))
		for id := range ix.Images {
			out = append(out, describe(ix, id))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID.String() < out[j].ID.String()
	})
	return out, nil
}

// describe turns the index's record of id into an Image.
func describe(ix *index, id string) Image {
	rec := ix.Images[id]
	im := Image{
		Created:     rec.Created,
		Size:        rec.Size,
		LastTagTime: rec.LastTagTime,
	}
	im.ID, _ = v1.NewHash(id)
	im.Manifest, _ = v1.NewHash(rec.Manifest)
	for _, l := range rec.Layers {
		d, _ := v1.NewHash(l)
		im.Layers = append(im.Layers, Layer{Digest: d, Size: ix.ContentSizes[l]})
	}
	for _, t := range ix.tagsOf(id) {
		im.RepoTags = append(im.RepoTags, familiarKey(t))
	}
	digests := append([]string(nil), rec.RepoDigests...)
	sort.Strings(digests)
	for _, d := range digests {
		im.RepoDigests = append(im.RepoDigests, familiarKey(d))
	}
	if len(rec.Labels) > 0 {
		im.Labels = make(map[string]string, len(rec.Labels))
		for k, v := range rec.Labels {
			im.Labels[k] = v
		}
	}
	return im
}
