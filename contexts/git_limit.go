package contexts

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/go-git/go-billy/v5"
)

// cloneBudget holds a git clone to the limits an archive context gets
// (WithMaxBytes, WithMaxEntries): the bytes written and the files created. go-git
// writes through billy filesystems, so a budget wrapped around them stops the clone
// at the first write past the limit, before a huge repository fills the disk.
type cloneBudget struct {
	what       string // what is counted, for the error
	maxBytes   int64  // 0: unlimited
	maxEntries int64  // 0: unlimited; only counted where entries is set
	bytes      atomic.Int64
	entries    atomic.Int64
	progress   func()       // nil, or told of every write (the clone's stall watchdog)
	closed     *atomic.Bool // nil, or set once the clone was abandoned: refuse every write

	mu  sync.Mutex
	err error // the first limit exceeded
}

// exceeded records and returns the budget's error.
func (b *cloneBudget) exceeded(format string, args ...any) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil {
		b.err = fmt.Errorf("%w: %s: %s", ErrLimitExceeded, b.what, fmt.Sprintf(format, args...))
	}
	return b.err
}

// failed returns the limit the clone ran into, nil if none. go-git may not wrap the
// write error it met, so the clone's error is replaced by this one.
func (b *cloneBudget) failed() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// errAbandoned refuses the writes of a clone FromGit gave up on.
var errAbandoned = errors.New("git clone abandoned")

// moved reports progress, and refuses it once the clone was abandoned.
func (b *cloneBudget) moved() error {
	if b.closed != nil && b.closed.Load() {
		return errAbandoned
	}
	if b.progress != nil {
		b.progress()
	}
	return nil
}

func (b *cloneBudget) addBytes(n int) error {
	if err := b.moved(); err != nil {
		return err
	}
	if b.maxBytes > 0 && b.bytes.Add(int64(n)) > b.maxBytes {
		return b.exceeded("more than %d bytes", b.maxBytes)
	}
	return nil
}

func (b *cloneBudget) addEntry() error {
	if err := b.moved(); err != nil {
		return err
	}
	if b.maxEntries > 0 && b.entries.Add(1) > b.maxEntries {
		return b.exceeded("more than %d files", b.maxEntries)
	}
	return nil
}

// limitFS is a billy filesystem whose writes are charged to a budget. entries says
// whether created files count too (the checkout's, not the repository's internals).
type limitFS struct {
	billy.Filesystem
	budget  *cloneBudget
	entries bool
}

// Create creates a file, as OpenFile does.
func (fs *limitFS) Create(name string) (billy.File, error) {
	return fs.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
}

// OpenFile opens a file whose writes are charged to the budget.
func (fs *limitFS) OpenFile(name string, flag int, perm os.FileMode) (billy.File, error) {
	if flag&(os.O_CREATE|os.O_WRONLY|os.O_RDWR) != 0 {
		if err := fs.budget.moved(); err != nil {
			return nil, err
		}
	}
	if fs.entries && flag&os.O_CREATE != 0 {
		if err := fs.budget.addEntry(); err != nil {
			return nil, err
		}
	}
	f, err := fs.Filesystem.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &limitFile{File: f, budget: fs.budget}, nil
}

// TempFile creates a temporary file (go-git receives packfiles in one) charged to
// the budget.
func (fs *limitFS) TempFile(dir, prefix string) (billy.File, error) {
	if err := fs.budget.moved(); err != nil {
		return nil, err
	}
	f, err := fs.Filesystem.TempFile(dir, prefix)
	if err != nil {
		return nil, err
	}
	return &limitFile{File: f, budget: fs.budget}, nil
}

// Symlink creates a symbolic link, counted as an entry.
func (fs *limitFS) Symlink(target, link string) error {
	if fs.entries {
		if err := fs.budget.addEntry(); err != nil {
			return err
		}
	}
	return fs.Filesystem.Symlink(target, link)
}

// MkdirAll creates directories, unless the clone was abandoned.
func (fs *limitFS) MkdirAll(name string, perm os.FileMode) error {
	if err := fs.budget.moved(); err != nil {
		return err
	}
	return fs.Filesystem.MkdirAll(name, perm)
}

// Chroot keeps the budget for the sub-tree (submodules are cloned into one).
func (fs *limitFS) Chroot(path string) (billy.Filesystem, error) {
	sub, err := fs.Filesystem.Chroot(path)
	if err != nil {
		return nil, err
	}
	return &limitFS{Filesystem: sub, budget: fs.budget, entries: fs.entries}, nil
}

// Chmod passes through: go-git makes packfiles read-only with it.
func (fs *limitFS) Chmod(name string, mode os.FileMode) error {
	if c, ok := fs.Filesystem.(billy.Chmod); ok {
		return c.Chmod(name, mode)
	}
	return billy.ErrNotSupported
}

// Capabilities are the wrapped filesystem's.
func (fs *limitFS) Capabilities() billy.Capability {
	return billy.Capabilities(fs.Filesystem)
}

// limitFile charges its writes to a budget.
type limitFile struct {
	billy.File
	budget *cloneBudget
}

func (f *limitFile) Write(p []byte) (int, error) {
	if err := f.budget.addBytes(len(p)); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}
