package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestDeleteNoPruneKeepsBlobs(t *testing.T) {
	t.Parallel()
	s := openStore(t, t.TempDir())
	put(t, s, testImage(t, time.Unix(100, 0), nil), "a")
	if _, err := s.Delete(context.Background(), "a", NoPrune()); err != nil {
		t.Fatal(err)
	}
	blobs, _ := os.ReadDir(filepath.Join(s.dir, blobsDir, "sha256"))
	if len(blobs) != 4 { // two layers, config, manifest
		t.Fatalf("--no-prune left %d blobs, want 4", len(blobs))
	}
	freed, err := s.CollectGarbage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	blobs, _ = os.ReadDir(filepath.Join(s.dir, blobsDir, "sha256"))
	if len(blobs) != 0 || freed == 0 {
		t.Errorf("CollectGarbage freed %d bytes, left %d blobs", freed, len(blobs))
	}
}

func TestCollectGarbageRemovesLeftovers(t *testing.T) {
	t.Parallel()
	s := openStore(t, t.TempDir())
	put(t, s, testImage(t, time.Unix(100, 0), nil), "keep")
	orphan := filepath.Join(s.dir, blobsDir, "sha256", hex64('c'))
	stale := filepath.Join(s.dir, tmpDir, "half-written")
	for _, p := range []string{orphan, stale} {
		if err := os.WriteFile(p, []byte("12345"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	freed, err := s.CollectGarbage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if freed != 10 {
		t.Errorf("freed %d bytes, want 10", freed)
	}
	for _, p := range []string{orphan, stale} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s survived garbage collection", p)
		}
	}
	got, _, err := s.Resolve("keep")
	if err != nil {
		t.Fatal(err)
	}
	if err := validateImage(got); err != nil {
		t.Errorf("kept image broken: %v", err)
	}
}

func TestDeleteLeavesHeldBlobs(t *testing.T) {
	t.Parallel()
	s := openStore(t, t.TempDir())
	ctx := context.Background()
	put(t, s, testImage(t, time.Unix(100, 0), nil), "a")
	img, _, err := s.Resolve("a")
	if err != nil {
		t.Fatal(err)
	}
	release, err := s.Hold(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	// The image is gone from the index, but a reader holding the blobs can finish.
	if err := validateImage(img); err != nil {
		t.Errorf("held image unreadable after Delete: %v", err)
	}
	release()
	freed, err := s.CollectGarbage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	blobs, _ := os.ReadDir(filepath.Join(s.dir, blobsDir, "sha256"))
	if freed == 0 || len(blobs) != 0 {
		t.Errorf("after release: freed %d, %d blobs left", freed, len(blobs))
	}
}
