package builder_test

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/builder"
)

// fsTopDir is FS_TOPDIR_FL (chattr +T).
const fsTopDir = 0x00020000

// topDirFlag reports whether dir carries FS_TOPDIR_FL, and whether its file system
// can carry it at all (ext2/3/4 can; tmpfs, xfs and btrfs refuse the flag).
func topDirFlag(t *testing.T, dir string) (set, supported bool) {
	t.Helper()
	probe := t.TempDir()
	f, err := os.Open(probe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		return false, false
	}
	if unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags|fsTopDir)) != nil {
		return false, false
	}
	if got, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS); err != nil || got&fsTopDir == 0 {
		return false, false
	}
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	flags, err = unix.IoctlGetUint32(int(d.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		t.Fatal(err)
	}
	return flags&fsTopDir != 0, true
}

// A build marks its state directory so that each build's scratch tree is placed in a
// block group of its own (spreadSubdirs), not where the previous build's tree was
// just deleted from.
func TestBuildSpreadsScratchDirs(t *testing.T) {
	w := newWorld(t)
	var stateDir string
	c := buildCase{dockerfile: "FROM BUSYBOX\nRUN echo hi > /hi\n", workspace: func(ws *builder.Workspace) { stateDir = ws.StateDir }}
	if _, _, err := w.build(t, c); err != nil {
		t.Fatal(err)
	}
	set, supported := topDirFlag(t, stateDir)
	if !supported {
		t.Skip("the test directory's file system has no FS_TOPDIR_FL")
	}
	if !set {
		t.Errorf("state directory %s lacks FS_TOPDIR_FL after a build", stateDir)
	}
}
