// Package ctxio makes long copies cancellable: a reader that stops at the first Read after
// its context ends. Builds, context uploads, layer downloads and `docker load` all copy
// streams that a client may abandon; they share this one reader.
package ctxio

import (
	"context"
	"io"
)

// NewReader returns a reader of r that fails with ctx.Err() once ctx is done. A Read
// already blocked in r is not interrupted (closing r's source does that); the next one
// does not start.
func NewReader(ctx context.Context, r io.Reader) io.Reader {
	return &reader{ctx: ctx, r: r}
}

type reader struct {
	ctx context.Context
	r   io.Reader
}

func (c *reader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
