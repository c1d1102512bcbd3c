package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestBuildSeccompFlag(t *testing.T) {
	t.Parallel()
	ctxDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args           []string
		wantUnconfined bool
		wantErr        string
	}{
		{args: nil},
		{args: []string{"--seccomp=default"}},
		{args: []string{"--seccomp=unconfined"}, wantUnconfined: true},
		{args: []string{"--seccomp=none"}, wantErr: `--seccomp: unknown value "none"; give default or unconfined`},
	} {
		f, _ := parseFlags(t, append([]string{"--context", ctxDir, "--no-push", "--state-dir", t.TempDir()}, tc.args...)...)
		p, err := planBuild(context.Background(), f, fakeHost(t, false, nil))
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("%v: error %v, want %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if p.workspace.SeccompUnconfined != tc.wantUnconfined {
			t.Errorf("%v: unconfined %v, want %v", tc.args, p.workspace.SeccompUnconfined, tc.wantUnconfined)
		}
	}
}
