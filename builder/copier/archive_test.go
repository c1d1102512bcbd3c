package copier

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/kiln-build/kiln/compression/compressiontest"
)

// tarEntry is one entry of a test archive: a regular file unless typ says otherwise.
type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
	uid, gid         int
}

func plainTar(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode,
			Uid: e.uid, Gid: e.gid, ModTime: time.Unix(1000000000, 0), Size: int64(len(e.body))}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			if _, err := io.WriteString(tw, e.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipTar(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(plainTar(t, entries...)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func xzTar(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := xz.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(plainTar(t, entries...)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstdTar(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(plainTar(t, entries...)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipBytes(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestIsArchive checks detection by content: compressed or plain tars are archives
// whatever their name; an empty tar, a compressed non-tar and text are not.
func TestIsArchive(t *testing.T) {
	t.Parallel()
	e := tarEntry{name: "inside", body: "x"}
	bz2, err := os.ReadFile(filepath.Join("testdata", "inside.tar.bz2"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data []byte
		want bool
	}{
		{"plain", plainTar(t, e), true},
		{"gzip", gzipTar(t, e), true},
		{"bzip2", bz2, true},
		{"xz", xzTar(t, e), true},
		{"zstd", zstdTar(t, e), true},
		{"zstd-skippable-frame-first", append([]byte{0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0}, zstdTar(t, e)...), true},
		{"zstd-window-over-the-bound", compressiontest.HugeWindowZstd(plainTar(t, e)), false}, // refused, so a plain file
		{"empty-tar", plainTar(t), false},
		{"gzip-text", gzipBytes(t, []byte("just text, not a tar")), false},
		{"truncated-gzip", gzipTar(t, e)[:12], false},
		{"text", []byte("hello"), false},
		{"empty", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(t.TempDir(), "file.txt") // the name never matters
			if err := os.WriteFile(p, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := isArchive(p)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("isArchive = %v, want %v", got, tc.want)
			}
		})
	}
}
