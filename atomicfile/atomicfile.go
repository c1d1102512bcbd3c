// Package atomicfile replaces small files (indexes, cache records) so that readers, and a
// crash at any moment, see either the old content or the new, never a mix.
package atomicfile

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Option changes how WriteFile writes.
type Option func(*settings)

type settings struct {
	beforeRename func(tmp string) error
}

// BeforeRename runs f with the temporary file's path just before it is renamed over the
// destination; an error from f abandons the write. Tests use it to stop there, as a crash
// would.
func BeforeRename(f func(tmp string) error) Option {
	return func(s *settings) { s.beforeRename = f }
}

// WriteFile replaces path with data: the data goes to a temporary file in the same
// directory (named ".<base>.tmp-*"), is synced and given perm, and is renamed over path;
// the directory is then synced so the rename itself survives a power cut. On failure the
// temporary file is removed and path is left as it was.
func WriteFile(path string, data []byte, perm fs.FileMode, opts ...Option) (err error) {
	var s settings
	for _, o := range opts {
		o(&s)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err = tmp.Chmod(perm); err != nil {
		return fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp.Name(), err)
	}
	if s.beforeRename != nil {
		if err = s.beforeRename(tmp.Name()); err != nil {
			return err
		}
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	return SyncDir(dir)
}

// SyncDir makes a rename (or a new name) in dir durable, for writers that rename
// streamed files into place themselves.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
