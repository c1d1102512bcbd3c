package builder

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/builder/copier"
)

// TestHashMemo checks the context-hash memo's key: an unchanged file is not read
// again, also by a later build of the same state directory; a file written in place
// whose size and mtime are put back is hashed again (its ctime moved); and a file
// changed too recently to be trusted is not remembered.
func TestHashMemo(t *testing.T) {
	t.Parallel()
	state, dir := t.TempDir(), t.TempDir()
	p := filepath.Join(dir, "f")
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	write := func(data string) syscall.Stat_t {
		t.Helper()
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	later := func() time.Time { return time.Now().Add(time.Hour) } // every change is old enough
	buf := make([]byte, 4096)

	st := write("first")
	m := newHashMemo(state)
	m.now = later
	d1, err := memoDigest(m, p, buf)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := m.lookup(p, &st); !ok || got != d1 {
		t.Fatalf("lookup after hashing = %q, %t; want %q", got, ok, d1)
	}
	m.save()

	// A later build of the same state directory finds it without reading the file.
	m2 := newHashMemo(state)
	if got, ok := m2.lookup(p, &st); !ok || got != d1 {
		t.Fatalf("lookup in a new memo of the same state dir = %q, %t; want %q", got, ok, d1)
	}

	// Same size, same mtime, new bytes: only the ctime tells. Rewrite until the
	// clock has moved on from the first write's ctime.
	var st2 syscall.Stat_t
	for i := 0; i < 200; i++ {
		time.Sleep(5 * time.Millisecond)
		st2 = write("other")
		if st2.Ctim != st.Ctim {
			break
		}
	}
	if st2.Ctim == st.Ctim {
		t.Skip("the file's ctime did not move")
	}
	if st2.Size != st.Size || st2.Mtim != st.Mtim || st2.Ino != st.Ino {
		t.Fatalf("test setup: size, mtime or inode changed (%+v vs %+v)", st2, st)
	}
	if got, ok := m2.lookup(p, &st2); ok {
		t.Fatalf("lookup of a file changed in place hit (%q): ctime is not in the key", got)
	}
	out, err := hashContents(t.Context(), m2, selected(t, p), nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := fileDigest(p, buf)
	if err != nil {
		t.Fatal(err)
	}
	if out[0] != want || want == d1 {
		t.Fatalf("hash after the change = %q, want %q (not the old %q)", out[0], want, d1)
	}

	// A file changed just now is hashed but not remembered (it could change again
	// within the same timestamp tick).
	m3 := newHashMemo(state)
	if err := os.WriteFile(p, []byte("fresh"), 0o644); err != nil {
		t.Fatal(err)
	}
	var st3 syscall.Stat_t
	if err := syscall.Lstat(p, &st3); err != nil {
		t.Fatal(err)
	}
	if _, err := memoDigest(m3, p, buf); err != nil {
		t.Fatal(err)
	}
	if _, ok := m3.lookup(p, &st3); ok {
		t.Fatalf("a file changed just now was remembered")
	}
}

// selected returns the one-file selection of p, as copier.Select reports it.
func selected(t *testing.T, p string) []copier.Selected {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return []copier.Selected{{Rel: filepath.Base(p), Host: p, Info: fi}}
}

// TestMemoFileFormat round-trips the memo file and refuses a truncated one.
func TestMemoFileFormat(t *testing.T) {
	t.Parallel()
	in := map[string]memoEntry{
		"/ctx/a":       {Dev: 2049, Ino: 1 << 40, Size: 5, Mode: 0o100644, MtimeNs: -1, CtimeNs: 1700000000123456789, Digest: "sha256:" + strings.Repeat("ab", 32)},
		"/ctx/dir/é b": {Size: 0, Mode: 0o100600, Digest: "sha256:" + strings.Repeat("01", 32)},
	}
	var buf bytes.Buffer
	if err := encodeMemo(&buf, in); err != nil {
		t.Fatal(err)
	}
	out, err := decodeMemo(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	for n := 0; n < buf.Len(); n += 7 {
		if _, err := decodeMemo(buf.Bytes()[:n]); err == nil {
			t.Fatalf("decoding the first %d of %d bytes succeeded", n, buf.Len())
		}
	}
}
