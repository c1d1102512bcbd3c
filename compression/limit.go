package compression

import (
	"errors"
	"fmt"
	"io"
)

// ErrBomb marks a compressed stream that expands beyond the Limits it was opened with:
// a decompression bomb, or an archive larger than the reader accepts. Callers map it to
// "request too large" rather than to a server error.
var ErrBomb = errors.New("decompression limit exceeded")

// Limits bound what a compressed stream may expand to. Zero fields are unlimited.
type Limits struct {
	// MaxBytes is the most uncompressed bytes the stream may yield.
	MaxBytes int64
	// MaxRatio is the most uncompressed bytes per compressed byte the stream may yield
	// as a whole, once it has yielded RatioFloor bytes: small archives of zeros stay
	// fine, a 100 KB body that would expand to 10 GB stops after RatioFloor.
	MaxRatio int64
	// RatioFloor is how much a stream may yield before MaxRatio is checked; 0 means
	// DefaultRatioFloor.
	RatioFloor int64
	// What names the stream in errors ("the build context", "ADD app.tar.gz"), and
	// BytesSetting and RatioSetting the settings that raise each limit (e.g. "kiln serve --max-context-ratio").
	What         string
	BytesSetting string
	RatioSetting string
}

// DefaultRatioFloor is the output below which Limits.MaxRatio is not checked.
const DefaultRatioFloor = 64 << 20

// NewLimitedReader is NewReader with lim enforced on what the stream yields: a read
// past a limit fails with an error wrapping ErrBomb that names the limit and its
// setting. The ratio is only checked for compressed streams.
func NewLimitedReader(r io.Reader, lim Limits) (io.ReadCloser, Kind, error) {
	in := &countingReader{r: r}
	plain, k, err := NewReader(in)
	if err != nil {
		return nil, k, err
	}
	if k == Uncompressed {
		lim.MaxRatio = 0
	}
	if lim.RatioFloor == 0 {
		lim.RatioFloor = DefaultRatioFloor
	}
	return &limitedReader{ReadCloser: plain, in: in, lim: lim, kind: k}, k, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type limitedReader struct {
	io.ReadCloser
	in   *countingReader
	lim  Limits
	kind Kind
	out  int64
	err  error // sticky: a stream that hit a limit yields nothing more
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	n, err := l.ReadCloser.Read(p)
	l.out += int64(n)
	if l.err = l.check(); l.err != nil {
		return 0, l.err
	}
	return n, err
}

func (l *limitedReader) check() error {
	what := l.lim.What
	if what == "" {
		what = "the stream"
	}
	if m := l.lim.MaxBytes; m > 0 && l.out > m {
		return fmt.Errorf("%w: %s expands to more than %d bytes%s", ErrBomb, what, m, setting(l.lim.BytesSetting))
	}
	if m := l.lim.MaxRatio; m > 0 && l.out > l.lim.RatioFloor && l.out > m*max(l.in.n, 1) {
		return fmt.Errorf("%w: %s expands more than %d times (%d %s bytes to over %d bytes)%s",
			ErrBomb, what, m, l.in.n, l.kind, l.out, setting(l.lim.RatioSetting))
	}
	return nil
}

func setting(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}
