package isolation

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// scaffold creates the mount points a root lacks (a FROM scratch image has no /proc,
// busybox no /etc/hosts) and removes them again after the RUN, restoring the access
// and modification times of the directories it created them in. The builder diffs the
// root after every RUN, so `RUN true` must leave it exactly as it was.
//
// It lives in the parent: the child's mount namespace dies with the child, but these
// are plain files and directories in the root, and removing them must happen even
// when the child is killed.
//
// What cannot be restored is the change time (ctime) of those parent directories.
type scaffold struct {
	root    string
	created []createdPath
	parents map[string]*parentDir
	order   []string // keys of parents, in the order first seen
}

type createdPath struct {
	path   string
	parent string
	dir    bool
	placed bool // put there by place: removed whatever its content, while the same inode
	dev    uint64
	ino    uint64
}

// parentDir is an existing directory scaffold created something in.
type parentDir struct {
	atime, mtime unix.Timespec // before scaffold touched it
	ours         unix.Timespec // mtime after scaffold's last creation in it
	keep         bool          // something created in it could not be removed
}

func newScaffold(root string) *scaffold {
	return &scaffold{root: root, parents: map[string]*parentDir{}}
}

// ensure makes the image path p exist in the root, as a directory when dir is set and
// as a file otherwise, creating missing components. Symlinks are resolved inside the
// root, never on the host. It returns the host path to mount on, or "" when p cannot
// serve as that kind of mount point (say, /proc is a regular file in the image).
func (s *scaffold) ensure(p string, dir bool) (string, error) {
	resolved, err := securejoin.SecureJoin(s.root, p)
	if err != nil {
		return "", fmt.Errorf("resolve %s in %s: %w", p, s.root, err)
	}
	rel, err := filepath.Rel(s.root, resolved)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return "", nil // resolves to the root itself (a /proc -> / link): never mount over it
	}
	cur := s.root
	parts := strings.Split(rel, string(filepath.Separator))
	for i, name := range parts {
		next := filepath.Join(cur, name)
		wantDir := dir || i < len(parts)-1
		fi, err := os.Lstat(next)
		switch {
		case err == nil:
			if fi.Mode()&fs.ModeSymlink != 0 || fi.IsDir() != wantDir {
				return "", nil
			}
		case errors.Is(err, fs.ErrNotExist):
			if err := s.create(cur, next, wantDir); err != nil {
				return "", err
			}
		default:
			return "", fmt.Errorf("mount point %s: %w", next, err)
		}
		cur = next
	}
	return cur, nil
}

func (s *scaffold) create(parent, p string, dir bool) error {
	if err := s.noteParent(parent); err != nil {
		return err
	}
	if dir {
		if err := os.Mkdir(p, 0o755); err != nil {
			return fmt.Errorf("create mount point %s: %w", p, err)
		}
	} else {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_NOFOLLOW, 0o644)
		if err != nil {
			return fmt.Errorf("create mount point %s: %w", p, err)
		}
		f.Close()
	}
	if err := s.record(createdPath{path: p, parent: parent, dir: dir}); err != nil {
		return fmt.Errorf("create mount point %s: %w", p, err)
	}
	return nil
}

// record remembers a path the scaffold created, with its identity, for undo, and the
// parent's mtime as the creation left it.
func (s *scaffold) record(cp createdPath) error {
	var st unix.Stat_t
	if err := unix.Lstat(cp.path, &st); err != nil {
		return err
	}
	cp.dev, cp.ino = st.Dev, st.Ino
	s.created = append(s.created, cp)
	if pd := s.parents[cp.parent]; pd != nil {
		var pst unix.Stat_t
		if err := unix.Lstat(cp.parent, &pst); err != nil {
			return fmt.Errorf("stat %s: %w", cp.parent, err)
		}
		pd.ours = pst.Mtim
	}
	return nil
}

// place creates the host path p in the existing directory parent with create (which
// must create p and nothing else), recording it for undo like a mount point.
func (s *scaffold) place(parent, p string, create func() error) error {
	if err := s.noteParent(parent); err != nil {
		return err
	}
	if err := create(); err != nil {
		_ = os.Remove(p)
		return fmt.Errorf("place %s: %w", p, err)
	}
	if err := s.record(createdPath{path: p, parent: parent, placed: true}); err != nil {
		return fmt.Errorf("place %s: %w", p, err)
	}
	return nil
}

// noteParent records the times of an existing directory before the first creation in
// it. Directories scaffold created itself are removed, not restored.
func (s *scaffold) noteParent(dir string) error {
	for _, c := range s.created {
		if c.path == dir {
			return nil
		}
	}
	if _, ok := s.parents[dir]; ok {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("stat %s: %w", dir, err)
	}
	s.parents[dir] = &parentDir{atime: st.Atim, mtime: st.Mtim, ours: st.Mtim}
	s.order = append(s.order, dir)
	return nil
}

// undo removes what ensure created, newest first, as long as each is still the empty
// file or directory it made (a RUN may have filled a directory it created: that stays,
// and so does the parent's new mtime). A parent's times are restored only when the RUN
// did not modify the parent itself, which its mtime tells.
func (s *scaffold) undo() error {
	var errs []error
	untouched := map[string]bool{}
	for _, dir := range s.order {
		var st unix.Stat_t
		untouched[dir] = unix.Lstat(dir, &st) == nil && st.Mtim == s.parents[dir].ours
	}
	for i := len(s.created) - 1; i >= 0; i-- {
		c := s.created[i]
		removed, err := removeIfPristine(c)
		if err != nil {
			errs = append(errs, err)
		}
		if !removed {
			if pd := s.parents[c.parent]; pd != nil {
				pd.keep = true
			}
		}
	}
	for _, dir := range s.order {
		pd := s.parents[dir]
		if !untouched[dir] || pd.keep {
			continue
		}
		ts := []unix.Timespec{pd.atime, pd.mtime}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, dir, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			errs = append(errs, fmt.Errorf("restore times of %s: %w", dir, err))
		}
	}
	s.created, s.parents, s.order = nil, map[string]*parentDir{}, nil
	return errors.Join(errs...)
}

// removeIfPristine removes c when it is still the same inode and still empty.
func removeIfPristine(c createdPath) (bool, error) {
	var st unix.Stat_t
	if err := unix.Lstat(c.path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return true, nil
		}
		return false, fmt.Errorf("remove mount point %s: %w", c.path, err)
	}
	if st.Dev != c.dev || st.Ino != c.ino {
		return false, nil
	}
	switch {
	case c.placed:
	case c.dir:
		entries, err := os.ReadDir(c.path)
		if err != nil || len(entries) > 0 {
			return false, nil
		}
	case st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != 0:
		return false, nil
	}
	if err := os.Remove(c.path); err != nil {
		return false, fmt.Errorf("remove mount point %s: %w", c.path, err)
	}
	return true, nil
}
