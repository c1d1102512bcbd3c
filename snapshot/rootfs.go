package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// rootFS maps image paths to host paths inside one root directory, resolving
// symlinks as if the root were "/", so that no write can land outside it.
//
// Resolved directories are cached: a tar stream writes many entries into the same
// directory, and SecureJoin costs one lstat per path component. A cached host path
// consists only of real directories, so it stays valid until a directory is removed;
// every removal of a directory therefore calls forget.
type rootFS struct {
	root string            // absolute, cleaned host path
	dirs map[string]string // image dir -> host dir, both cleaned
}

// newRootFS returns a resolver for root, which must exist.
func newRootFS(root string) (*rootFS, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("root %s: %w", root, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("root: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("root %s: not a directory", abs)
	}
	return &rootFS{root: filepath.Clean(abs), dirs: map[string]string{}}, nil
}

// forget drops every cached directory; called whenever a directory is removed.
func (r *rootFS) forget() {
	clear(r.dirs)
}

// imagePath returns the image path of host, a path inside the root.
func (r *rootFS) imagePath(host string) string {
	if r.root == "/" {
		return host // an in-place build: host paths are image paths
	}
	rel := strings.TrimPrefix(host, r.root)
	if rel == "" {
		return "/"
	}
	return rel
}

// dir resolves the image directory dir inside the root, following symlinks within
// the root. With create, missing directories are created 0755 (owned by the caller,
// root in a real build); without it, a missing directory yields an error satisfying
// errors.Is(err, fs.ErrNotExist).
func (r *rootFS) dir(dir string, create bool) (string, error) {
	if dir == "/" {
		return r.root, nil
	}
	if host, ok := r.dirs[dir]; ok {
		return host, nil
	}
	host, err := securejoin.SecureJoin(r.root, dir)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", dir, err)
	}
	if create {
		if err := r.mkdirAll(host); err != nil {
			return "", err
		}
	} else {
		var st unix.Stat_t
		if err := unix.Lstat(host, &st); err != nil {
			return "", &os.PathError{Op: "lstat", Path: host, Err: err}
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return "", &os.PathError{Op: "resolve", Path: host, Err: unix.ENOTDIR}
		}
	}
	r.dirs[dir] = host
	return host, nil
}

// mkdirAll creates host and its missing parents below the root. host comes from
// SecureJoin, so its existing components hold no symlinks; one that is not a
// directory is an error rather than something to replace.
func (r *rootFS) mkdirAll(host string) error {
	if host == r.root {
		return nil
	}
	var st unix.Stat_t
	err := unix.Lstat(host, &st)
	if err == nil {
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return &os.PathError{Op: "mkdir", Path: host, Err: unix.ENOTDIR}
		}
		return nil
	}
	if !errors.Is(err, unix.ENOENT) {
		return &os.PathError{Op: "lstat", Path: host, Err: err}
	}
	if err := r.mkdirAll(filepath.Dir(host)); err != nil {
		return err
	}
	if err := unix.Mkdir(host, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return &os.PathError{Op: "mkdir", Path: host, Err: err}
	}
	// The umask may have narrowed 0755; parents Docker creates are exactly 0755.
	if err := unix.Chmod(host, 0o755); err != nil {
		return &os.PathError{Op: "chmod", Path: host, Err: err}
	}
	return nil
}

// cleanEntryName turns a tar entry name into a slash path relative to the tar's
// root ("." for the root itself). A name whose ".." components climb above the
// root is rejected.
func cleanEntryName(name string) (string, error) {
	p := path.Clean("/" + name)
	// Clean of an absolute path drops leading ".."; detect them on the relative form.
	rel := path.Clean(strings.TrimLeft(name, "/"))
	if rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("tar entry %q: path escapes the root", name)
	}
	if p == "/" {
		return ".", nil
	}
	return p[1:], nil
}
