package contexts_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/compression/compressiontest"
	"github.com/kiln-build/kiln/contexts"
)

// tarHead is the header of one regular file of size bytes, without its content.
func tarHead(t *testing.T, name string, size int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := tar.NewWriter(&buf).WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// duBytes is how many bytes the files under dir take.
func duBytes(t *testing.T, dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// TestFromArchiveBomb streams 10 GiB decompression bombs (a ~10 MiB gzip body, a
// ~400 KiB zstd one, generated as they are read) at an extraction whose size limit
// would let them through: the ratio limit stops them after a few tens of megabytes.
func TestFromArchiveBomb(t *testing.T) {
	t.Parallel()
	const size = 10 << 30
	tests := []struct {
		kind string
		opts []contexts.ArchiveOption
		want string
	}{
		{"gzip", []contexts.ArchiveOption{contexts.WithMaxRatio(100)}, "expands more than 100 times"},
		{"zstd", []contexts.ArchiveOption{contexts.WithMaxRatio(100)}, "expands more than 100 times"},
		{"zstd", []contexts.ArchiveOption{contexts.WithMaxBytes(1 << 30)}, "more than 1073741824 bytes (--max-context-size)"},
	}
	for _, tt := range tests {
		t.Run(tt.kind+"/"+tt.want, func(t *testing.T) {
			t.Parallel()
			body := compressiontest.Bomb(tt.kind, tarHead(t, "zeros", size), size)
			defer body.Close()
			dir := t.TempDir()
			start := time.Now()
			_, err := contexts.FromArchive(context.Background(), body, dir, tt.opts...)
			if !errors.Is(err, contexts.ErrLimitExceeded) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want ErrLimitExceeded with %q", err, tt.want)
			}
			if du := duBytes(t, dir); du > 128<<20 {
				t.Errorf("the bomb wrote %d bytes before it was stopped", du)
			}
			if d := time.Since(start); d > time.Minute {
				t.Errorf("stopping the bomb took %v", d)
			}
		})
	}
}

// TestFromArchiveHostilePaths: names past PATH_MAX or too deep, and entries under a
// symlink loop, fail with a clear error rather than a hang or a half-made tree.
func TestFromArchiveHostilePaths(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat("d/", contexts.MaxPathDepth) + "f"
	long := strings.Repeat("x", 255) + "/" + strings.Repeat("y/", 2000) + "f"
	tests := []struct {
		name    string
		entries []*tar.Header
		want    string
		errno   error
	}{
		{"deeper than MaxPathDepth", []*tar.Header{{Name: deep, Typeflag: tar.TypeReg, Mode: 0o644}}, "path deeper than 1024 directories", nil},
		{"longer than PATH_MAX", []*tar.Header{{Name: long, Typeflag: tar.TypeReg, Mode: 0o644}}, "path longer than 4095 bytes", nil},
		{"symlink loop", []*tar.Header{
			{Name: "a", Typeflag: tar.TypeSymlink, Linkname: "b"},
			{Name: "b", Typeflag: tar.TypeSymlink, Linkname: "a"},
			{Name: "a/file", Typeflag: tar.TypeReg, Mode: 0o644},
		}, "a/file", syscall.ELOOP},
		{"self loop", []*tar.Header{
			{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "l/x"},
			{Name: "l/y/file", Typeflag: tar.TypeReg, Mode: 0o644},
		}, "l/y/file", syscall.ELOOP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			for _, h := range tt.entries {
				if err := tw.WriteHeader(h); err != nil {
					t.Fatal(err)
				}
			}
			tw.Close()
			done := make(chan error, 1)
			go func() {
				_, err := contexts.FromArchive(context.Background(), io.MultiReader(&buf), t.TempDir())
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("extraction hangs")
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one with %q", err, tt.want)
			}
			if tt.errno != nil && !errors.Is(err, tt.errno) {
				t.Errorf("error %v is not %v", err, tt.errno)
			}
		})
	}
}
