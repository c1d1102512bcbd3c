package builder

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// hashMemo remembers the content digests of the build context's files across builds
// sharing a state directory, so a rebuild does not read an unchanged context again to
// compute COPY's cache key. Like BuildKit's contenthash, an entry is keyed by what
// changes when a file's content may have: path, device and inode, size, mode, and
// mtime and ctime to the nanosecond. ctime cannot be set from userspace, so a file
// written in place gets a new one even when its size and mtime are put back. Entries
// for files changed too recently to trust (see racyWindow) are not kept. The memo is a
// cache: a missing or unreadable file only means hashing again.
type hashMemo struct {
	path string           // the memo file; "" keeps nothing across builds
	now  func() time.Time // the clock (tests move it)

	once  sync.Once
	mu    sync.Mutex
	old   map[string]memoEntry // loaded from path
	cur   map[string]memoEntry // looked up or computed by this build
	dirty bool                 // cur has an entry old lacks
}

// memoEntry is one file's stat key and digest.
type memoEntry struct {
	Dev, Ino         uint64
	Size             int64
	Mode             uint32
	MtimeNs, CtimeNs int64
	Digest           string
}

// racyWindow is how recent a change must not be for an entry to be kept: a file
// written again within the timestamp granularity of the moment it was hashed could
// keep its ctime (git's "racily clean" entries). Two seconds covers the coarsest
// timestamps Linux filesystems keep (FAT's).
const racyWindow = 2 * time.Second

// memoLimit bounds the entries kept (about 150 bytes each on disk): past it, only
// those this build used are saved. Builds whose contexts are extracted afresh each
// time (kiln serve) add none: their files' ctimes are always too recent.
const memoLimit = 50_000

// newHashMemo returns the memo of the state directory stateDir ("" for none).
func newHashMemo(stateDir string) *hashMemo {
	m := &hashMemo{now: time.Now}
	if stateDir != "" {
		m.path = filepath.Join(stateDir, "cache", "context-hashes")
	}
	return m
}

func entryKey(st *syscall.Stat_t) memoEntry {
	return memoEntry{
		Dev: uint64(st.Dev), Ino: st.Ino, Size: st.Size, Mode: st.Mode,
		MtimeNs: st.Mtim.Nano(), CtimeNs: st.Ctim.Nano(),
	}
}

// load reads the memo file once; an unreadable one is ignored.
func (m *hashMemo) load() {
	m.once.Do(func() {
		m.old, m.cur = map[string]memoEntry{}, map[string]memoEntry{}
		if m.path == "" {
			return
		}
		data, err := os.ReadFile(m.path)
		if err != nil {
			return
		}
		if old, err := decodeMemo(data); err == nil {
			m.old, m.cur = old, make(map[string]memoEntry, len(old))
		}
	})
}

// lookup returns the digest remembered for the file at host with stat st.
func (m *hashMemo) lookup(host string, st *syscall.Stat_t) (string, bool) {
	if m == nil {
		return "", false
	}
	m.load()
	k := entryKey(st)
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.cur[host]
	if !ok {
		e, ok = m.old[host]
	}
	if !ok || e.Digest == "" {
		return "", false
	}
	d := e.Digest
	e.Digest = ""
	if e != k {
		return "", false
	}
	m.cur[host] = memoEntry{Dev: k.Dev, Ino: k.Ino, Size: k.Size, Mode: k.Mode, MtimeNs: k.MtimeNs, CtimeNs: k.CtimeNs, Digest: d}
	return d, true
}

// remember records digest for the file at host, read from start on with the stat
// before and after, unless it changed too recently to be trusted: a change later than
// start gets a timestamp after start-racyWindow on any filesystem whose timestamps
// are at least that fine, so it cannot be mistaken for the change seen.
func (m *hashMemo) remember(host string, start time.Time, before, after *syscall.Stat_t, digest string) {
	if m == nil {
		return
	}
	k := entryKey(before)
	if k != entryKey(after) {
		return // changed while being read
	}
	limit := start.Add(-racyWindow).UnixNano()
	if k.CtimeNs >= limit || k.MtimeNs >= limit {
		return
	}
	m.load()
	k.Digest = digest
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cur[host] = k
	m.dirty = true
}

// save writes the memo back when this build added to it: the entries of this build,
// and the older ones while there are not too many. Errors are ignored; the memo is a
// cache.
func (m *hashMemo) save() {
	if m == nil || m.path == "" {
		return
	}
	m.mu.Lock()
	if !m.dirty {
		m.mu.Unlock()
		return
	}
	all := make(map[string]memoEntry, len(m.old)+len(m.cur))
	if len(m.old)+len(m.cur) <= memoLimit {
		for k, e := range m.old {
			all[k] = e
		}
	}
	for k, e := range m.cur {
		all[k] = e
	}
	m.dirty = false
	m.mu.Unlock()
	var buf bytes.Buffer
	if encodeMemo(&buf, all) != nil {
		return
	}
	_ = writeReplace(m.path, buf.Bytes())
}

// writeReplace writes data to path through a temporary file renamed over it, so a
// reader sees the old file or the new one, never half of one. It does not fsync: a
// memo lost in a crash is only hashed again.
func writeReplace(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".context-hashes-*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
	}
	return err
}

// memoDigest hashes the file at host as fileDigest does, and remembers the digest in
// memo (nil: none) when the file did not change while it was read.
func memoDigest(memo *hashMemo, host string, buf []byte) (string, error) {
	if memo == nil {
		return fileDigest(host, buf)
	}
	start := memo.now()
	f, err := os.Open(host)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var before, after syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &before); err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, buf); err != nil {
		return "", err
	}
	d := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if err := syscall.Fstat(int(f.Fd()), &after); err == nil {
		memo.remember(host, start, &before, &after, d)
	}
	return d, nil
}
