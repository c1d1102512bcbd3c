package contexts_test

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/contexts"
)

// TestFromArchiveMemoryFirst extracts one archive three ways — on disk, wholly in the
// memory directory, and into memory first, then moved to disk after the first file
// (the spill) — and wants the same tree every time: contents, modes, modification
// times, symlinks and hard links.
func TestFromArchiveMemoryFirst(t *testing.T) {
	t.Parallel()
	ro := entry{name: "ro/", typ: tar.TypeDir, mode: 0o555}
	data := tarball(t, true,
		file("Dockerfile", "FROM scratch\n"),
		dir("app/"),
		file("app/main.go", "package main\n"),
		entry{name: "app/run.sh", body: "#!/bin/sh\n", typ: tar.TypeReg, mode: 0o755},
		symlink("app/link", "main.go"),
		hardlink("app/hard", "app/main.go"),
		ro,
		file("ro/inside", "read-only parent\n"),
		file("late.txt", "after the spill\n"),
		file(".dockerignore", "late.txt\n"),
	)
	// times lists the modification times of everything but symlinks and the root itself
	// under root.
	times := func(root string) map[string]int64 {
		got := map[string]int64{}
		_ = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode()&os.ModeSymlink == 0 {
				rel, _ := filepath.Rel(root, p)
				got[rel] = fi.ModTime().Unix()
			}
			return nil
		})
		// The root has no entry in the archive: its time is when it was made.
		delete(got, ".")
		return got
	}
	onDisk, err := contexts.FromArchive(context.Background(), bytes.NewReader(data), filepath.Join(t.TempDir(), "disk"))
	if err != nil {
		t.Fatal(err)
	}
	wantListing, wantTimes := listing(t, onDisk.Dir), times(onDisk.Dir)

	cases := []struct {
		name   string
		spill  int64
		inDisk bool
	}{
		{"stays in memory", 1 << 20, false},
		{"spills after the first file", 1, true},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			disk, mem := filepath.Join(t.TempDir(), "disk"), filepath.Join(t.TempDir(), "mem")
			c, err := contexts.FromArchive(context.Background(), bytes.NewReader(data), disk, contexts.WithMemoryFirst(mem, tt.spill))
			if err != nil {
				t.Fatal(err)
			}
			wantDir := mem
			if tt.inDisk {
				wantDir = disk
				if _, err := os.Stat(mem); !os.IsNotExist(err) {
					t.Errorf("the memory directory is still there after the spill: %v", err)
				}
			}
			if c.Dir != wantDir {
				t.Errorf("context in %s, want %s", c.Dir, wantDir)
			}
			if d := cmp.Diff(wantListing, listing(t, c.Dir)); d != "" {
				t.Errorf("tree (-on disk +memory first):\n%s", d)
			}
			if d := cmp.Diff(wantTimes, times(c.Dir)); d != "" {
				t.Errorf("modification times (-on disk +memory first):\n%s", d)
			}
			a, errA := os.Stat(filepath.Join(c.Dir, "app/main.go"))
			b, errB := os.Stat(filepath.Join(c.Dir, "app/hard"))
			if errA != nil || errB != nil || a.Sys().(*syscall.Stat_t).Ino != b.Sys().(*syscall.Stat_t).Ino {
				t.Errorf("app/hard is not a hard link of app/main.go (%v, %v)", errA, errB)
			}
			if !c.Excluded("late.txt") {
				t.Error(".dockerignore was not read from the final directory")
			}
		})
	}
}
