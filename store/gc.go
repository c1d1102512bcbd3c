package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
)

// blobHold is a shared hold on the store's blobs: while any is held, in this process or
// another, garbage collection waits, so blobs written but not yet named by the index
// are safe.
type blobHold struct{ lock *flock.Flock }

// holdBlobs takes a shared hold. Each hold has its own lock file descriptor, so holds
// taken by concurrent Puts are independent.
func (s *Store) holdBlobs(ctx context.Context) (*blobHold, error) {
	l := flock.New(filepath.Join(s.dir, gcLockFile))
	ok, err := l.TryRLockContext(ctx, 20*time.Millisecond)
	if err != nil || !ok {
		return nil, fmt.Errorf("store: locking %s: %w", l.Path(), errors.Join(err, ctx.Err()))
	}
	return &blobHold{lock: l}, nil
}

func (h *blobHold) release() { _ = h.lock.Unlock() }

// exclusiveBlobs is an exclusive hold on the blobs: no Put is writing or committing.
type exclusiveBlobs struct{ lock *flock.Flock }

func (s *Store) lockBlobsExclusive(ctx context.Context) (*exclusiveBlobs, error) {
	l := flock.New(filepath.Join(s.dir, gcLockFile))
	ok, err := l.TryLockContext(ctx, 20*time.Millisecond)
	if err != nil || !ok {
		return nil, fmt.Errorf("store: locking %s: %w", l.Path(), errors.Join(err, ctx.Err()))
	}
	return &exclusiveBlobs{lock: l}, nil
}

func (e *exclusiveBlobs) release() { _ = e.lock.Unlock() }

// Hold keeps garbage collection from removing any blob until release is called. Hold
// it while reading an image obtained from Resolve at length (a push, a save): a
// concurrent Delete then leaves the deleted image's blobs for a later collection
// instead of removing them mid-read.
func (s *Store) Hold(ctx context.Context) (release func(), err error) {
	h, err := s.holdBlobs(ctx)
	if err != nil {
		return nil, err
	}
	return h.release, nil
}

// tryCollectGarbage collects unless blobs are held (being written or read), in which
// case it leaves them to a later collection and reports 0.
func (s *Store) tryCollectGarbage() (int64, error) {
	l := flock.New(filepath.Join(s.dir, gcLockFile))
	ok, err := l.TryLock()
	if err != nil {
		return 0, fmt.Errorf("store: locking %s: %w", l.Path(), err)
	}
	if !ok {
		return 0, nil
	}
	defer func() { _ = l.Unlock() }()
	return s.collectGarbageHeld()
}

// CollectGarbage removes blobs no stored image refers to (left by rmi --no-prune, or by
// a crash between writing blobs and committing the index) and returns the bytes freed.
func (s *Store) CollectGarbage(ctx context.Context) (int64, error) {
	gc, err := s.lockBlobsExclusive(ctx)
	if err != nil {
		return 0, err
	}
	defer gc.release()
	return s.collectGarbageHeld()
}

// collectGarbageHeld collects with the exclusive blob hold already taken.
func (s *Store) collectGarbageHeld() (int64, error) {
	var snapshot *index
	if err := s.view(func(ix *index) error { snapshot = ix.clone(); return nil }); err != nil {
		return 0, err
	}
	return s.collectGarbage(snapshot)
}

// collectGarbage removes blobs no image in ix refers to, and leftovers in tmp/, and
// returns the bytes freed. The caller holds the exclusive blob hold, so no blob is being
// written and no image is being added; ix is a snapshot of the committed index.
func (s *Store) collectGarbage(ix *index) (int64, error) {
	keep := map[string]bool{}
	for id, rec := range ix.Images {
		keep[id] = true
		keep[rec.Manifest] = true
		for _, l := range rec.Layers {
			keep[l] = true
		}
	}
	var freed int64
	root := filepath.Join(s.dir, blobsDir)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		algo, hexPart := filepath.Split(rel)
		if keep[filepath.Clean(algo)+":"+hexPart] {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		freed += fi.Size()
		return nil
	})
	if err != nil {
		return freed, fmt.Errorf("store: collecting unused blobs: %w", err)
	}
	entries, err := os.ReadDir(filepath.Join(s.dir, tmpDir))
	if err != nil {
		return freed, fmt.Errorf("store: %w", err)
	}
	for _, e := range entries {
		p := filepath.Join(s.dir, tmpDir, e.Name())
		if fi, err := e.Info(); err == nil {
			freed += fi.Size()
		}
		if err := os.RemoveAll(p); err != nil {
			return freed, fmt.Errorf("store: removing %s: %w", p, err)
		}
	}
	return freed, nil
}
