package output

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// A Sink compresses one layer into the memo while the build writes its tar, so that
// a build whose image will leave kiln (a push, a tarball) compresses each new layer in
// the same pass that writes it, overlapped with reading the files, as kaniko did,
// instead of in a second pass over the finished tar at export. CompressImage then
// finds the layer in the memo. A Sink is used by one goroutine.
type Sink struct {
	c     *Compressor
	tmp   *os.File
	buf   *bufio.Writer
	h     hash.Hash
	n     countingSink
	zw    io.WriteCloser
	err   error
	ended bool
}

// NewSink starts compressing a layer into the memo; nil when the compressor keeps
// layers uncompressed (there is nothing to do ahead of the output).
func (c *Compressor) NewSink() (*Sink, error) {
	if c == nil || c.kind == Uncompressed {
		return nil, nil
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return nil, fmt.Errorf("compressing layer: %w", err)
	}
	tmp, err := os.CreateTemp(c.dir, ".blob-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("compressing layer: %w", err)
	}
	s := &Sink{c: c, tmp: tmp, buf: bufio.NewWriterSize(tmp, 1<<20), h: sha256.New()}
	if s.zw, err = c.newWriter(io.MultiWriter(s.buf, s.h, &s.n)); err != nil {
		s.Abort()
		return nil, err
	}
	return s, nil
}

// Write takes the next bytes of the layer's tar. A failure is kept and returned by
// Commit rather than failing the layer write: the output can still compress later.
func (s *Sink) Write(p []byte) (int, error) {
	if s.err == nil {
		_, s.err = s.zw.Write(p)
	}
	return len(p), nil
}

// Commit finishes the blob and records it in the memo as the compression of diffID,
// the layer's diff ID, which the writer knows only at the end of the tar.
func (s *Sink) Commit(diffID v1.Hash) error {
	if s.ended {
		return errors.New("compressing layer: sink already ended")
	}
	defer s.Abort()
	if s.err != nil {
		return fmt.Errorf("compressing layer: %w", s.err)
	}
	if err := s.zw.Close(); err != nil {
		return fmt.Errorf("compressing layer: %w", err)
	}
	if err := s.buf.Flush(); err != nil {
		return fmt.Errorf("compressing layer: %w", err)
	}
	if err := s.tmp.Close(); err != nil {
		return fmt.Errorf("compressing layer: %w", err)
	}
	digest := hashOf(s.h)
	if err := os.Rename(s.tmp.Name(), s.c.blobPath(digest)); err != nil {
		return fmt.Errorf("compressing layer: %w", err)
	}
	raw, err := json.Marshal(memoEntry{Digest: digest, Size: int64(s.n)})
	if err != nil {
		return err
	}
	if err := writeFileAtomic(s.c.memoKey(diffID), raw); err != nil {
		return fmt.Errorf("compressing layer: %w", err)
	}
	return nil
}

// Abort drops the blob in progress; after Commit it does nothing.
func (s *Sink) Abort() {
	if s.ended {
		return
	}
	s.ended = true
	if s.zw != nil && s.err == nil {
		s.zw.Close() // stops pgzip's goroutines
	}
	s.tmp.Close()
	os.Remove(s.tmp.Name()) // no-op once renamed
}
