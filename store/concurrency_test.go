package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func appendLayers(img v1.Image, layers ...v1.Layer) (v1.Image, error) {
	return mutate.AppendLayers(img, layers...)
}

func validateImage(img v1.Image) error { return validate.Image(img) }

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return c
}

// TestConcurrentUse stores, tags, lists and deletes from many goroutines through two
// Store values on one directory (as two processes would share it) and checks that no
// change was lost.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	stores := []*Store{openStore(t, dir), openStore(t, dir)}
	ctx := context.Background()
	const n = 8
	images := make([]v1.Image, n)
	for i := range images {
		images[i] = testImage(t, time.Unix(int64(i), 0), nil)
	}
	victim := put(t, stores[0], testImage(t, time.Unix(1000, 0), nil), "victim")

	var wg sync.WaitGroup
	errs := make(chan error, 4*n)
	for i := 0; i < n; i++ {
		s := stores[i%2]
		wg.Add(3)
		go func() {
			defer wg.Done()
			if _, err := s.Put(ctx, images[i], mustTag(t, fmt.Sprintf("img%d", i))); err != nil {
				errs <- err
				return
			}
			if err := s.Tag(ctx, fmt.Sprintf("img%d", i), mustTag(t, fmt.Sprintf("alias%d", i))); err != nil {
				errs <- err
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := s.List(); err != nil {
				errs <- err
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := s.CollectGarbage(ctx); err != nil {
				errs <- err
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := stores[1].Delete(ctx, "victim"); err != nil {
			errs <- err
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	reopened := openStore(t, dir)
	for _, s := range append(stores, reopened) {
		for i := 0; i < n; i++ {
			img, im, err := s.Resolve(fmt.Sprintf("alias%d", i))
			if err != nil {
				t.Errorf("alias%d: %v", i, err)
				continue
			}
			if want := []string{fmt.Sprintf("alias%d:latest", i), fmt.Sprintf("img%d:latest", i)}; !cmp.Equal(im.RepoTags, want) {
				t.Errorf("img%d tags = %v, want %v", i, im.RepoTags, want)
			}
			if err := validate.Image(img); err != nil {
				t.Errorf("img%d broken (garbage collection raced a Put?): %v", i, err)
			}
		}
		if _, _, err := s.Resolve(victim.String()); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted image still resolves: %v", err)
		}
	}
}

// TestIndexWriteIsAtomic checks the index file is always either the old or the new
// version: a write stopped just before its rename leaves the old one in force, and a
// reader racing many writes never sees a partial file.
func TestIndexWriteIsAtomic(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openStore(t, dir)
	put(t, s, testImage(t, time.Unix(1, 0), nil), "a")
	before, err := os.ReadFile(s.indexPath())
	if err != nil {
		t.Fatal(err)
	}

	crash := errors.New("crash before rename")
	s.beforeRename = func(string) error { return crash }
	if err := s.Tag(context.Background(), "a", mustTag(t, "b")); !errors.Is(err, crash) {
		t.Fatalf("Tag with a crashing write: %v", err)
	}
	s.beforeRename = nil
	after, err := os.ReadFile(s.indexPath())
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Errorf("a write stopped before its rename changed the index file")
	}
	if _, _, err := openStore(t, dir).Resolve("b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the stopped tag is visible after reopening: %v", err)
	}
	if _, _, err := s.Resolve("b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the stopped tag is visible in the store that failed to write it: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if len(e.Name()) > 0 && e.Name()[0] == '.' {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}

	// A reader racing a writer.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	var reads int
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			data, err := os.ReadFile(s.indexPath())
			if err != nil {
				t.Errorf("reading the index mid-write: %v", err)
				return
			}
			var ix index
			if err := json.Unmarshal(data, &ix); err != nil {
				t.Errorf("the index was read half-written: %v", err)
				return
			}
			if ix.Tags["docker.io/library/a:latest"] == "" {
				t.Errorf("a version of the index lost tag a")
				return
			}
			reads++
		}
	}()
	for i := 0; i < 50; i++ {
		if err := s.Tag(context.Background(), "a", mustTag(t, fmt.Sprintf("t%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	<-done
	if reads == 0 {
		t.Error("the reader never read the index")
	}
}
