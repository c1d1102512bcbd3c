package snapshot

import (
	"archive/tar"
	"context"
	"path/filepath"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestExtract(t *testing.T) {
	t.Parallel()
	// base is extracted first, as a lower layer would be.
	base := []ent{
		dir("a/", 0o755),
		file("a/keep", "k"),
		file("a/gone", "g"),
		dir("a/sub/", 0o755),
		file("a/sub/deep", "d"),
		dir("o/", 0o755),
		file("o/lower", "l"),
		dir("o/d/", 0o755),
		file("o/d/lower", "l"),
	}
	tests := []struct {
		name    string
		layer   []ent
		opts    []ExtractOption
		want    []string
		wantErr bool
		root    bool // needs root to chown
	}{{
		name:  "whiteout file and dir",
		layer: []ent{whiteoutEnt("a", "gone"), whiteoutEnt("a", "sub")},
		want: []string{
			"/a 0755 0:0 dir", `/a/keep 0644 0:0 file "k"`,
			"/o 0755 0:0 dir", "/o/d 0755 0:0 dir", `/o/d/lower 0644 0:0 file "l"`, `/o/lower 0644 0:0 file "l"`,
		},
	}, {
		name:  "whiteouts off writes literal names",
		layer: []ent{whiteoutEnt("a", "gone")},
		opts:  []ExtractOption{WithWhiteouts(false)},
		want: []string{
			"/a 0755 0:0 dir", `/a/.wh.gone 0644 0:0 file ""`, `/a/gone 0644 0:0 file "g"`, `/a/keep 0644 0:0 file "k"`,
			"/a/sub 0755 0:0 dir", `/a/sub/deep 0644 0:0 file "d"`,
			"/o 0755 0:0 dir", "/o/d 0755 0:0 dir", `/o/d/lower 0644 0:0 file "l"`, `/o/lower 0644 0:0 file "l"`,
		},
	}, {
		name:  "opaque marker before siblings",
		layer: []ent{dir("o/", 0o755), opaqueEnt("o"), file("o/new", "n"), dir("o/d/", 0o700), file("o/d/new", "n")},
		want: []string{
			"/a 0755 0:0 dir", `/a/gone 0644 0:0 file "g"`, `/a/keep 0644 0:0 file "k"`,
			"/a/sub 0755 0:0 dir", `/a/sub/deep 0644 0:0 file "d"`,
			"/o 0755 0:0 dir", "/o/d 0700 0:0 dir", `/o/d/new 0644 0:0 file "n"`, `/o/new 0644 0:0 file "n"`,
		},
	}, {
		name:  "opaque marker after siblings",
		layer: []ent{dir("o/", 0o755), file("o/new", "n"), file("o/d/new", "n"), opaqueEnt("o")},
		want: []string{
			"/a 0755 0:0 dir", `/a/gone 0644 0:0 file "g"`, `/a/keep 0644 0:0 file "k"`,
			"/a/sub 0755 0:0 dir", `/a/sub/deep 0644 0:0 file "d"`,
			"/o 0755 0:0 dir", "/o/d 0755 0:0 dir", `/o/d/new 0644 0:0 file "n"`, `/o/new 0644 0:0 file "n"`,
		},
	}, {
		name:  "dir replaced by file, file by dir",
		layer: []ent{file("a/sub", "now a file"), dir("a/keep/", 0o711), file("a/keep/x", "x")},
		want: []string{
			"/a 0755 0:0 dir", `/a/gone 0644 0:0 file "g"`, "/a/keep 0711 0:0 dir", `/a/keep/x 0644 0:0 file "x"`,
			`/a/sub 0644 0:0 file "now a file"`,
			"/o 0755 0:0 dir", "/o/d 0755 0:0 dir", `/o/d/lower 0644 0:0 file "l"`, `/o/lower 0644 0:0 file "l"`,
		},
	}, {
		name: "symlinks hardlinks and missing parents",
		layer: []ent{
			file("n/x/f", "f"), hardlink("n/x/h", "n/x/f"), symlink("n/s", "x/f"),
			symlink("n/abs", "/a/keep"), hardlink("n/hs", "n/abs"),
		},
		want: []string{
			"/a 0755 0:0 dir", `/a/gone 0644 0:0 file "g"`, `/a/keep 0644 0:0 file "k"`,
			"/a/sub 0755 0:0 dir", `/a/sub/deep 0644 0:0 file "d"`,
			"/o 0755 0:0 dir", "/o/d 0755 0:0 dir", `/o/d/lower 0644 0:0 file "l"`, `/o/lower 0644 0:0 file "l"`,
			"/n 0755 0:0 dir", "/n/abs 0777 0:0 -> /a/keep", "/n/hs 0777 0:0 -> /a/keep", "/n/s 0777 0:0 -> x/f",
			"/n/x 0755 0:0 dir", `/n/x/f 0644 0:0 file "f" nlink=2`, `/n/x/h 0644 0:0 file "f" nlink=2`,
		},
	}, {
		name:  "ignored paths are neither written nor deleted",
		layer: []ent{file("a/keep", "new"), whiteoutEnt("a", "gone"), file("o/new", "n"), opaqueEnt("o")},
		opts:  []ExtractOption{WithIgnore(NewIgnore("/a/keep", "/a/gone", "/o/d"))},
		want: []string{
			"/a 0755 0:0 dir", `/a/gone 0644 0:0 file "g"`, `/a/keep 0644 0:0 file "k"`,
			"/a/sub 0755 0:0 dir", `/a/sub/deep 0644 0:0 file "d"`,
			"/o 0755 0:0 dir", "/o/d 0755 0:0 dir", `/o/d/lower 0644 0:0 file "l"`, `/o/new 0644 0:0 file "n"`,
		},
	}, {
		name:  "modes, owners and setuid survive chown",
		layer: []ent{withOwner(withMode(file("a/suid", "s"), 0o4755), 1000, 1001), withOwner(withMode(dir("a/sticky/", 0o755), 0o1777), 7, 8)},
		opts:  []ExtractOption{WithOwnership(true)},
		root:  true,
		want: []string{
			"/a 0755 0:0 dir", `/a/gone 0644 0:0 file "g"`, `/a/keep 0644 0:0 file "k"`,
			"/a/sticky 1777 7:8 dir", "/a/sub 0755 0:0 dir", `/a/sub/deep 0644 0:0 file "d"`, `/a/suid 4755 1000:1001 file "s"`,
			"/o 0755 0:0 dir", "/o/d 0755 0:0 dir", `/o/d/lower 0644 0:0 file "l"`, `/o/lower 0644 0:0 file "l"`,
		},
	}, {
		name:    "unsupported entry type",
		layer:   []ent{{name: "a/x", typ: 'Z', mode: 0o644}},
		wantErr: true,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.root {
				skipUnlessRoot(t)
			}
			root := t.TempDir()
			ctx := context.Background()
			mustDo(t, Extract(ctx, root, "/", makeTar(t, base...)))
			err := Extract(ctx, root, "/", makeTar(t, tt.layer...), tt.opts...)
			if tt.wantErr {
				if err == nil {
					t.Fatal("Extract succeeded, want an error")
				}
				return
			}
			mustDo(t, err)
			got := listTree(t, root, listOpts{nlink: true})
			// Expectations leave out " nlink=1" to keep the table readable.
			want := append([]string(nil), tt.want...)
			sort.Strings(want)
			if diff := cmp.Diff(want, got, cmp.Comparer(sameLine)); diff != "" {
				t.Errorf("tree (-want +got):\n%s", diff)
			}
		})
	}
}

// sameLine compares listing lines, ignoring a trailing " nlink=1".
func sameLine(a, b string) bool {
	trim := func(s string) string {
		if n := len(s) - len(" nlink=1"); n > 0 && s[n:] == " nlink=1" {
			return s[:n]
		}
		return s
	}
	return trim(a) == trim(b)
}

func TestExtractTouched(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	ctx := context.Background()
	mustDo(t, Extract(ctx, root, "/", makeTar(t, dir("real/", 0o755), symlink("link", "real"))))
	var got []string
	err := Extract(ctx, root, "/link", makeTar(t, dir("./", 0o755), file("x", "x"), whiteoutEnt(".", "y"), dir("d/", 0o755)),
		WithTouched(func(p string) { got = append(got, p) }))
	mustDo(t, err)
	sort.Strings(got)
	// Paths are reported where they landed, through the symlink.
	want := []string{"/real/d", "/real/x"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("touched (-want +got):\n%s", diff)
	}
}

func TestExtractTimes(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dirTime := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	fileTime := time.Date(2002, 2, 2, 2, 2, 2, 500, time.UTC)
	linkTime := time.Date(2003, 3, 3, 3, 3, 3, 0, time.UTC)
	layer := makeTar(t,
		withMtime(dir("d/", 0o755), dirTime),
		withMtime(dir("d/e/", 0o755), dirTime),
		withMtime(file("d/e/f", "x"), fileTime), // written after d/e: must not bump it
		withMtime(symlink("d/l", "e/f"), linkTime),
		withMtime(file("d/new-after", "y"), fileTime),
	)
	mustDo(t, Extract(context.Background(), root, "/", layer))
	for _, c := range []struct {
		path string
		want time.Time
	}{{"d", dirTime}, {"d/e", dirTime}, {"d/e/f", fileTime}, {"d/l", linkTime}} {
		var st unix.Stat_t
		mustDo(t, unix.Lstat(filepath.Join(root, c.path), &st))
		if got := time.Unix(st.Mtim.Unix()).UTC(); !got.Equal(c.want) {
			t.Errorf("%s: mtime %v, want %v", c.path, got, c.want)
		}
	}
}

func TestExtractCapabilityXattr(t *testing.T) {
	t.Parallel()
	skipUnlessRoot(t)
	root := t.TempDir()
	// A v2 capability blob granting cap_net_bind_service (bit 10), effective.
	caps := string([]byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	layer := makeTar(t, withOwner(withXattr(file("bin/ping", "elf"), capabilityAttr, caps), 5, 5))
	mustDo(t, Extract(context.Background(), root, "/", layer, WithOwnership(true)))
	got, err := capability(filepath.Join(root, "bin/ping"))
	mustDo(t, err)
	if got != caps {
		t.Errorf("capability = %x, want %x (chown after setxattr would clear it)", got, caps)
	}
}

func TestExtractDevices(t *testing.T) {
	t.Parallel()
	skipUnlessRoot(t)
	root := t.TempDir()
	layer := makeTar(t,
		device("dev/null", tar.TypeChar, 1, 3),
		device("dev/loop9", tar.TypeBlock, 7, 9),
		device("run/fifo", tar.TypeFifo, 0, 0),
	)
	mustDo(t, Extract(context.Background(), root, "/", layer))
	want := []string{
		"/dev 0755 0:0 dir", "/dev/loop9 0600 0:0 block 7,9", "/dev/null 0600 0:0 char 1,3",
		"/run 0755 0:0 dir", "/run/fifo 0600 0:0 fifo",
	}
	if diff := cmp.Diff(want, listTree(t, root, listOpts{})); diff != "" {
		t.Errorf("tree (-want +got):\n%s", diff)
	}
}

func TestExtractCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Extract(ctx, t.TempDir(), "/", makeTar(t, file("x", "x")))
	if err == nil {
		t.Fatal("Extract with a cancelled context succeeded")
	}
}

// TestExtractSkippedDevices: where mknod of a device is refused (EPERM: a user
// namespace, here a thread without CAP_MKNOD), the device is skipped and reported
// through WithSkippedNode; a FIFO, which needs no privilege, is still made.
func TestExtractSkippedDevices(t *testing.T) {
	t.Parallel()
	skipUnlessRoot(t)
	root := t.TempDir()
	layer := makeTar(t,
		device("dev/null", tar.TypeChar, 1, 3),
		device("run/fifo", tar.TypeFifo, 0, 0),
	)
	var skipped []string
	errc := make(chan error, 1)
	go func() {
		// Capabilities are per thread: this one loses CAP_MKNOD and, never unlocked,
		// ends with the goroutine.
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		data[0].Effective &^= 1 << unix.CAP_MKNOD
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		errc <- Extract(context.Background(), root, "/", layer,
			WithSkippedNode(func(p string) { skipped = append(skipped, p) }))
	}()
	mustDo(t, <-errc)
	if diff := cmp.Diff([]string{"/dev/null"}, skipped); diff != "" {
		t.Errorf("skipped (-want +got):\n%s", diff)
	}
	want := []string{"/dev 0755 0:0 dir", "/run 0755 0:0 dir", "/run/fifo 0600 0:0 fifo"}
	if diff := cmp.Diff(want, listTree(t, root, listOpts{})); diff != "" {
		t.Errorf("tree (-want +got):\n%s", diff)
	}
}
