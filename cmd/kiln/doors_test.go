package main

import (
	"context"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/credentials"
	"github.com/kiln-build/kiln/isolation"
)

// TestDoorsShareInPlaceRules checks that kiln build and kiln serve, run in place on
// the same machine with the same flags, get the engine's rules alike: the same
// ignore set apart from each door's own state, and a build lock the reset after a
// build leaves alone.
func TestDoorsShareInPlaceRules(t *testing.T) {
	t.Parallel()
	h := fakeHost(t, true, nil)
	buildState, serveState := t.TempDir(), t.TempDir()
	bf, _ := parseFlags(t, "--context", testContext(t), "--no-push", "--state-dir", buildState,
		"--ignore-path=/cache", "--ignore-var-run=false")
	p, err := planBuild(context.Background(), bf, h)
	if err != nil {
		t.Fatalf("planBuild: %v", err)
	}
	cfg, err := planServe(parseServeFlags(t, "--state-dir", serveState, "-H", "tcp://127.0.0.1:2375",
		"--ignore-path=/cache", "--ignore-var-run=false"), h, credentials.Chain())
	if err != nil {
		t.Fatalf("planServe: %v", err)
	}
	bws, sws := p.workspace, cfg.build.Workspace
	if bws.Isolation != isolation.InPlace || sws.Isolation != isolation.InPlace {
		t.Fatalf("isolation %v and %v, want in place for both", bws.Isolation, sws.Isolation)
	}
	without := func(paths []string, own string) []string {
		return slices.DeleteFunc(slices.Clone(paths), func(p string) bool { return p == own })
	}
	got, want := without(sws.Ignore.Paths(), serveState), without(bws.Ignore.Paths(), buildState)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("kiln serve's ignore set differs from kiln build's (-build +serve):\n%s", diff)
	}
	if !bws.Ignore.Match(bws.LockPath()) {
		t.Errorf("kiln build: the build lock %s is not ignored: the reset after a build would delete it", bws.LockPath())
	}
	if !sws.Ignore.Match(sws.LockPath()) {
		t.Errorf("kiln serve: the build lock %s is not ignored: the reset after a build would delete it", sws.LockPath())
	}
}
