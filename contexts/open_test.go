package contexts

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "file"), "x", 0o644)
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "escape")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		spec    string
		opts    []OpenOption
		errPart string
	}{
		{"stdin not given", "tar://stdin", nil, "no standard input"},
		{"missing archive", "tar://" + filepath.Join(dir, "nope.tar"), nil, "nope.tar"},
		{"not an archive", "tar://" + filepath.Join(dir, "file"), nil, "file"},
		{"unsupported scheme", "ftp://host/key.tar.gz", nil, "unknown context source ftp://"},
		{"sub-path climbs out", dir, []OpenOption{WithSubPath("../x")}, "inside the context"},
		{"sub-path absolute", dir, []OpenOption{WithSubPath("/etc")}, "inside the context"},
		{"sub-path missing", dir, []OpenOption{WithSubPath("nope")}, "nope"},
		{"sub-path is a file", dir, []OpenOption{WithSubPath("file")}, "not a directory"},
		// The symlink resolves inside the context, where its target does not exist.
		{"sub-path symlink out", dir, []OpenOption{WithSubPath("escape")}, "escape"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Open(context.Background(), tt.spec, append(tt.opts, WithTempDir(t.TempDir()))...)
			if err == nil || !strings.Contains(err.Error(), tt.errPart) {
				c.Close()
				t.Fatalf("Open(%q) = %v, want an error naming %q", tt.spec, err, tt.errPart)
			}
		})
	}
}

func TestOpenTarCompressions(t *testing.T) {
	t.Parallel()
	var plain bytes.Buffer
	writeSuiteTar(t, &plain)
	var zst bytes.Buffer
	zw, err := zstd.NewWriter(&zst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(plain.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ctx.tar.zst")
	if err := os.WriteFile(path, zst.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	c, err := Open(context.Background(), "tar://"+path, WithTempDir(tmp))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(c.Dir, "Dockerfile")); err != nil || string(got) != suiteTree["Dockerfile"].content {
		t.Errorf("Dockerfile = %q, %v", got, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("Close left %v", left)
	}
}

func TestOpenTarLimits(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	writeSuiteTar(t, &b)
	tmp := t.TempDir()
	_, err := Open(context.Background(), "tar://stdin", WithStdin(&b), WithTempDir(tmp), WithArchiveOptions(WithMaxBytes(4)))
	if err == nil || !strings.Contains(err.Error(), ErrLimitExceeded.Error()) {
		t.Fatalf("Open = %v, want %v", err, ErrLimitExceeded)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("a failed Open left %v", left)
	}
}

func TestDirContextCloseKeepsDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("Close removed a directory context: %v", err)
	}
}
