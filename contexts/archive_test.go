package contexts_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/kiln-build/kiln/contexts"
)

// entry is one tar entry of a test archive.
type entry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func file(name, body string) entry {
	return entry{name: name, body: body, typ: tar.TypeReg, mode: 0o644}
}
func dir(name string) entry { return entry{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, to string) entry {
	return entry{name: name, link: to, typ: tar.TypeSymlink, mode: 0o777}
}
func hardlink(name, to string) entry {
	return entry{name: name, link: to, typ: tar.TypeLink, mode: 0o644}
}

var mtime = time.Unix(1700000000, 0)

// tarball writes entries; closed=false leaves out the end-of-archive blocks and the
// last file's padding, as the docker CLI does for `-f -` (docs/server.md, "A Dockerfile
// from stdin or outside the context").
func tarball(t *testing.T, closed bool, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, ModTime: mtime, Size: int64(len(e.body))}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if !closed {
		if err := tw.Flush(); err != nil {
			t.Fatal(err)
		}
		// Flush pads the last file to 512 bytes: cut the padding off again.
		if n := len(entries); n > 0 && len(entries[n-1].body)%512 != 0 {
			return buf.Bytes()[:buf.Len()-(512-len(entries[n-1].body)%512)]
		}
		return buf.Bytes()
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// listing describes every path under dir: "f 0644 content", "d 0755", "l -> target".
func listing(t *testing.T, root string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			to, _ := os.Readlink(p)
			got[rel] = "l -> " + to
		case fi.IsDir():
			got[rel] = "d " + modeString(fi)
		default:
			data, _ := os.ReadFile(p)
			got[rel] = "f " + modeString(fi) + " " + string(data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func modeString(fi os.FileInfo) string {
	m := fi.Mode() & os.ModePerm
	if fi.Mode()&os.ModeSetuid != 0 {
		m |= 0o4000
	}
	return fmt.Sprintf("0%o", uint32(m))
}

func TestFromArchive(t *testing.T) {
	t.Parallel()
	setuid := file("suid", "s")
	setuid.mode = 0o4755
	tests := []struct {
		name    string
		archive func(t *testing.T) []byte
		want    map[string]string
		wantErr string
	}{{
		name: "files, directories, links",
		archive: func(t *testing.T) []byte {
			return tarball(t, true, file("Dockerfile", "FROM scratch\n"), dir("sub/"), file("sub/a", "a"),
				symlink("abs", "/etc/passwd"), symlink("up", "../../etc/passwd"), hardlink("sub/b", "sub/a"), setuid)
		},
		want: map[string]string{
			"Dockerfile": "f 0644 FROM scratch\n", "sub": "d 0755", "sub/a": "f 0644 a", "sub/b": "f 0644 a",
			"abs": "l -> /etc/passwd", "up": "l -> ../../etc/passwd", "suid": "f 04755 s",
		},
	}, {
		name: "GNU tar ./ prefixes and absolute names are made relative",
		archive: func(t *testing.T) []byte {
			return tarball(t, true, dir("./"), file("./a", "1"), file("/abs/b", "2"), file("c/../d", "3"))
		},
		want: map[string]string{"a": "f 0644 1", "abs": "d 0755", "abs/b": "f 0644 2", "d": "f 0644 3"},
	}, {
		name: "no end-of-archive blocks, no padding (docker build -f -)",
		archive: func(t *testing.T) []byte {
			return tarball(t, false, file("a", "abc"), file(".dockerfile.0123", "FROM x\n"))
		},
		want: map[string]string{"a": "f 0644 abc", ".dockerfile.0123": "f 0644 FROM x\n"},
	}, {
		name: "a header cut short after complete entries ends the context",
		archive: func(t *testing.T) []byte {
			b := tarball(t, true, file("a", "abc"), file("b", "def"))
			return b[:512+512+100]
		},
		want: map[string]string{"a": "f 0644 abc"},
	}, {
		name:    "data cut short is an error",
		archive: func(t *testing.T) []byte { return tarball(t, false, file("a", "abcdef"))[:512+3] },
		wantErr: "unexpected EOF",
	}, {
		name:    "not a tar: dockerd's unexpected EOF",
		archive: func(*testing.T) []byte { return []byte("this is not a tar") },
		wantErr: "unexpected EOF",
	}, {
		name:    "empty body: empty context",
		archive: func(*testing.T) []byte { return nil },
		want:    map[string]string{},
	}, {
		name:    "dot-dot escape",
		archive: func(t *testing.T) []byte { return tarball(t, true, file("../evil", "x")) },
		wantErr: `"../evil": path escapes the context`,
	}, {
		name:    "dot-dot escape in the middle",
		archive: func(t *testing.T) []byte { return tarball(t, true, file("a/../../evil", "x")) },
		wantErr: "path escapes the context",
	}, {
		name:    "absolute dot-dot escape",
		archive: func(t *testing.T) []byte { return tarball(t, true, file("/../evil", "x")) },
		wantErr: "path escapes the context",
	}, {
		name:    "hard link out of the context",
		archive: func(t *testing.T) []byte { return tarball(t, true, hardlink("h", "../../etc/passwd")) },
		wantErr: "path escapes the context",
	}, {
		name:    "hard link to a missing entry",
		archive: func(t *testing.T) []byte { return tarball(t, true, hardlink("h", "nope")) },
		wantErr: `hard link to "nope"`,
	}, {
		name: "hard link to a symlink links the symlink",
		archive: func(t *testing.T) []byte {
			return tarball(t, true, symlink("s", "/etc/passwd"), hardlink("h", "s"))
		},
		want: map[string]string{"s": "l -> /etc/passwd", "h": "l -> /etc/passwd"},
	}, {
		name: "a later entry replaces an earlier one, a symlink is replaced not followed",
		archive: func(t *testing.T) []byte {
			return tarball(t, true, file("a", "old"), file("a", "new"), symlink("s", "/etc/hostname"), file("s", "mine"), dir("d/"), file("d", "f"))
		},
		want: map[string]string{"a": "f 0644 new", "s": "f 0644 mine", "d": "f 0644 f"},
	}, {
		name: "FIFOs and devices are skipped",
		archive: func(t *testing.T) []byte {
			return tarball(t, true, entry{name: "fifo", typ: tar.TypeFifo, mode: 0o644}, entry{name: "null", typ: tar.TypeChar, mode: 0o666}, file("a", "1"))
		},
		want: map[string]string{"a": "f 0644 1"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "ctx")
			c, err := contexts.FromArchive(context.Background(), bytes.NewReader(tt.archive(t)), dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Dir != dir {
				t.Errorf("Dir = %q, want %q", c.Dir, dir)
			}
			if diff := cmp.Diff(tt.want, listing(t, dir)); diff != "" {
				t.Errorf("extracted files (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFromArchiveSymlinkParents checks that entries below a symlink land inside the
// context whatever the link points at, and that nothing outside is touched.
func TestFromArchiveSymlinkParents(t *testing.T) {
	t.Parallel()
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "ctx")
	archive := tarball(t, true,
		symlink("abs", outside), file("abs/victim", "pwned"),
		symlink("rel", "../../../../../../"+strings.TrimPrefix(outside, "/")), file("rel/new", "x"),
		symlink("direct", victim), file("direct", "replaced"),
	)
	if _, err := contexts.FromArchive(context.Background(), bytes.NewReader(archive), dir); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(victim); string(data) != "untouched" {
		t.Errorf("file outside the context was overwritten: %q", data)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 1 {
		t.Errorf("files were created outside the context: %v", entries)
	}
	for _, p := range []string{filepath.Join(dir, outside, "victim"), filepath.Join(dir, outside, "new"), filepath.Join(dir, "direct")} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("expected %s inside the context: %v", p, err)
		}
	}
}

func TestFromArchiveTimes(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ctx")
	archive := tarball(t, true, dir0("d/"), file("d/f", "x"), symlink("d/l", "f"))
	if _, err := contexts.FromArchive(context.Background(), bytes.NewReader(archive), dir); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"d", "d/f", "d/l"} {
		fi, err := os.Lstat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(mtime) {
			t.Errorf("%s: mtime %v, want %v", p, fi.ModTime(), mtime)
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, "d")); fi.Mode().Perm() != 0o555 {
		t.Errorf("d: mode %v, want 0555 (applied after its children)", fi.Mode().Perm())
	}
}

// dir0 is a read-only directory: its children must still be extracted.
func dir0(name string) entry { return entry{name: name, typ: tar.TypeDir, mode: 0o555} }

func TestFromArchiveCompressions(t *testing.T) {
	t.Parallel()
	plain := tarball(t, true, file("Dockerfile", "FROM scratch\n"), file("big", strings.Repeat("kiln ", 50000)))
	compressors := map[string]func(t *testing.T) []byte{
		"plain": func(*testing.T) []byte { return plain },
		"gzip": func(t *testing.T) []byte {
			var b bytes.Buffer
			w := gzip.NewWriter(&b)
			w.Write(plain)
			w.Close()
			return b.Bytes()
		},
		"xz": func(t *testing.T) []byte {
			var b bytes.Buffer
			w, err := xz.NewWriter(&b)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(plain)
			w.Close()
			return b.Bytes()
		},
		"zstd": func(t *testing.T) []byte {
			var b bytes.Buffer
			w, err := zstd.NewWriter(&b)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(plain)
			w.Close()
			return b.Bytes()
		},
		"bzip2": func(t *testing.T) []byte {
			if _, err := exec.LookPath("bzip2"); err != nil {
				t.Skip("no bzip2 program to compress with")
			}
			cmd := exec.Command("bzip2", "-c")
			cmd.Stdin = bytes.NewReader(plain)
			out, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			return out
		},
	}
	for name, compress := range compressors {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			body := compress(t)
			if name != "plain" && len(body) >= len(plain)/4 {
				t.Fatalf("%s did not compress (%d bytes)", name, len(body))
			}
			dir := t.TempDir()
			if _, err := contexts.FromArchive(context.Background(), bytes.NewReader(body), dir); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(filepath.Join(dir, "big"))
			if err != nil || len(data) != 250000 {
				t.Fatalf("big: %d bytes, %v", len(data), err)
			}
		})
	}
}

func TestFromArchiveLimits(t *testing.T) {
	t.Parallel()
	// 64 MiB of zeros gzip to about 64 KiB: a decompression bomb in miniature.
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Mode: 0o644, Size: 64 << 20})
	io.Copy(tw, io.LimitReader(zeroReader{}, 64<<20))
	tw.Close()
	zw.Close()
	many := make([]entry, 20)
	for i := range many {
		many[i] = file(strings.Repeat("f", i+1), "")
	}
	tests := []struct {
		name string
		body []byte
		opts []contexts.ArchiveOption
		want string
	}{
		{"bytes", bomb.Bytes(), []contexts.ArchiveOption{contexts.WithMaxBytes(1 << 20)}, "more than 1048576 bytes"},
		{"entries", tarball(t, true, many...), []contexts.ArchiveOption{contexts.WithMaxEntries(10)}, "more than 10 entries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			_, err := contexts.FromArchive(context.Background(), bytes.NewReader(tt.body), dir, tt.opts...)
			if !errors.Is(err, contexts.ErrLimitExceeded) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want ErrLimitExceeded with %q", err, tt.want)
			}
			if fi, err := os.Stat(filepath.Join(dir, "zeros")); err == nil {
				t.Errorf("the oversized file was written (%d bytes)", fi.Size())
			}
		})
	}
	t.Run("within the limits", func(t *testing.T) {
		t.Parallel()
		_, err := contexts.FromArchive(context.Background(), bytes.NewReader(tarball(t, true, many...)), t.TempDir(),
			contexts.WithMaxEntries(20), contexts.WithMaxBytes(1))
		if err != nil {
			t.Fatal(err)
		}
	})
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestFromArchiveCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := contexts.FromArchive(ctx, bytes.NewReader(tarball(t, true, file("a", "1"))), t.TempDir())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}

// TestFromArchiveDockerignore checks the Dockerfile/.dockerignore self-removal the
// docker CLI relies on for `-f -` (docs/server.md, "The build context"): when .dockerignore
// names them they are hidden from COPY, though still in the directory for the server
// to read.
func TestFromArchiveDockerignore(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		ignore   entry
		excluded map[string]bool
	}{{
		name:   "ignore file names the Dockerfile and itself",
		ignore: file(".dockerignore", "*.log\n.dockerignore\n.dockerfile.0123\n"),
		excluded: map[string]bool{
			".dockerignore": true, ".dockerfile.0123": true, "x.log": true, "Dockerfile": false, "a": false,
		},
	}, {
		name:     "no self-removal unless named",
		ignore:   file(".dockerignore", "*.log\n"),
		excluded: map[string]bool{".dockerignore": false, ".dockerfile.0123": false, "x.log": true},
	}, {
		name:     "a symlinked .dockerignore is read inside the context only",
		ignore:   symlink(".dockerignore", "/etc/hostname"),
		excluded: map[string]bool{".dockerignore": false, "x.log": false},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			archive := tarball(t, true, file("Dockerfile", "FROM x\n"), file("a", "1"), file("x.log", "2"), file(".dockerfile.0123", "FROM y\n"), tt.ignore)
			c, err := contexts.FromArchive(context.Background(), bytes.NewReader(archive), dir)
			if err != nil {
				t.Fatal(err)
			}
			for p, want := range tt.excluded {
				if got := c.Excluded(p); got != want {
					t.Errorf("Excluded(%q) = %v, want %v", p, got, want)
				}
				if _, err := os.Lstat(filepath.Join(dir, p)); err != nil {
					t.Errorf("%s is not in the context directory: %v", p, err)
				}
			}
		})
	}
}
