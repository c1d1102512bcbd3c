package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/isolation"
)

// mountingMessage starts the Debug event sent when a stage root is an overlay on a
// cached base tree rather than an extraction; tests look for it.
const mountingMessage = "Mounting"

// overlays mounts the stage roots of one build on cached base trees and unmounts them
// when the build ends. Its zero value is unusable; see newOverlays.
type overlays struct {
	cache   *rootfsCache
	scratch string // upper and work directories: the build's own, removed with it

	mu      sync.Mutex
	probed  bool
	options string // extra mount options that the probe found to work
	err     error  // why overlays cannot be used, once probed
	mounted []string
}

// newOverlays returns the overlay manager of a build whose scratch directory is
// tmpDir, keeping base trees under cacheDir.
func newOverlays(cacheDir, tmpDir string) *overlays {
	return &overlays{cache: &rootfsCache{dir: cacheDir}, scratch: filepath.Join(tmpDir, "overlay")}
}

// mountBase makes the stage's empty root an overlay whose lower layer is the cached
// tree of the stage's base layers, extracting the tree first when it is not cached.
// It reports whether it mounted; when overlays cannot be used here it returns false
// and the caller extracts the layers as before.
func (s *stage) mountBase(ctx context.Context) (bool, error) {
	b := s.b
	o := b.overlays
	n := s.baseLayers
	if o == nil || n == 0 || s.extracted != 0 || b.ws.Isolation != isolation.Chroot {
		return false, nil
	}
	if err := o.probe(); err != nil {
		b.emit(Debug{Message: fmt.Sprintf("Not mounting the cached base: %v", err)})
		return false, nil
	}
	lower, err := o.cache.baseTree(ctx, s.state.layers[:n], b.ws.Ignore, b.emit)
	if err != nil {
		return false, err
	}
	dir := filepath.Join(o.scratch, fmt.Sprint(s.index))
	upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	if err := prepareUpper(lower, upper, work); err != nil {
		return false, err
	}
	if err := o.mount(lower, upper, work, s.root); err != nil {
		b.emit(Debug{Message: fmt.Sprintf("Not mounting the cached base: %v", err)})
		return false, nil
	}
	s.overlay = true
	s.extracted = n
	b.emit(Debug{Message: fmt.Sprintf("%s the cached base %s (%d layer%s) on the root of stage %d", mountingMessage, lower, n, plural(n), s.index)})
	return true, nil
}

// probe checks once per build that overlays can be mounted in the scratch directory:
// the kernel may lack overlayfs, kiln may lack CAP_SYS_ADMIN, or the scratch
// directory may itself be on an overlay, which cannot be an upper layer. Trying costs
// a millisecond and saves extracting a tree that could not be mounted.
func (o *overlays) probe() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.probed {
		return o.err
	}
	o.probed = true
	o.err = o.tryMount()
	return o.err
}

func (o *overlays) tryMount() error {
	if strings.ContainsAny(o.scratch+o.cache.dir, ",:\\") {
		return fmt.Errorf("%w: %s or %s has a character overlay options cannot carry", errNoOverlay, o.scratch, o.cache.dir)
	}
	dir := filepath.Join(o.scratch, "probe")
	defer os.RemoveAll(dir)
	paths := map[string]string{}
	for _, name := range []string{"lower", "upper", "work", "merged"} {
		paths[name] = filepath.Join(dir, name)
		if err := os.MkdirAll(paths[name], 0o700); err != nil {
			return fmt.Errorf("%w: %v", errNoOverlay, err)
		}
	}
	// volatile (Linux 5.10) drops the syncs of the upper layer, which is thrown away
	// with the build anyway: package managers sync every file they write.
	var err error
	for _, extra := range []string{",volatile", ""} {
		data := overlayData(paths["lower"], paths["upper"], paths["work"]) + extra
		if err = unix.Mount("overlay", paths["merged"], "overlay", 0, data); err == nil {
			o.options = extra
			return unmount(paths["merged"])
		}
		// A failed volatile mount may leave its work directory in use; start afresh.
		os.RemoveAll(paths["work"])
		os.MkdirAll(paths["work"], 0o700)
	}
	return fmt.Errorf("%w: mounting an overlay in %s: %v", errNoOverlay, o.scratch, err)
}

// mount mounts an overlay on target and records it for releaseRoots.
func (o *overlays) mount(lower, upper, work, target string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := unix.Mount("overlay", target, "overlay", 0, overlayData(lower, upper, work)+o.options); err != nil {
		return fmt.Errorf("mounting an overlay on %s: %w", target, err)
	}
	o.mounted = append(o.mounted, target)
	return nil
}

func overlayData(lower, upper, work string) string {
	return "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
}

// release unmounts every root this build mounted. Only once it succeeds may the
// build's scratch directory be removed: a removal through a root still mounted would
// only write whiteouts to the upper layer, but would waste the time the cache saves.
func (o *overlays) release() error {
	if o == nil {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	var errs []error
	for i := len(o.mounted) - 1; i >= 0; i-- {
		if err := unmount(o.mounted[i]); err != nil {
			errs = append(errs, err)
		}
	}
	o.mounted = nil
	return errors.Join(errs...)
}

// unmount unmounts target, detaching it when it is busy (a process a RUN left behind
// may still hold a file open): the scratch directory is private to the build.
func unmount(target string) error {
	err := unix.Unmount(target, 0)
	if errors.Is(err, unix.EBUSY) {
		err = unix.Unmount(target, unix.MNT_DETACH)
	}
	if err != nil && !errors.Is(err, unix.EINVAL) { // EINVAL: not mounted
		return fmt.Errorf("unmounting %s: %w", target, err)
	}
	return nil
}

// prepareUpper creates the upper and work directories. The upper one's root gives
// the merged root its owner, mode and times, so it takes the tree's.
func prepareUpper(lower, upper, work string) error {
	for _, d := range []string{upper, work} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	var st unix.Stat_t
	if err := unix.Lstat(lower, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: lower, Err: err}
	}
	if err := os.Lchown(upper, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if err := os.Chmod(upper, os.FileMode(st.Mode&0o777)|modeBits(st.Mode)); err != nil {
		return err
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, upper, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimes", Path: upper, Err: err}
	}
	return nil
}

// modeBits converts the setuid, setgid and sticky bits of a stat mode to Go's.
func modeBits(m uint32) os.FileMode {
	var out os.FileMode
	if m&unix.S_ISUID != 0 {
		out |= os.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		out |= os.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		out |= os.ModeSticky
	}
	return out
}
