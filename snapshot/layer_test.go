package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// longDir makes a path past tar's 100-byte name field.
var longDir = "long/" + strings.Repeat("x", 120)

// goldenTree extracts the fixed tree the golden layer is written from.
func goldenTree(t *testing.T) string {
	t.Helper()
	skipUnlessRoot(t) // owners and capabilities need root
	root := t.TempDir()
	caps := string([]byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	base := makeTar(t,
		dir("dev/", 0o755),
		dir("long/", 0o755),
		dir("etc/", 0o755),
		withMode(file("etc/suid", "s"), 0o4755),
		dir("usr/", 0o755),
		dir("usr/bin/", 0o755),
		withOwner(withMode(withXattr(file("usr/bin/tool", "tool"), capabilityAttr, caps), 0o750), 1000, 1000),
		hardlink("usr/bin/tool-link", "usr/bin/tool"),
		symlink("usr/bin/sh", "tool"),
		dir("opq/", 0o700),
		file("opq/new", "n"),
		dir("var/", 0o755),
		dir(longDir+"/", 0o755),
		file(longDir+"/file", "long"),
		device("dev/fifo", tar.TypeFifo, 0, 0),
	)
	mustDo(t, Extract(context.Background(), root, "/", base, WithOwnership(true)))
	return root
}

var goldenChanges = &Changes{
	Changed: []string{
		"/dev/fifo", "/etc/suid", "/nope/missing", "/opq", "/opq/new", "/usr/bin/sh", "/usr/bin/tool",
		"/usr/bin/tool-link", "/" + longDir + "/file",
	},
	Deleted: []string{"/etc/gone", "/var/old"},
	Opaque:  []string{"/opq"},
}

func TestWriteLayerGolden(t *testing.T) {
	t.Parallel()
	root := goldenTree(t)
	l, err := WriteLayer(context.Background(), root, t.TempDir(), goldenChanges, WithCompression(Uncompressed))
	mustDo(t, err)
	got := listLayer(t, l)
	golden := filepath.Join("testdata", "layer.golden")
	if *update {
		mustDo(t, os.WriteFile(golden, []byte(got), 0o644))
	}
	want, err := os.ReadFile(golden)
	mustDo(t, err)
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("layer listing (-want +got):\n%s", diff)
	}
	if n := strings.Count(got, "\n"); l.Files() != n {
		t.Errorf("Files() = %d, tar has %d entries", l.Files(), n)
	}
	if n, ok := l.ContentSize(); !ok || n != tarContentSize(t, l) {
		t.Errorf("ContentSize() = %d, %v; the tar's regular files and symlink targets make %d", n, ok, tarContentSize(t, l))
	}
}

// tarContentSize counts l's content as dockerd counts an image's size: regular files'
// sizes and symlink targets' lengths.
func tarContentSize(t *testing.T, l *Layer) int64 {
	t.Helper()
	rc, err := l.Uncompressed()
	mustDo(t, err)
	defer rc.Close()
	var n int64
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return n
		}
		mustDo(t, err)
		switch hdr.Typeflag {
		case tar.TypeReg:
			n += hdr.Size
		case tar.TypeSymlink:
			n += int64(len(hdr.Linkname))
		}
	}
}

// listLayer describes each tar entry of l on a line.
func listLayer(t *testing.T, l *Layer) string {
	t.Helper()
	rc, err := l.Uncompressed()
	mustDo(t, err)
	defer rc.Close()
	var b strings.Builder
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		mustDo(t, err)
		fmt.Fprintf(&b, "%s %c %04o %d:%d size=%d", hdr.Name, hdr.Typeflag, hdr.Mode, hdr.Uid, hdr.Gid, hdr.Size)
		if hdr.Linkname != "" {
			fmt.Fprintf(&b, " link=%s", hdr.Linkname)
		}
		fmt.Fprintf(&b, " mtime=%d", hdr.ModTime.Unix())
		if hdr.Uname != "" || hdr.Gname != "" || !hdr.AccessTime.IsZero() || !hdr.ChangeTime.IsZero() {
			fmt.Fprintf(&b, " EXTRA(uname=%q gname=%q atime=%v ctime=%v)", hdr.Uname, hdr.Gname, hdr.AccessTime, hdr.ChangeTime)
		}
		for k := range hdr.PAXRecords {
			fmt.Fprintf(&b, " pax=%s", k)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestWriteLayerDigests(t *testing.T) {
	t.Parallel()
	tests := []struct {
		c    Compression
		mt   types.MediaType
		opts []LayerOption
	}{
		{Gzip, types.DockerLayer, nil},
		{Gzip, types.DockerLayer, []LayerOption{WithLevel(1)}},
		{Zstd, types.OCILayerZStd, nil},
		{Zstd, types.OCILayerZStd, []LayerOption{WithLevel(19)}},
		{Uncompressed, types.OCIUncompressedLayer, nil},
	}
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"/a/b": strings.Repeat("data ", 10000), "/c": "c"})
	ch := &Changes{Changed: []string{"/a/b", "/c"}, Deleted: []string{"/d"}}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.mt, len(tt.opts)), func(t *testing.T) {
			t.Parallel()
			opts := append([]LayerOption{WithCompression(tt.c)}, tt.opts...)
			l, err := WriteLayer(context.Background(), root, t.TempDir(), ch, opts...)
			mustDo(t, err)
			if mt, _ := l.MediaType(); mt != tt.mt {
				t.Errorf("MediaType() = %s, want %s", mt, tt.mt)
			}
			blob, err := os.ReadFile(l.Path())
			mustDo(t, err)
			digest, _ := l.Digest()
			if want := sha256Hex(blob); digest.Hex != want || filepath.Base(l.Path()) != "sha256-"+want {
				t.Errorf("Digest() = %s, path %s; blob sha256 is %s", digest, l.Path(), want)
			}
			if size, _ := l.Size(); size != int64(len(blob)) {
				t.Errorf("Size() = %d, blob has %d bytes", size, len(blob))
			}
			rc, err := l.Uncompressed()
			mustDo(t, err)
			raw, err := io.ReadAll(rc)
			mustDo(t, err)
			mustDo(t, rc.Close())
			if diffID, _ := l.DiffID(); diffID.Hex != sha256Hex(raw) {
				t.Errorf("DiffID() = %s, uncompressed sha256 is %s", diffID, sha256Hex(raw))
			}
			if l.Files() != 4 { // a/, a/b, c, .wh.d and nothing else
				t.Errorf("Files() = %d, want 4", l.Files())
			}
			again := LayerFromFile(l.Path(), digest, must(l.DiffID()), must(l.Size()), tt.mt)
			if l.WrittenFile() != l.Path() || again.WrittenFile() != "" {
				t.Errorf("WrittenFile() = %q written, %q re-opened; want the path, then none", l.WrittenFile(), again.WrittenFile())
			}
			if tt.c == Gzip { // validate.Layer assumes gzip
				mustDo(t, validate.Layer(l))
				mustDo(t, validate.Layer(again))
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestWriteLayerReproducible(t *testing.T) {
	t.Parallel()
	files := map[string]string{"/app/main": "bin", "/app/conf/x.yaml": "x: 1", "/etc/motd": "hi"}
	ch := &Changes{Changed: []string{"/app", "/app/conf", "/app/conf/x.yaml", "/app/main", "/etc/motd"}}
	mkTree := func(t *testing.T, when time.Time) string {
		root := t.TempDir()
		writeFiles(t, root, files)
		for _, p := range []string{"/app/main", "/app/conf/x.yaml", "/etc/motd", "/app/conf", "/app", "/etc"} {
			mustDo(t, os.Chtimes(filepath.Join(root, p), when, when))
		}
		return root
	}
	a := mkTree(t, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	b := mkTree(t, time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC))
	for _, c := range []Compression{Gzip, Zstd} {
		digest := func(root string, reproducible bool) string {
			l, err := WriteLayer(context.Background(), root, t.TempDir(), ch, WithCompression(c), WithReproducible(reproducible))
			mustDo(t, err)
			return must(l.Digest()).String()
		}
		if da, db := digest(a, true), digest(b, true); da != db {
			t.Errorf("compression %d: reproducible digests differ: %s vs %s", c, da, db)
		}
		if da, db := digest(a, false), digest(b, false); da == db {
			t.Errorf("compression %d: digests without reproducible are equal for different mtimes", c)
		}
	}
}

func TestWriteLayerIgnoreAndCancel(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"/keep": "k", "/secret/x": "s"})
	ch := &Changes{Changed: []string{"/keep", "/secret", "/secret/x"}, Deleted: []string{"/secret/y"}}
	l, err := WriteLayer(context.Background(), root, t.TempDir(), ch,
		WithCompression(Uncompressed), WithLayerIgnore(NewIgnore("/secret")))
	mustDo(t, err)
	want := fmt.Sprintf("keep 0 0644 %d:%d size=1", os.Getuid(), os.Getgid())
	if got := listLayer(t, l); !strings.HasPrefix(got, want) || strings.Count(got, "\n") != 1 {
		t.Errorf("layer = %q, want only %q", got, want)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	if _, err := WriteLayer(ctx, root, dir, ch); err == nil {
		t.Error("WriteLayer with a cancelled context succeeded")
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("a failed WriteLayer left %d files behind", len(left))
	}
}

// TestWriteLayerWriteback: a blob written with WithWriteback (its file started to disk
// every writebackChunk) is the blob written without it, byte for byte.
func TestWriteLayerWriteback(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	big := strings.Repeat("0123456789abcdef", (writebackChunk+writebackChunk/2)/16)
	writeFiles(t, root, map[string]string{"/big": big, "/small": "s"})
	ch := &Changes{Changed: []string{"/big", "/small"}}
	blob := func(on bool) []byte {
		l, err := WriteLayer(context.Background(), root, t.TempDir(), ch, WithCompression(Uncompressed), WithWriteback(on))
		mustDo(t, err)
		b, err := os.ReadFile(l.Path())
		mustDo(t, err)
		if d := must(l.Digest()); d.Hex != sha256Hex(b) {
			t.Errorf("writeback %v: digest %s, blob sha256 %s", on, d, sha256Hex(b))
		}
		return b
	}
	without, with := blob(false), blob(true)
	if len(with) < writebackChunk || !bytes.Equal(with, without) {
		t.Errorf("the blob with writeback (%d bytes) is not the blob without (%d bytes)", len(with), len(without))
	}
}
