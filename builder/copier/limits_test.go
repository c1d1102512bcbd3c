package copier

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/compression"
	"github.com/kiln-build/kiln/compression/compressiontest"
)

// TestAddArchiveBomb: ADD of a small archive that expands to 10 GiB (written to the
// context by streaming, a few MiB at most) fails fast on the ratio or size limit and
// leaves the build root nearly empty.
func TestAddArchiveBomb(t *testing.T) {
	t.Parallel()
	const size = 10 << 30
	tests := []struct {
		name      string
		kind      string
		maxBytes  int64
		maxRatio  int64
		wantError string
	}{
		{"gzip ratio", "gzip", 0, 100, "ADD bomb expands more than 100 times"},
		{"zstd ratio", "zstd", 0, 100, "(--max-decompression-ratio)"},
		{"zstd size", "zstd", 16 << 20, 0, "ADD bomb expands to more than 16777216 bytes (--max-add-size)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.kind == "gzip" && testing.Short() {
				t.Skip("writes a 10 MiB gzip file")
			}
			ctxDir, root := t.TempDir(), t.TempDir()
			var head bytes.Buffer
			tar.NewWriter(&head).WriteHeader(&tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Mode: 0o644, Size: size})
			bomb := compressiontest.Bomb(tt.kind, head.Bytes(), size)
			f, err := os.Create(filepath.Join(ctxDir, "bomb"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, bomb); err != nil {
				t.Fatal(err)
			}
			f.Close()
			start := time.Now()
			_, err = Copy(context.Background(), Source{Root: ctxDir, Context: true}, root,
				Request{Sources: []string{"bomb"}, Dest: "/x/", Add: true, Chown: &Owner{}, MaxArchiveBytes: tt.maxBytes, MaxArchiveRatio: tt.maxRatio})
			if !errors.Is(err, compression.ErrBomb) || !strings.Contains(err.Error(), tt.wantError) {
				t.Fatalf("error %v, want ErrBomb with %q", err, tt.wantError)
			}
			if d := time.Since(start); d > time.Minute {
				t.Errorf("took %v", d)
			}
			var du int64
			filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					fi, _ := d.Info()
					du += fi.Size()
				}
				return nil
			})
			if du > 128<<20 {
				t.Errorf("the bomb wrote %d bytes into the root", du)
			}
		})
	}
}

// TestCopySymlinkLoops: COPY from or into a path through a symlink loop, and ADD of an
// archive with one, fail with ELOOP rather than hang.
func TestCopySymlinkLoops(t *testing.T) {
	t.Parallel()
	loopTar := plainTar(t,
		tarEntry{name: "l", typ: tar.TypeSymlink, link: "m"},
		tarEntry{name: "m", typ: tar.TypeSymlink, link: "l"},
		tarEntry{name: "l/file", body: "x"},
	)
	tests := []struct {
		name string
		ctx  []spec
		root []spec
		req  Request
	}{
		{"source through a loop", []spec{"a->b", "b->a"}, nil, Request{Sources: []string{"a/file"}, Dest: "/x"}},
		{"source is a loop", []spec{"a->b", "b->a"}, nil, Request{Sources: []string{"a"}, Dest: "/x/"}},
		{"destination through a loop", []spec{"f=1"}, []spec{"d->e", "e->d"}, Request{Sources: []string{"f"}, Dest: "/d/x"}},
		{"ADD archive with a loop", nil, nil, Request{Sources: []string{"loop.tar"}, Dest: "/x/", Add: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctxDir, root := t.TempDir(), t.TempDir()
			makeTree(t, ctxDir, tt.ctx...)
			makeTree(t, root, tt.root...)
			if err := os.WriteFile(filepath.Join(ctxDir, "loop.tar"), loopTar, 0o644); err != nil {
				t.Fatal(err)
			}
			req := tt.req
			req.Chown = &Owner{}
			done := make(chan error, 1)
			go func() {
				_, err := Copy(context.Background(), Source{Root: ctxDir, Context: true}, root, req)
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, syscall.ELOOP) {
					t.Fatalf("error %v, want ELOOP", err)
				}
				t.Log(err)
			case <-time.After(30 * time.Second):
				t.Fatal("Copy hangs on a symlink loop")
			}
		})
	}
}
