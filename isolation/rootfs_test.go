package isolation

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// requireRoot skips tests that create namespaces and mounts.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_SYS_ADMIN, CAP_SYS_CHROOT)")
	}
}

// busyboxRoot builds a minimal root in a fresh temporary directory: /bin/busybox (the
// static build) with a symlink per applet, and the given extra directories. It has no
// /etc, /proc, /dev or /sys unless asked for.
func busyboxRoot(t *testing.T, dirs ...string) string {
	t.Helper()
	const busybox = "/bin/busybox"
	list, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		t.Skipf("needs a static %s: %v", busybox, err)
	}
	root := filepath.Join(t.TempDir(), "root")
	for _, d := range append([]string{"", "bin"}, dirs...) {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, busybox, filepath.Join(root, "bin/busybox"), 0o755)
	sc := bufio.NewScanner(bytes.NewReader(list))
	for sc.Scan() {
		applet := strings.TrimSpace(sc.Text())
		if applet == "" || applet == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// processesWithCmdline returns the PIDs whose command line is exactly args.
func processesWithCmdline(t *testing.T, args ...string) []string {
	t.Helper()
	want := strings.Join(args, "\x00") + "\x00"
	dirs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, f := range dirs {
		data, err := os.ReadFile(f)
		if err == nil && string(data) == want {
			pids = append(pids, filepath.Base(filepath.Dir(f)))
		}
	}
	return pids
}

// requireNoProcess fails when a process with exactly args is still alive. Killed
// processes may take a moment to be reaped, so it polls briefly.
func requireNoProcess(t *testing.T, args ...string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		pids := processesWithCmdline(t, args...)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes %v (%q) still running", pids, args)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// requireNoMountsUnder fails when this process sees a mount at or below dir.
func requireNoMountsUnder(t *testing.T, dir string) {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range parseMountInfo(data) {
		if m.point == dir || strings.HasPrefix(m.point, dir+"/") {
			t.Errorf("mount %s (%s) still visible on the host", m.point, m.fstype)
		}
	}
}

// listing is a recursive lstat listing of root: one line per path with type, mode,
// owner, size, mtime (ns) and link target, plus the root's own metadata. Access times
// are left out: the walk itself updates them.
func listing(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		target, _ := os.Readlink(p)
		fmt.Fprintf(&b, "%s %v %d:%d size=%d mtime=%d.%09d %s\n",
			rel, fi.Mode(), st.Uid, st.Gid, st.Size, st.Mtim.Sec, st.Mtim.Nsec, target)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// asSelf sets p's credentials to this process's own, so in-place tests never need to
// change them.
func asSelf(t *testing.T, p Process) Process {
	t.Helper()
	gs, err := unix.Getgroups()
	if err != nil {
		t.Fatal(err)
	}
	p.UID, p.GID, p.Groups = uint32(os.Getuid()), uint32(os.Getgid()), nil
	for _, g := range gs {
		p.Groups = append(p.Groups, uint32(g))
	}
	return p
}
