package main

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/kiln-build/kiln/builder/output"
)

// checkRecorder is a pushChecker that records what it was asked and refuses the
// repositories in refuse.
type checkRecorder struct {
	mu      sync.Mutex
	checked []string
	refuse  []string
}

func (c *checkRecorder) check(_ context.Context, ref name.Reference, opts ...output.PushOption) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checked = append(c.checked, ref.String())
	if len(opts) == 0 {
		return errors.New("no push options: the check would not use the push's credentials and transport")
	}
	if slices.Contains(c.refuse, ref.Context().String()) {
		return errors.New("checking push permission for " + ref.String() + ": UNAUTHORIZED")
	}
	return nil
}

func TestPlanBuildChecksPushPermission(t *testing.T) {
	t.Parallel()
	ctxDir := testContext(t)
	tests := []struct {
		name    string
		args    []string
		refuse  []string
		want    []string // references checked, in order
		wantErr string
	}{
		{
			name: "once per repository",
			args: []string{"-d", "r.test/app:v1", "-d", "r.test/app:v2", "-d", "r.test/other:v1", "-d", "s.test/app:v1"},
			want: []string{"r.test/app:v1", "r.test/other:v1", "s.test/app:v1"},
		},
		{name: "no push", args: []string{"-d", "r.test/app:v1", "--no-push"}},
		{name: "skipped", args: []string{"-d", "r.test/app:v1", "--skip-push-permission-check"}},
		{name: "no destination", args: []string{"--tar-path", "x.tar"}},
		{
			name:    "refused",
			args:    []string{"-d", "r.test/app:v1", "-d", "s.test/app:v1"},
			refuse:  []string{"r.test/app"},
			want:    []string{"r.test/app:v1"},
			wantErr: "checking push permission for r.test/app:v1: UNAUTHORIZED (nothing was built; --skip-push-permission-check skips this check)",
		},
		{
			// The check runs before the context is fetched.
			name:    "refused before the context is opened",
			args:    []string{"-d", "r.test/app:v1", "--context", "tar:///nonexistent.tar"},
			refuse:  []string{"r.test/app"},
			want:    []string{"r.test/app:v1"},
			wantErr: "UNAUTHORIZED",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := &checkRecorder{refuse: tt.refuse}
			h := fakeHost(t, false, nil)
			h.checkPush = rec.check
			f, _ := parseFlags(t, append([]string{"--context", ctxDir}, tt.args...)...)
			p, err := planBuild(context.Background(), f, h)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("planBuild error = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("planBuild: %v", err)
			} else {
				p.req.Context.Close()
			}
			if diff := cmp.Diff(tt.want, rec.checked); diff != "" {
				t.Errorf("checked (-want +got):\n%s", diff)
			}
		})
	}
}
