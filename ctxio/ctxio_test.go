package ctxio_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/ctxio"
)

func TestReader(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		cancel  bool
		want    string
		wantErr error
	}{
		{name: "live context reads through", want: "payload"},
		{name: "ended context stops the copy", cancel: true, wantErr: context.Canceled},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				cancel()
			}
			got, err := io.ReadAll(ctxio.NewReader(ctx, strings.NewReader("payload")))
			if string(got) != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("read %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// A context that ends mid-copy stops it at the next Read.
func TestReaderStopsMidCopy(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := ctxio.NewReader(ctx, strings.NewReader("abcdef"))
	buf := make([]byte, 3)
	if n, err := r.Read(buf); n != 3 || err != nil {
		t.Fatalf("first read: %d, %v", n, err)
	}
	cancel()
	if n, err := r.Read(buf); n != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("read after cancel: %d, %v; want 0, %v", n, err, context.Canceled)
	}
}
