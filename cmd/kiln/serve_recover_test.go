package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/isolation"
)

// A state directory as a server killed mid-build leaves it: scratch directories (one
// with a mounted root), cache temporaries. recoverState removes them and keeps the
// rest; a second server on the same directory cleans nothing.
func TestRecoverState(t *testing.T) {
	state := t.TempDir()
	write := func(rel, data string) {
		t.Helper()
		p := filepath.Join(state, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	gone := []string{
		"builds/api-build-1/state/root/etc/passwd",
		"builds/bk-build-2/context/file",
		"builds/api-load-3/image.tar",
		"cache/build/blobs/sha256-abc.tmp-0123",
		"cache/build/steps/ab/.abcdef.tmp-999",
		"cache/mounts/e1/new-12/data/x",
		"cache/mounts/e1/.id.tmp-77",
	}
	kept := []string{
		"builds/build.lock",
		"builds/other/file",
		"cache/build/blobs/sha256-abc",
		"cache/build/steps/ab/abcdef",
		"cache/mounts/e1/id",
		"cache/mounts/e1/data/file.tmp-kept",
	}
	lg := logrus.New()
	lg.SetOutput(io.Discard)
	// A server runs; its builds leave these behind.
	running, err := recoverState(state, lg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range append(append([]string{}, gone...), kept...) {
		write(p, "x")
	}
	mounted := ""
	if os.Geteuid() == 0 {
		mounted = filepath.Join(state, "builds", "api-build-1", "state", "merged")
		if err := os.Mkdir(mounted, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", mounted, "tmpfs", 0, "size=1m"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = unix.Unmount(mounted, unix.MNT_DETACH) })
	}
	// A second server while the first still runs: nothing is cleaned.
	second, err := recoverState(state, lg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range gone {
		if _, err := os.Stat(filepath.Join(state, p)); err != nil {
			t.Fatalf("a second server removed %s from under the first: %v", p, err)
		}
	}
	if second.alone || !running.alone {
		t.Errorf("alone: first server %v, second %v; want true, false", running.alone, second.alone)
	}
	second.Close()
	// Both end (killed); the next start cleans.
	running.Close()
	lock, err := recoverState(state, lg)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	for _, p := range gone {
		if _, err := os.Lstat(filepath.Join(state, p)); err == nil {
			t.Errorf("%s survived the start-up", p)
		}
	}
	for _, p := range kept {
		if _, err := os.Lstat(filepath.Join(state, p)); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
	if mounted != "" {
		if m, _ := mountsUnder(filepath.Join(state, "builds")); len(m) != 0 {
			t.Errorf("still mounted: %v", m)
		}
	}
}

func TestUnescapeMountPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{`/a/b`, `/a/b`},
		{`/a\040b`, `/a b`},
		{`/a\134b`, `/a\b`},
		{`/a\04`, `/a\04`},
	}
	for _, tt := range tests {
		if got := isolation.UnescapeMount(tt.in); got != tt.want {
			t.Errorf("UnescapeMount(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
