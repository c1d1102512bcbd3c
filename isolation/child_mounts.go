package isolation

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mountRoot builds the RUN's view of the root in the child's private mount namespace.
// Nothing here is visible to the host, and all of it vanishes with the namespace.
func mountRoot(spec childSpec) error {
	// Private first: without it a mount below a shared mount would propagate out.
	if err := mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return err
	}
	// The root must be a mount point of its own for pivot_root.
	if err := mount(spec.Root, spec.Root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	// No device node the RUN creates (it has CAP_MKNOD, as under Docker) may be
	// opened: Docker refuses them with its device cgroup, kiln with nodev on every
	// mount the RUN can write to. /dev's own nodes are bind mounts that keep theirs.
	if err := remountNodev(spec.Root); err != nil {
		return err
	}
	for _, m := range spec.Mounts {
		var err error
		switch m.Kind {
		case mountProc:
			err = mountProcfs(m.Target)
		case mountDev:
			err = mountDevfs(m.Target, spec.ShmSize)
		case mountSys:
			err = mountSysfs(m.Target)
		case mountFile:
			err = ensureShadowedTarget(spec.Root, m.Target)
			if err == nil {
				err = mount(m.Source, m.Target, "", unix.MS_BIND, "")
			}
			if err == nil && m.ReadOnly {
				err = mount("", m.Target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, "")
			}
		case mountDir:
			err = mount(m.Source, m.Target, "", unix.MS_BIND|unix.MS_REC, "")
			if err == nil && m.ReadOnly {
				err = mount("", m.Target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, "")
			} else if err == nil {
				err = remountNodev(m.Target)
			}
		case mountTmp:
			data := "mode=1777"
			if m.Size > 0 {
				data += ",size=" + strconv.FormatInt(m.Size, 10)
			}
			err = mount("tmpfs", m.Target, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, data)
		default:
			err = fmt.Errorf("unknown mount kind %q", m.Kind)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// ensureShadowedTarget creates a file mount point that a mount made earlier in this
// namespace hides (a target below /dev, such as a RUN here-document's /dev/pipes/NAME,
// is created in the root before the /dev tmpfs covers it). What it creates lives in
// that mount and vanishes with the namespace.
func ensureShadowedTarget(root, target string) error {
	if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
		return nil
	}
	// The nearest existing directory must still be inside the root: a symbolic link
	// there (the tmpfs's /dev/fd) must not lead the new mount point out of it.
	existing := filepath.Dir(target)
	for {
		if _, err := os.Lstat(existing); err == nil {
			break
		}
		existing = filepath.Dir(existing)
	}
	resolved, err := filepath.EvalSymlinks(existing)
	if err != nil {
		return fmt.Errorf("mount point %s: %w", target, err)
	}
	if r, err := filepath.EvalSymlinks(root); err == nil {
		root = r
	}
	if rel, err := filepath.Rel(root, resolved); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("cannot mount on %s: a symbolic link leads out of the root", target)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return fmt.Errorf("create mount point %s: %w", target, err)
	}
	f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return fmt.Errorf("create mount point %s: %w", target, err)
	}
	return f.Close()
}

// remountNodev adds nodev to the bind mount at target, keeping its other flags.
func remountNodev(target string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(target, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", target, err)
	}
	// The ST_ flags statfs reports have the values of the MS_ flags mount takes.
	keep := uintptr(st.Flags) & (unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME)
	return mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_NODEV|keep, "")
}

// mount is unix.Mount with an error naming the mount and, for EPERM, what is missing.
func mount(source, target, fstype string, flags uintptr, data string) error {
	err := unix.Mount(source, target, fstype, flags, data)
	if err == nil {
		return nil
	}
	what := fstype
	if what == "" {
		what = source
	}
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("mount %s on %s: %w (chroot isolation needs CAP_SYS_ADMIN; "+
			"inside an unprivileged container use --isolation=inplace)", what, target, err)
	}
	return fmt.Errorf("mount %s on %s: %w", what, target, err)
}

// mountProcfs mounts a procfs of the new PID namespace and, like Docker, makes the
// kernel's global knobs read-only and hides files that leak host information.
func mountProcfs(target string) error {
	if err := mount("proc", target, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return err
	}
	for _, p := range []string{"bus", "fs", "irq", "sys", "sysrq-trigger"} {
		if err := readOnlyBind(filepath.Join(target, p)); err != nil {
			return err
		}
	}
	for _, p := range []string{"kcore", "keys", "latency_stats", "timer_list", "sched_debug", "acpi", "scsi"} {
		if err := mask(filepath.Join(target, p)); err != nil {
			return err
		}
	}
	return nil
}

// readOnlyBind makes an existing path read-only by binding it onto itself.
func readOnlyBind(p string) error {
	if _, err := os.Lstat(p); err != nil {
		return nil // not in this kernel
	}
	if err := mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	return mount("", p, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
}

// mask hides an existing path: /dev/null over a file, an empty read-only tmpfs over a
// directory.
func mask(p string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return nil
	}
	if fi.IsDir() {
		return mount("tmpfs", p, "tmpfs", unix.MS_RDONLY, "")
	}
	return mount("/dev/null", p, "", unix.MS_BIND, "")
}

// mountDevfs mounts a tmpfs with the device set Docker gives a container. Device nodes
// are bind-mounted from the host, which works wherever mounting does (also where mknod
// is refused).
func mountDevfs(target string, shmSize int64) error {
	if err := mount("tmpfs", target, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_STRICTATIME, "mode=755,size=65536k"); err != nil {
		return err
	}
	for _, name := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		node := filepath.Join(target, name)
		f, err := os.OpenFile(node, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o666)
		if err != nil {
			return fmt.Errorf("create %s: %w", node, err)
		}
		f.Close()
		if err := mount(filepath.Join("/dev", name), node, "", unix.MS_BIND, ""); err != nil {
			return err
		}
	}
	pts := filepath.Join(target, "pts")
	shm := filepath.Join(target, "shm")
	for _, d := range []string{pts, shm} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	const ptsOpts = "newinstance,ptmxmode=0666,mode=0620"
	if err := mount("devpts", pts, "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, ptsOpts+",gid=5"); err != nil {
		// In a user namespace that maps no gid 5 (rootless kiln without a subgid
		// range) the tty group does not exist: terminals belong to the caller's gid.
		if !errors.Is(err, unix.EINVAL) {
			return err
		}
		if err := mount("devpts", pts, "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, ptsOpts); err != nil {
			return err
		}
	}
	shmOpts := "mode=1777,size=65536k"
	if shmSize > 0 {
		shmOpts = "mode=1777,size=" + strconv.FormatInt(shmSize, 10)
	}
	if err := mount("shm", shm, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, shmOpts); err != nil {
		return err
	}
	for link, dest := range map[string]string{
		"ptmx":   "pts/ptmx",
		"fd":     "/proc/self/fd",
		"stdin":  "/proc/self/fd/0",
		"stdout": "/proc/self/fd/1",
		"stderr": "/proc/self/fd/2",
		"core":   "/proc/kcore",
	} {
		if err := os.Symlink(dest, filepath.Join(target, link)); err != nil {
			return fmt.Errorf("create %s: %w", filepath.Join(target, link), err)
		}
	}
	return nil
}

// mountSysfs mounts sysfs read-only. Where the kernel refuses a new sysfs (it must
// belong to our network namespace's owner), a read-only bind of the host's /sys does.
func mountSysfs(target string) error {
	flags := uintptr(unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	err := unix.Mount("sysfs", target, "sysfs", flags, "")
	if err == nil || !errors.Is(err, unix.EPERM) {
		if err != nil {
			return fmt.Errorf("mount sysfs on %s: %w", target, err)
		}
		return nil
	}
	// Recursive: in a user namespace the kernel refuses to bind /sys without the
	// mounts under it (their contents would be revealed).
	if err := mount("/sys", target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC}
	if err := unix.MountSetattr(-1, target, unix.AT_RECURSIVE, attr); err == nil {
		return nil
	}
	return mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|flags, "")
}

// enterRoot makes the root "/" with pivot_root and detaches the old root, so that no
// path (not even a chroot escape) leads back to the host's tree. Where pivot_root is
// impossible (the host root is an initramfs) it falls back to chroot.
func enterRoot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("enter root %s: %w", root, err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		if !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("pivot_root to %s: %w", root, err)
		}
		if err := unix.Chroot("."); err != nil {
			return fmt.Errorf("chroot to %s: %w (needs CAP_SYS_CHROOT)", root, err)
		}
		return unix.Chdir("/")
	}
	// The old root now sits on top of "."; detach it (privately: nothing propagates).
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach host root: %w", err)
	}
	return unix.Chdir("/")
}
