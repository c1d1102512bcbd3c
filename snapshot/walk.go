package snapshot

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// walker walks a tree with a bounded number of goroutines, one directory at a time
// each. It runs in one of two modes:
//
//   - recording (prev is nil): every path found is stored in files (Scan, Update);
//   - comparing (prev is set): a path whose record equals its record in prev is only
//     marked in seen, and files receives just the paths that are new or differ, plus
//     everything below a replaced directory (Diff). An unchanged tree so costs one
//     statx per path and no allocation per file.
type walker struct {
	ctx  context.Context
	cfg  scanConfig
	sem  chan struct{} // one token per extra goroutine
	wg   sync.WaitGroup
	mu   sync.Mutex // guards files, below, found, free and err
	err  error
	done chan struct{} // closed on the first error
	once sync.Once

	files map[string]fileInfo
	slots *atomic.Int32 // the next free slot number, for paths prev does not hold

	prev  map[string]fileInfo
	seen  []bool          // seen[slot] is set for each path of prev met; one writer per slot
	below map[string]bool // paths stored only because an ancestor directory was replaced
	found int             // how many paths of prev were met

	free []*walkScratch // scratch space of goroutines that ended, for the next ones
}

func newWalker(ctx context.Context, cfg scanConfig, files map[string]fileInfo, slots *atomic.Int32) *walker {
	return &walker{
		ctx:   ctx,
		cfg:   cfg,
		sem:   make(chan struct{}, runtime.NumCPU()),
		done:  make(chan struct{}),
		files: files,
		slots: slots,
	}
}

// compareWith switches the walker to comparing against prev, whose slots are all
// below slots.
func (w *walker) compareWith(prev map[string]fileInfo) {
	w.prev = prev
	w.seen = make([]bool, w.slots.Load())
	w.below = map[string]bool{}
}

// subdir is a directory still to walk. replaced is set when it or an ancestor is a
// directory that replaced another: everything below it goes into the layer.
type subdir struct {
	host, img string
	replaced  bool
}

// walk records the children of the directory sub, handing subdirectories to a new
// goroutine while one may start and walking them inline otherwise, so the total
// stays bounded without a queue. Every goroutine has scratch space of its own.
func (w *walker) walk(sub subdir) {
	sc := w.scratch()
	w.walkWith(sub, sc)
	w.mu.Lock()
	w.free = append(w.free, sc)
	w.mu.Unlock()
}

// scratch returns the scratch space of a goroutine that ended, or a new one: a
// walk starts a goroutine per directory while there is a free core.
func (w *walker) scratch() *walkScratch {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := len(w.free); n > 0 {
		sc := w.free[n-1]
		w.free = w.free[:n-1]
		return sc
	}
	return &walkScratch{dirents: make([]byte, direntBufferSize)}
}

// walkScratch is one walking goroutine's reusable buffers.
type walkScratch struct {
	dirents []byte   // getdents buffer
	key     []byte   // the image path being looked at
	recs    []record // the current directory's records, stored under one lock
}

// walkWith is walk with the goroutine's scratch space.
func (w *walker) walkWith(sub subdir, sc *walkScratch) {
	if w.stopped() {
		return
	}
	subdirs, err := w.readDir(sub, sc)
	if err != nil {
		w.fail(err)
		return
	}
	for _, sub := range subdirs {
		select {
		case w.sem <- struct{}{}:
			w.wg.Add(1)
			go func() {
				defer w.wg.Done()
				w.walk(sub)
				<-w.sem
			}()
		default:
			w.walkWith(sub, sc)
		}
	}
}

func (w *walker) stopped() bool {
	select {
	case <-w.done:
		return true
	default:
	}
	if err := w.ctx.Err(); err != nil {
		w.fail(err)
		return true
	}
	return false
}

func (w *walker) fail(err error) {
	w.once.Do(func() {
		w.mu.Lock()
		w.err = err
		w.mu.Unlock()
		close(w.done)
	})
}

// wait waits for all goroutines and returns the first error.
func (w *walker) wait() error {
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// direntBufferSize is the getdents buffer of each walking goroutine.
const direntBufferSize = 32 << 10

type record struct {
	img      string
	fi       fileInfo
	replaced bool
}

// readDir stats the children of one directory through its descriptor (shorter
// kernel path walks than full paths) and stores those to keep under one lock
// acquisition.
func (w *walker) readDir(dir subdir, sc *walkScratch) ([]subdir, error) {
	fd, err := unix.Open(dir.host, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return nil, nil // removed or replaced while walking
		}
		return nil, &os.PathError{Op: "open", Path: dir.host, Err: err}
	}
	defer unix.Close(fd)
	checkIgnore := w.cfg.ignore.within(dir.img) || w.cfg.ignore.Match(dir.img)
	prefix := dir.img
	if prefix == "/" {
		prefix = ""
	}
	recs := sc.recs[:0]
	var subdirs []subdir
	found := 0
	err = readDirents(fd, dir.host, sc.dirents, func(name []byte) error {
		base := name[:len(name)-1]
		sc.key = append(append(append(sc.key[:0], prefix...), '/'), base...)
		if checkIgnore && w.cfg.ignore.Match(string(sc.key)) {
			return nil
		}
		fi, ok, err := statxAt(fd, dir.host, name, w.cfg.mode)
		if w.cfg.noBirthTime {
			fi.btime = 0
		}
		if err != nil || !ok {
			return err
		}
		keep, replaced, met := w.compare(sc.key, &fi, dir.replaced)
		if met {
			found++
		}
		if !keep && !fi.isDir() {
			return nil
		}
		img := string(sc.key) // the one allocation of a path that is kept
		if keep {
			recs = append(recs, record{img: img, fi: fi, replaced: dir.replaced})
		}
		if fi.isDir() {
			subdirs = append(subdirs, subdir{host: joinHost(dir.host, string(base)), img: img, replaced: dir.replaced || replaced})
		}
		return nil
	})
	sc.recs = recs[:0]
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	for _, r := range recs {
		w.files[r.img] = r.fi
		if r.replaced {
			w.below[r.img] = true
		}
	}
	w.found += found
	w.mu.Unlock()
	clear(recs) // the scratch space keeps no strings alive
	return subdirs, nil
}

// compare decides what happens to the path key with record fi: keep reports that
// files must store it, replaced that it is a directory replacing another (so all
// below it is new to the layer), met that prev holds it. It gives fi its slot: the
// one of its record in prev, or a new one.
func (w *walker) compare(key []byte, fi *fileInfo, below bool) (keep, replaced, met bool) {
	if w.prev == nil {
		fi.slot = w.slots.Add(1) - 1
		return true, false, false
	}
	o, ok := w.prev[string(key)] // a lookup by []byte key does not allocate
	if !ok {
		fi.slot = w.slots.Add(1) - 1
		return true, false, false
	}
	w.seen[o.slot] = true
	fi.slot = o.slot
	replaced = fi.isDir() && (!o.isDir() || !sameInode(&o, fi))
	return below || *fi != o, replaced, true
}

// readDirents calls fn with the name of every entry of the open directory fd but
// "." and "..", as a NUL-terminated slice of buf valid until fn returns. It reads
// getdents records itself: os.File would cost extra fcntl and poller syscalls per
// directory, and unix.ParseDirent a string per name that statx would copy again.
func readDirents(fd int, host string, buf []byte, fn func(name []byte) error) error {
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			return &os.PathError{Op: "getdents", Path: host, Err: err}
		}
		if n <= 0 {
			return nil
		}
		for off := 0; off < n; {
			// struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, name.
			rec := buf[off:n]
			if len(rec) < direntNameOffset {
				return fmt.Errorf("getdents %s: truncated record", host)
			}
			reclen := int(binary.NativeEndian.Uint16(rec[16:18]))
			if reclen < direntNameOffset || reclen > len(rec) {
				return fmt.Errorf("getdents %s: bad record length %d", host, reclen)
			}
			off += reclen
			ino := binary.NativeEndian.Uint64(rec[0:8])
			name := rec[direntNameOffset:reclen]
			end := bytes.IndexByte(name, 0)
			if ino == 0 || end <= 0 {
				continue
			}
			name = name[:end+1]
			if string(name) == ".\x00" || string(name) == "..\x00" {
				continue
			}
			if err := fn(name); err != nil {
				return err
			}
		}
	}
}

// direntNameOffset is where d_name starts in a linux_dirent64 record.
const direntNameOffset = 19
