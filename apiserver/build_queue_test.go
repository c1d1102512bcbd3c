package apiserver

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/builder"
)

// A /build that arrives when the slot is taken and the bounded queue is full is
// answered 503 with the flag named, before its context is read; after the queued
// build leaves, the same request is no longer refused.
func TestBuildQueueFull503(t *testing.T) {
	q := builder.NewQueue(builder.Workspace{}, 1, builder.WithMaxQueued(1))
	ts := newImageTestServer(t, WithBuildConfig(BuildConfig{Workspace: builder.Workspace{StateDir: t.TempDir()}, Queue: q}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	release, err := q.Acquire(ctx, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	waiting := make(chan struct{})
	left := make(chan struct{})
	go func() {
		defer close(left)
		if r, err := q.Acquire(ctx, func(string) { close(waiting) }); err == nil {
			r()
		}
	}()
	<-waiting
	// Not a tar archive: a refusal that read the context would say so instead.
	resp, body := ts.call(t, http.MethodPost, "/build?t=x", bytes.NewReader([]byte("not a tar")), http.Header{"Content-Type": {"application/x-tar"}})
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "kiln serve --max-queued-builds 1") {
		t.Fatalf("POST /build on a full queue: %d %s, want 503 naming --max-queued-builds", resp.StatusCode, body)
	}
	cancel()
	<-left
	if q.Waiting() != 0 {
		t.Fatal("the cancelled build is still queued")
	}
	resp, body = ts.call(t, http.MethodPost, "/build?t=x", bytes.NewReader([]byte("not a tar")), http.Header{"Content-Type": {"application/x-tar"}})
	if resp.StatusCode == http.StatusServiceUnavailable {
		t.Fatalf("POST /build after the queue emptied: still refused: %s", body)
	}
}
