package compression_test

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/compression"
	"github.com/kiln-build/kiln/compression/compressiontest"
)

func TestNewLimitedReader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		kind    string // "gzip", "zstd", or "" for plain bytes
		size    int64
		lim     compression.Limits
		wantErr string // "" : the whole stream reads
	}{
		{"small gzip of zeros passes the ratio", "gzip", 8 << 20, compression.Limits{MaxRatio: 10}, ""},
		{"gzip bomb stops at the ratio", "gzip", 10 << 30, compression.Limits{MaxRatio: 100, What: "the build context", RatioSetting: "--max-context-ratio"}, "the build context expands more than 100 times"},
		{"zstd bomb stops at the ratio", "zstd", 10 << 30, compression.Limits{MaxRatio: 100}, "expands more than 100 times"},
		{"zstd bomb stops at the size", "zstd", 10 << 30, compression.Limits{MaxBytes: 32 << 20, BytesSetting: "--max-context-size"}, "expands to more than 33554432 bytes (--max-context-size)"},
		{"plain stream has no ratio", "", 80 << 20, compression.Limits{MaxRatio: 1}, ""},
		{"plain stream has a size", "", 80 << 20, compression.Limits{MaxBytes: 1 << 20}, "more than 1048576 bytes"},
		{"unlimited", "gzip", 100 << 20, compression.Limits{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var src io.ReadCloser
			if tt.kind == "" {
				src = io.NopCloser(io.LimitReader(zeroReader{}, tt.size))
			} else {
				src = compressiontest.Bomb(tt.kind, nil, tt.size)
			}
			defer src.Close()
			start := time.Now()
			r, _, err := compression.NewLimitedReader(src, tt.lim)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			n, err := io.Copy(io.Discard, r)
			if tt.wantErr == "" {
				if err != nil || n != tt.size {
					t.Fatalf("read %d of %d bytes: %v", n, tt.size, err)
				}
				return
			}
			if !errors.Is(err, compression.ErrBomb) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want ErrBomb with %q", err, tt.wantErr)
			}
			if n > 256<<20 {
				t.Errorf("read %d bytes before stopping", n)
			}
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("took %v to stop a bomb", d)
			}
			// The limit is sticky.
			if _, err := r.Read(make([]byte, 10)); !errors.Is(err, compression.ErrBomb) {
				t.Errorf("read after the limit: %v", err)
			}
		})
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
