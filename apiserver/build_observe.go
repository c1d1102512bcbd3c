package apiserver

import (
	"io"
	"sync/atomic"
)

// countingBody counts the bytes read from a request body: the build context a
// client uploads, for the server's metrics (builder.Observer.Transferred).
type countingBody struct {
	io.ReadCloser
	n atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}
