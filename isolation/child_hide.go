package isolation

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// hidePaths runs in an in-place child, in its new user and mount namespaces: it makes
// the mounts it inherited slaves (nothing it mounts propagates back to kiln), covers
// every path of hide, and mounts a /proc of the new PID namespace where the kernel
// allows it (a container's masked /proc refuses a new procfs to a user namespace; the
// inherited one then stays, and its kiln processes are still out of ptrace's reach),
// and with newNet a sysfs of the new network namespace.
func hidePaths(hide []string, newProc, newNet bool) error {
	if err := mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return err
	}
	for _, p := range hide {
		if err := hidePath(p); err != nil {
			return err
		}
	}
	if newProc {
		_ = unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	}
	if newNet {
		// /sys/class/net shows the network namespace of whoever mounted sysfs.
		_ = unix.Mount("sysfs", "/sys", "sysfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	}
	return nil
}

// hidePath covers p: a directory with an empty read-only tmpfs, anything else (a file,
// a socket) with a bind of /dev/null, as Docker masks /proc's paths: reads are
// empty, writes vanish. The
// RUN's capabilities are dropped to Docker's default set afterwards, so it cannot
// unmount them, and the mounts it inherited are locked to the ones below.
func hidePath(p string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return nil // gone since kiln started: nothing to read
	}
	const locked = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	if fi.IsDir() {
		if err := unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY|locked, "mode=0755,size=4k"); err != nil {
			return fmt.Errorf("cover %s, hidden from RUN: %w", p, err)
		}
		return nil
	}
	if err := unix.Mount("/dev/null", p, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("cover %s, hidden from RUN: %w", p, err)
	}
	// A remount in a user namespace must keep the flags the kernel locked on the
	// source's mount (those of /dev).
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return fmt.Errorf("cover %s: %w", p, err)
	}
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY)
	for _, f := range []struct{ st, ms int64 }{
		{unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV}, {unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME}, {unix.ST_NODIRATIME, unix.MS_NODIRATIME}, {unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if st.Flags&f.st != 0 {
			flags |= uintptr(f.ms)
		}
	}
	if err := unix.Mount("", p, "", flags, ""); err != nil {
		return fmt.Errorf("cover %s read-only: %w", p, err)
	}
	return nil
}
