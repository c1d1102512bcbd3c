package copier

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCopyFIFO checks that a named pipe inside a copied directory is recreated, not
// read (reading it would block forever), and that a socket is refused.
func TestCopyFIFO(t *testing.T) {
	t.Parallel()
	ctxDir, root := t.TempDir(), t.TempDir()
	makeTree(t, ctxDir, "d/f=x")
	if err := unix.Mkfifo(filepath.Join(ctxDir, "d/pipe"), 0o640); err != nil {
		t.Fatal(err)
	}
	req := Request{Sources: []string{"d"}, Dest: "/d", Chown: self()}
	_, err := Copy(context.Background(), Source{Root: ctxDir, Context: true}, root, req)
	skipIfUnprivileged(t, err)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(filepath.Join(root, "d/pipe"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeNamedPipe || fi.Mode().Perm() != 0o640 {
		t.Errorf("pipe copied as %v, want a named pipe with mode 0640", fi.Mode())
	}
}

// TestCopyIntoItself checks that a directory is never copied into its own subtree,
// which can only happen when the context lies inside the build root (in-place builds).
func TestCopyIntoItself(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	makeTree(t, root, "workspace/a=1")
	src := Source{Root: filepath.Join(root, "workspace"), Context: true}
	req := Request{Sources: []string{"."}, Dest: "/workspace/sub", Chown: self()}
	_, err := Copy(context.Background(), src, root, req)
	if err == nil || !strings.Contains(err.Error(), "into itself") {
		t.Fatalf("Copy error = %v, want a refusal to copy into itself", err)
	}
}

// TestCopySymlinkLoop checks that a source symlink loop is an error, not a hang.
func TestCopySymlinkLoop(t *testing.T) {
	t.Parallel()
	ctxDir := t.TempDir()
	makeTree(t, ctxDir, "a->b", "b->a")
	req := Request{Sources: []string{"a"}, Dest: "/x", Chown: self()}
	_, err := Copy(context.Background(), Source{Root: ctxDir, Context: true}, t.TempDir(), req)
	if err == nil {
		t.Fatal("Copy of a symlink loop succeeded")
	}
}

// TestCopyCancelled checks that a cancelled context stops a copy before it writes.
func TestCopyCancelled(t *testing.T) {
	t.Parallel()
	ctxDir, root := t.TempDir(), t.TempDir()
	makeTree(t, ctxDir, "d/f=x")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := Request{Sources: []string{"d"}, Dest: "/d", Chown: self()}
	_, err := Copy(ctx, Source{Root: ctxDir, Context: true}, root, req)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Copy error = %v, want context.Canceled", err)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("cancelled Copy wrote %d entries", len(entries))
	}
}
