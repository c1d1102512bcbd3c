package buildkitapi

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	"github.com/tonistiigi/fsutil"
	fstypes "github.com/tonistiigi/fsutil/types"
)

// maxKnownDigests bounds the file digests all cached contexts remember together
// (about 100 bytes each): beyond it, the builder reads the files to hash them.
const maxKnownDigests = 200_000

// fileDigests remembers the content digest of every regular file file sync wrote into
// one cached context, as it wrote it, so that the build's step-cache key does not read
// the context again, and a rebuild reads only the files that changed. It is file
// sync's CacheUpdater (fed while receiving) and the context's contexts.FileDigests
// (asked while building); the two never overlap, a context's entry being busy for
// one build at a time.
type fileDigests struct {
	budget *atomic.Int64 // the cache's: digests any context may still add

	mu    sync.Mutex
	files map[string]knownDigest
}

type knownDigest struct {
	size, mtime int64
	sum         [sha256.Size]byte
}

func newFileDigests(budget *atomic.Int64) *fileDigests {
	return &fileDigests{budget: budget, files: map[string]knownDigest{}}
}

// MarkSupported implements filesync.CacheUpdater.
func (d *fileDigests) MarkSupported(bool) {}

// ContentHasher implements filesync.CacheUpdater: the digest of a regular file is the
// sha256 of its content, as the builder's.
func (d *fileDigests) ContentHasher() fsutil.ContentHasher {
	return func(*fstypes.Stat) (hash.Hash, error) { return sha256.New(), nil }
}

// HandleChange implements filesync.CacheUpdater: a file written (its content
// complete), a path removed or replaced by something else than a file.
func (d *fileDigests) HandleChange(kind fsutil.ChangeKind, p string, fi os.FileInfo, err error) error {
	if err != nil {
		return nil
	}
	p = filepath.ToSlash(p)
	d.mu.Lock()
	defer d.mu.Unlock()
	if kind == fsutil.ChangeKindDelete {
		d.forgetLocked(p, true)
		return nil
	}
	if fi == nil || !fi.Mode().IsRegular() {
		d.forgetLocked(p, false) // a directory's metadata leaves its files as they are
		return nil
	}
	st, ok := fi.Sys().(*fstypes.Stat)
	h, hok := fi.(interface{ Digest() digest.Digest })
	sum, sumOK := sha256Sum(h, hok)
	if !ok || !sumOK {
		d.forgetLocked(p, false)
		return nil
	}
	if _, had := d.files[p]; !had {
		if d.budget.Add(-1) < 0 {
			d.budget.Add(1)
			return nil
		}
	}
	d.files[p] = knownDigest{size: st.Size, mtime: st.ModTime, sum: sum}
	return nil
}

// forgetLocked drops what is known of p and, with below, of the paths below it.
func (d *fileDigests) forgetLocked(p string, below bool) {
	if _, ok := d.files[p]; ok {
		delete(d.files, p)
		d.budget.Add(1)
	}
	if !below {
		return
	}
	prefix := p + "/"
	for q := range d.files {
		if strings.HasPrefix(q, prefix) {
			delete(d.files, q)
			d.budget.Add(1)
		}
	}
}

// FileDigest implements contexts.FileDigests.
func (d *fileDigests) FileDigest(rel string, info fs.FileInfo) (string, bool) {
	d.mu.Lock()
	k, ok := d.files[rel]
	d.mu.Unlock()
	if !ok || !info.Mode().IsRegular() || info.Size() != k.size || info.ModTime().UnixNano() != k.mtime {
		return "", false
	}
	return digest.NewDigestFromBytes(digest.SHA256, k.sum[:]).String(), true
}

// release gives the digests' share of the budget back: the context is gone.
func (d *fileDigests) release() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.budget.Add(int64(len(d.files)))
	d.files = map[string]knownDigest{}
}

// sha256Sum is the sha256 a hashed file's digest holds.
func sha256Sum(h interface{ Digest() digest.Digest }, ok bool) ([sha256.Size]byte, bool) {
	var sum [sha256.Size]byte
	if !ok {
		return sum, false
	}
	dg := h.Digest()
	if dg.Algorithm() != digest.SHA256 {
		return sum, false
	}
	n, err := hex.Decode(sum[:], []byte(dg.Encoded()))
	return sum, err == nil && n == sha256.Size
}
