package contexts

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// MaxDockerfileBytes bounds a Dockerfile read into memory, whichever door reads it: a
// Dockerfile is text, and a file of gigabytes named Dockerfile is a mistake or an attack.
const MaxDockerfileBytes = 16 << 20

// ErrOutsideContext marks a Dockerfile path that leaves the build context (dockerd's
// words for it).
var ErrOutsideContext = errors.New("forbidden path outside the build context")

// ReadDockerfile reads the Dockerfile at rel, a slash-separated path inside the context
// directory dir. A path that leaves the context ("../x", "/x") is ErrOutsideContext;
// symlinks are resolved inside dir, so the context never makes kiln read a file of the
// host. A missing path, or one that is not a regular file, is fs.ErrNotExist; a file
// over MaxDockerfileBytes is an error saying so.
func ReadDockerfile(dir, rel string) ([]byte, error) {
	clean := path.Clean(strings.TrimPrefix(rel, "./"))
	if clean == ".." || strings.HasPrefix(clean, "../") || path.IsAbs(clean) {
		return nil, fmt.Errorf("%w: %s", ErrOutsideContext, rel)
	}
	h, err := pathrs.OpenInRoot(dir, clean)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	if err := checkRegular(h, rel); err != nil {
		return nil, err
	}
	f, err := pathrs.Reopen(h, unix.O_RDONLY) // OpenInRoot's handle is O_PATH
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readCapped(f, rel)
}

// ReadHostDockerfile reads a Dockerfile the operator named by a path of the host (kiln
// build's absolute --dockerfile), with ReadDockerfile's limits but no root: the path is
// trusted, its content bounded.
func ReadHostDockerfile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := checkRegular(f, name); err != nil {
		return nil, err
	}
	return readCapped(f, name)
}

func checkRegular(f *os.File, name string) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file: %w", name, fs.ErrNotExist)
	}
	return nil
}

func readCapped(r io.Reader, name string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxDockerfileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxDockerfileBytes {
		return nil, fmt.Errorf("the Dockerfile %s is larger than the %d MiB limit", name, MaxDockerfileBytes>>20)
	}
	return data, nil
}
