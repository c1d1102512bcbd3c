package isolation

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"syscall"

	"golang.org/x/sys/unix"
)

// In place there is no mount namespace to bind a secret or an agent socket in: the
// runner places them in the root itself for the run, with the scaffold that creates the
// chroot runner's mount points, so that they and the directories made for them go
// again afterwards and their parents' times are put back. The builder's next snapshot
// then finds the root as it was. A regular file is copied (the process sees a file of
// Source's mode and owner, as under a bind mount); a socket is hard-linked (the same
// inode, so its mode and owner hold), or symlinked when Source is on another
// filesystem.

// placeMounts puts each mount's Source at its Target in the scaffold's root.
func placeMounts(sc *scaffold, mounts []Mount) error {
	for _, m := range mounts {
		if err := placeMount(sc, m); err != nil {
			return err
		}
	}
	return nil
}

func placeMount(sc *scaffold, m Mount) error {
	if m.Tmpfs {
		return fmt.Errorf("mount on %s: %w", m.Target, ErrMountNeedsChroot)
	}
	fi, err := os.Stat(m.Source)
	if err != nil {
		return fmt.Errorf("mount source for %s: %w", m.Target, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("mount on %s: %w", m.Target, ErrMountNeedsChroot)
	}
	target := path.Clean("/" + m.Target)
	if target == "/" {
		return errors.New("cannot mount on the root")
	}
	parent, err := sc.ensure(path.Dir(target), true)
	if err != nil {
		return err
	}
	if parent == "" && path.Dir(target) != "/" {
		return fmt.Errorf("cannot mount on %s: a file or a symbolic link is in the way of its directory", target)
	}
	if parent == "" {
		parent = sc.root
	}
	host := parent + "/" + path.Base(target)
	if _, err := os.Lstat(host); err == nil {
		return fmt.Errorf("cannot mount on %s: in-place isolation cannot cover a file the root already has there", target)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("mount point %s: %w", host, err)
	}
	return sc.place(parent, host, func() error {
		switch {
		case fi.Mode().IsRegular():
			return copyForMount(m.Source, host, fi)
		case fi.Mode()&fs.ModeSocket != 0:
			if err := os.Link(m.Source, host); err == nil || !errors.Is(err, unix.EXDEV) {
				return err
			}
			return os.Symlink(m.Source, host)
		}
		return fmt.Errorf("mount source %s is neither a regular file nor a socket", m.Source)
	})
}

// copyForMount copies the regular file src to dst with src's mode and owner.
func copyForMount(src, dst string, fi fs.FileInfo) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			err = os.Lchown(dst, int(st.Uid), int(st.Gid))
		}
	}
	if err == nil {
		err = os.Chmod(dst, fi.Mode().Perm())
	}
	return err
}
