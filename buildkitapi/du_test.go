package buildkitapi

import (
	"context"
	"strings"
	"testing"
	"time"

	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/util/grpcerrors"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kiln-build/kiln/builder"
)

func TestParseUsageFilters(t *testing.T) {
	t.Parallel()
	step := builder.CacheRecord{ID: "abc123", Type: "regular", Description: "RUN echo hi"}
	ctx := builder.CacheRecord{ID: "def456", Type: "source.local", Description: "local source for context", InUse: true}
	shared := builder.CacheRecord{ID: "0a0a", Type: "regular", Description: "COPY a /a", Shared: true}
	tests := []struct {
		name    string
		filters []string
		want    []string // IDs matched
		wantErr string
	}{
		{"none", nil, []string{"abc123", "def456", "0a0a"}, ""},
		{"empty (buildx without filters)", []string{""}, []string{"abc123", "def456", "0a0a"}, ""},
		{"type", []string{"type==source.local"}, []string{"def456"}, ""},
		{"type not", []string{"type!=source.local"}, []string{"abc123", "0a0a"}, ""},
		{"id regexp (buildx id filter)", []string{"id~=^abc"}, []string{"abc123"}, ""},
		{"description quoted", []string{`description=="RUN echo hi"`}, []string{"abc123"}, ""},
		{"and", []string{"type==regular,shared"}, []string{"0a0a"}, ""},
		{"or", []string{"inuse", "shared"}, []string{"def456", "0a0a"}, ""},
		{"private mutable", []string{"private,mutable"}, []string{"def456"}, ""},
		{"unknown field", []string{"type==regular,color==red"}, nil, `unknown field "color"`},
		{"until is not a filter", []string{"until=24h"}, nil, `unknown field "until"`},
		{"bad operator", []string{"type=regular"}, nil, "want ==, != or ~="},
		{"bad regexp", []string{"id~=("}, nil, "missing closing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			match, err := parseUsageFilters(tt.filters)
			if tt.wantErr != "" {
				if grpcerrors.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "rpc error") {
					t.Fatalf("err = %v, want InvalidArgument with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range []builder.CacheRecord{step, ctx, shared} {
				if match(r) {
					got = append(got, r.ID)
				}
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("matched %v, want %v", got, tt.want)
			}
		})
	}
}

// TestDiskUsageAndPrune runs du and prune through BuildKit's client after a build:
// the step cache and the build's context are listed, a filter narrows the list, an
// unknown filter is refused, prune streams what it removes and leaves nothing, and
// the next build runs its steps again.
func TestDiskUsageAndPrune(t *testing.T) {
	ts := newTestServer(t)
	dir := writeFiles(t, map[string]string{
		"Dockerfile": "FROM " + ts.busybox + "\nCOPY a.txt /a.txt\nRUN --mount=type=cache,target=/c echo hi | tee /c/hi > /hi.txt\n",
		"a.txt":      "hello\n",
	})
	if _, _, err := ts.solveShared(t, "du-client", dir, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := ts.client(t, ctx)

	du, err := c.DiskUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	types := map[bkclient.UsageRecordType]int{}
	var run bool
	for _, r := range du {
		types[r.RecordType]++
		run = run || strings.Contains(r.Description, "echo hi")
		if r.InUse || r.Size <= 0 || r.LastUsedAt == nil {
			t.Errorf("record %+v: want idle, sized and last used", r)
		}
	}
	if types[bkclient.UsageRecordTypeRegular] < 2 || types[bkclient.UsageRecordTypeLocalSource] != 1 || types[bkclient.UsageRecordTypeCacheMount] != 1 || !run {
		t.Fatalf("du lists %v (RUN step listed: %v), want the cached steps, one context and one cache mount", types, run)
	}
	local, err := c.DiskUsage(ctx, bkclient.WithFilter([]string{"type==source.local"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(local) != 1 || !local[0].Mutable || local[0].Description != "local source for context" {
		t.Errorf("du --filter type==source.local: %+v", local)
	}
	if err := c.Prune(ctx, nil, bkclient.WithFilter([]string{"color==red"})); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `filter "color==red": unknown field`) || strings.Count(err.Error(), "rpc error") > 1 {
		t.Errorf("prune with an unknown filter: %v, want InvalidArgument naming it", err)
	}

	pruned := time.Now()
	ch := make(chan bkclient.UsageInfo)
	var removed []bkclient.UsageInfo
	done := make(chan struct{})
	go func() {
		defer close(done)
		for u := range ch {
			removed = append(removed, u)
		}
	}()
	err = c.Prune(ctx, ch)
	close(ch)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != len(du) {
		t.Errorf("prune streamed %d records, want the %d du listed", len(removed), len(du))
	}
	if du, err := c.DiskUsage(ctx); err != nil || len(du) != 0 {
		t.Errorf("du after prune: %d records (%v), want none", len(du), err)
	}

	_, statuses, err := ts.solveShared(t, "du-client", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range statuses {
		for _, v := range s.Vertexes {
			if v.Cached {
				t.Errorf("after prune, %q is CACHED", v.Name)
			}
		}
	}
	recs, err := ts.cfg.Workspace.Cache.(stepCache).Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 {
		t.Fatal("the second build stored no steps")
	}
	for _, r := range recs {
		if r.CreatedAt.Before(pruned.Add(-time.Second)) {
			t.Errorf("step %q was stored before the prune: the build reused it", r.Description)
		}
	}
}
