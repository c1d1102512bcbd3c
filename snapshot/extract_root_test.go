package snapshot

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// An archive's "./" entry does not change the directory it is extracted into (ADD of a
// tar into an existing or new directory keeps that directory root-owned, as Docker does).
func TestExtractRootEntryKeepsDestination(t *testing.T) {
	t.Parallel()
	skipUnlessRoot(t)
	root := t.TempDir()
	dest := filepath.Join(root, "tars")
	mustDo(t, os.Mkdir(dest, 0o755))
	tarball := makeTar(t, withOwner(withMode(dir("./", 0o700), 0o700), 4321, 8765), withOwner(file("./a", "A"), 4321, 8765))
	if err := Extract(context.Background(), root, "/tars", tarball); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(dest)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 0 || st.Gid != 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("destination is %v %d:%d after extraction, want it unchanged (0755 0:0)", fi.Mode().Perm(), st.Uid, st.Gid)
	}
	fi, err = os.Lstat(filepath.Join(dest, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 4321 {
		t.Errorf("entry owner %d, want the archive's 4321", st.Uid)
	}
}
