package snapshot

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// planLayer writes a layer of the planned files files (image path -> source) over the
// root root, and returns its entries as name -> content ("-> name" for a hardlink).
func planLayer(t *testing.T, root string, plan *Plan, changed []string) (map[string]string, error) {
	t.Helper()
	l, err := WriteLayer(context.Background(), root, t.TempDir(), &Changes{Changed: changed},
		WithCompression(Uncompressed), WithPlan(plan))
	if err != nil {
		return nil, err
	}
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return got, nil
		}
		if err != nil {
			t.Fatal(err)
		}
		switch hdr.Typeflag {
		case tar.TypeLink:
			got[hdr.Name] = "-> " + hdr.Linkname
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			got[hdr.Name] = string(b)
		}
	}
}

// wantEntries compares planLayer's entries with want.
func wantEntries(t *testing.T, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d file entries, want %d", len(got), len(want))
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: %d bytes %.20q, want %d bytes %.20q", name, len(got[name]), got[name], len(w), w)
		}
	}
}

// Planned files read ahead (more of them than the reader has buffers), a file too
// large to read ahead, hardlinks and a path the writer skips all come out as the
// plan says, in the writer's order.
func TestPrefetchedPlanLayer(t *testing.T) {
	t.Parallel()
	root, src := t.TempDir(), t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	plan := NewPlan()
	want := map[string]string{}
	var changed []string
	addFile := func(img, content string) *PlannedFile {
		name := filepath.Join(src, strings.ReplaceAll(img, "/", "_"))
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		f := &PlannedFile{Source: name, Mode: 0o644}
		plan.Add(img, f)
		changed = append(changed, img)
		return f
	}
	for i := range 3 * prefetchBuffers {
		img := fmt.Sprintf("/d/f%03d", i)
		content := strings.Repeat(fmt.Sprint(i), i*97)
		addFile(img, content)
		want[img[1:]] = content
	}
	big := strings.Repeat("big", prefetchBufferSize) // larger than a buffer
	addFile("/d/big", big)
	want["d/big"] = big
	f := addFile("/d/l1", "linked")
	plan.Add("/d/l2", f)
	changed = append(changed, "/d/l2")
	want["d/l1"], want["d/l2"] = "linked", "-> d/l1"
	addFile("/gone/x", "its directory is not in the root") // skipped by the writer
	changed = append([]string{"/d"}, changed...)

	got, err := planLayer(t, root, plan, changed)
	if err != nil {
		t.Fatal(err)
	}
	wantEntries(t, got, want)
}

// A planned source that is no longer a regular file fails the layer whether or not
// it came after files read ahead.
func TestPrefetchedPlanNotRegular(t *testing.T) {
	t.Parallel()
	root, src := t.TempDir(), t.TempDir()
	plan := NewPlan()
	var changed []string
	for i := range 5 {
		name := filepath.Join(src, fmt.Sprint(i))
		if err := os.WriteFile(name, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		plan.Add(fmt.Sprintf("/f%d", i), &PlannedFile{Source: name, Mode: 0o644})
		changed = append(changed, fmt.Sprintf("/f%d", i))
	}
	fifo := filepath.Join(src, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	plan.Add("/f3", &PlannedFile{Source: fifo, Mode: 0o644})
	_, err := planLayer(t, root, plan, changed)
	if err == nil || !strings.Contains(err.Error(), "is no longer a regular file") {
		t.Fatalf("error %v, want the source named as no longer a regular file", err)
	}
}

// take hands out what was read ahead in order, dropping the paths the writer skipped,
// and answers nil for a path that was not read ahead without losing the next one.
func TestPrefetcherTake(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	plan := NewPlan()
	var items []item
	for _, name := range []string{"/a", "/b", "/c", "/d"} {
		host := filepath.Join(src, name)
		if err := os.WriteFile(host, []byte("content of "+name), 0o644); err != nil {
			t.Fatal(err)
		}
		plan.Add(name, &PlannedFile{Source: host})
		items = append(items, item{img: name, changed: true})
	}
	p := startPrefetch(items, plan, "")
	defer p.close()
	for _, tc := range []struct{ img, want string }{
		{"/b", "content of /b"}, // /a skipped by the writer
		{"/b2", ""},             // not planned
		{"/c", "content of /c"},
		{"/d", "content of /d"},
		{"/e", ""},
	} {
		r := p.take(tc.img)
		got := ""
		if r != nil {
			got = string(r.buf[:r.n])
			p.release(r)
		}
		if got != tc.want {
			t.Errorf("take(%s) = %q, want %q", tc.img, got, tc.want)
		}
	}
}

// Files of the root read ahead (more than the reader has buffers, one too large to
// read ahead) come out whole, and a path below a symlink, which the writer leaves out,
// is not read through it either: here it would lead out of the root.
func TestPrefetchedRootLayer(t *testing.T) {
	t.Parallel()
	root, outside := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("outside the root"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "d", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	changed := []string{"/d", "/d/sub"}
	write := func(img, content string) {
		if err := os.WriteFile(filepath.Join(root, img), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		want[img[1:]] = content
		changed = append(changed, img)
	}
	for i := range 3 * prefetchBuffers {
		write(fmt.Sprintf("/d/sub/f%03d", i), strings.Repeat(fmt.Sprint(i), i*31))
	}
	write("/d/big", strings.Repeat("big", prefetchBufferSize))
	if err := os.Symlink(outside, filepath.Join(root, "esc")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("d/sub", filepath.Join(root, "lnk")); err != nil {
		t.Fatal(err)
	}
	changed = append(changed, "/esc", "/esc/secret", "/lnk", "/lnk/f001")

	got, err := planLayer(t, root, nil, changed)
	if err != nil {
		t.Fatal(err)
	}
	wantEntries(t, got, want)
	for _, name := range []string{"esc/secret", "lnk/f001"} {
		if _, ok := got[name]; ok {
			t.Errorf("%s is in the layer: written through a symlink", name)
		}
	}
}

// openBeneath refuses what the writer would not write: a path through a symlink, even
// one that stays in the root, and one leaving the root.
func TestOpenBeneath(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "d", "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, l := range [][2]string{{"d", "in"}, {"/", "abs"}, {"..", "up"}} {
		if err := os.Symlink(l[0], filepath.Join(root, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rootFD)
	for img, ok := range map[string]bool{"/d/f": true, "/in/f": false, "/abs/etc/passwd": false, "/up/x": false} {
		fd, err := openBeneath(rootFD, img)
		if err == nil {
			unix.Close(fd)
		}
		if (err == nil) != ok {
			t.Errorf("openBeneath(%s): %v, want success %v", img, err, ok)
		}
	}
}

// The reader reads files of the root ahead, not only planned ones.
func TestPrefetcherReadsRootFiles(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	var items []item
	for _, name := range []string{"/a", "/b"} {
		if err := os.WriteFile(filepath.Join(root, name), []byte("root file "+name), 0o644); err != nil {
			t.Fatal(err)
		}
		items = append(items, item{img: name, changed: true})
	}
	p := startPrefetch(items, nil, root)
	if p == nil {
		t.Fatal("nothing read ahead")
	}
	defer p.close()
	for _, name := range []string{"/a", "/b"} {
		r := p.take(name)
		if r == nil {
			t.Fatalf("%s was not read ahead", name)
		}
		if got := string(r.buf[:r.n]); got != "root file "+name {
			t.Errorf("%s read ahead as %q", name, got)
		}
		p.release(r)
	}
}
