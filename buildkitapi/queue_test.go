package buildkitapi

import (
	"context"
	"strings"
	"testing"

	"github.com/moby/buildkit/util/grpcerrors"
	"google.golang.org/grpc/codes"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/isolation"
)

// A solve that arrives when every slot is taken and the bounded queue is full is
// refused at once with RESOURCE_EXHAUSTED and the /build door's message; once the
// queued build leaves, a solve is accepted again.
func TestSolveQueueFull(t *testing.T) {
	q := builder.NewQueue(builder.Workspace{Isolation: isolation.Chroot}, 1, builder.WithMaxQueued(1))
	ts := newTestServer(t, func(c *Config) { c.Queue = q })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	release, err := q.Acquire(ctx, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	queued := make(chan error, 1)
	waiting := make(chan struct{})
	go func() {
		r, err := q.Acquire(ctx, func(string) { close(waiting) })
		if err == nil {
			r()
		}
		queued <- err
	}()
	<-waiting
	dir := writeFiles(t, map[string]string{"Dockerfile": "FROM " + ts.busybox + "\n"})
	_, _, err = ts.solve(t, dir, nil)
	if grpcerrors.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "--max-queued-builds 1") {
		t.Fatalf("solve on a full queue: %v (code %v), want RESOURCE_EXHAUSTED naming --max-queued-builds", err, grpcerrors.Code(err))
	}
	cancel() // the queued build leaves
	<-queued
	release()
	if _, _, err := ts.solve(t, dir, nil); err != nil {
		t.Fatalf("solve after the queue emptied: %v", err)
	}
}
