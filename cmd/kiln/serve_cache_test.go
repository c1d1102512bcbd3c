package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sirupsen/logrus"

	"github.com/kiln-build/kiln/apiserver"
)

// TestServeCacheFlagsRefuse: bad fleet cache flags stop kiln serve and kiln cache gc
// before anything starts, naming the flag.
func TestServeCacheFlagsRefuse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"serve", "--isolation=chroot", "--cache-repo", "127.0.0.1:5000/cache:latest"}, "without a tag or digest"},
		{[]string{"serve", "--isolation=chroot", "--cache-repo", "127.0.0.1:5000/c", "--cache-ttl=-1h"}, "--cache-ttl -1h0m0s: must not be negative"},
		{[]string{"serve", "--isolation=chroot", "--cache-max-size", "lots"}, "--cache-max-size"},
		{[]string{"cache", "gc"}, "give --keep-duration (--until) or --max-size"},
		{[]string{"cache", "gc", "--max-size", "lots"}, "--max-size"},
		{[]string{"cache", "gc", "--until=-2h"}, "must not be negative"},
		{[]string{"cache", "gc", "--repo", "127.0.0.1:5000/cache", "--cache-ttl=0"}, "must be more than 0"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := newRootCommand(io.Discard, io.Discard, fakeHost(t, false, nil))
			args := tc.args
			if args[0] == "serve" || !strings.Contains(strings.Join(args, " "), "--repo") {
				args = append(args, "--state-dir", t.TempDir())
			}
			cmd.SetArgs(args)
			if err := cmd.ExecuteContext(ctx); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("kiln %v: %v, want an error containing %q", tc.args, err, tc.wantErr)
			}
		})
	}
}

// worldCacheRepo is a repository of its own in the test world's registry.
func worldCacheRepo(t *testing.T) (registry, repo string) {
	t.Helper()
	registry = os.Getenv("KILN_TEST_REGISTRY")
	if registry == "" {
		t.Skip("KILN_TEST_REGISTRY is not set (scripts/world.sh up)")
	}
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	return registry, registry + "/kiln-test/fleet-" + hex.EncodeToString(nonce[:])
}

var usingCache = regexp.MustCompile(`(?m)^ ---> Using cache$`)

// TestServeSharesStepsThroughCacheRepo: two servers with their own state directories
// and one --cache-repo: a build on the second takes every step the first built from
// the repository; kiln cache gc --repo then deletes the entries from the test world's
// registry (distribution), and a third server misses them.
func TestServeSharesStepsThroughCacheRepo(t *testing.T) {
	cli := dockerCLI(t)
	needRoot(t)
	reg, repo := worldCacheRepo(t)
	df := "FROM " + reg + "/busybox:1.35\nRUN echo " + filepath.Base(repo) + " > /built\nENV FLEET=1\nRUN cat /built > /again\n"
	host := func() string {
		d, _, _ := startTestDaemon(t, "-H", "unix://"+filepath.Join(t.TempDir(), "kiln.sock"), "--cache-repo", repo)
		return d.hosts[0]
	}
	out, err := classicBuild(t, cli, host(), df)
	if err != nil || len(usingCache.FindAllString(out, -1)) != 0 {
		t.Fatalf("first build: %v, want every step run:\n%s", err, out)
	}
	out, err = classicBuild(t, cli, host(), df)
	if n := len(usingCache.FindAllString(out, -1)); err != nil || n != 3 {
		t.Fatalf("build on a second server: %v, %d steps from the cache, want 3:\n%s", err, n, out)
	}

	time.Sleep(20 * time.Millisecond)
	var stdout bytes.Buffer
	cmd := newRootCommand(&stdout, io.Discard, fakeHost(t, false, nil))
	cmd.SetArgs([]string{"cache", "gc", "--repo", repo, "--cache-ttl", "10ms"})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("kiln cache gc --repo: %v\n%s", err, stdout.String())
	}
	if !strings.Contains(stdout.String(), "Deleted 3 of 3 cache entries") {
		t.Errorf("kiln cache gc --repo says %q, want 3 of 3 deleted", stdout.String())
	}
	r, err := name.NewRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	if tags, err := remote.List(r); err != nil || len(tags) != 0 {
		t.Errorf("tags left in %s: %v, %v", repo, tags, err)
	}
	out, err = classicBuild(t, cli, host(), df)
	if n := len(usingCache.FindAllString(out, -1)); err != nil || n != 0 {
		t.Errorf("build after kiln cache gc: %v, %d steps from the cache, want 0:\n%s", err, n, out)
	}
}

// TestServeCacheMaxSize: with --cache-max-size the local caches are trimmed after
// each build and when the server starts, least recently used first, all kinds of
// entries alike; kiln cache gc --max-size trims a state directory too.
func TestServeCacheMaxSize(t *testing.T) {
	cli := dockerCLI(t)
	needRoot(t)
	reg, _ := worldCacheRepo(t)
	df := "FROM " + reg + "/busybox:1.35\nRUN echo bounded > /f\n"
	state := t.TempDir()
	entries := func() (steps, bases, trees int) {
		s, _ := filepath.Glob(filepath.Join(state, "cache", "build", "steps", "*.json"))
		tr, _ := filepath.Glob(filepath.Join(state, "cache", "base", "rootfs", "[0-9a-f]*"))
		for _, p := range tr {
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				trees++ // not the trees' lock files, which stay
			}
		}
		raw, _ := os.ReadFile(filepath.Join(state, "cache", "base", "index.json"))
		return len(s), strings.Count(string(raw), `"digest"`), trees
	}
	sock := "unix://" + filepath.Join(t.TempDir(), "kiln.sock")
	_, _, stop := startTestDaemon(t, "-H", sock, "--state-dir", state)
	if out, err := classicBuild(t, cli, sock, df); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if s, b, _ := entries(); s == 0 || b == 0 {
		t.Fatalf("the unbounded server cached %d steps and %d base images", s, b)
	}
	// At start: a bound of 1 byte leaves nothing.
	_, _, stop = startTestDaemon(t, "-H", sock, "--state-dir", state, "--cache-max-size", "1")
	if s, b, tr := entries(); s+b+tr != 0 {
		t.Errorf("after a start with --cache-max-size 1: %d steps, %d base images, %d trees left", s, b, tr)
	}
	// After a build: the same.
	out, err := classicBuild(t, cli, sock, df)
	if err != nil || usingCache.MatchString(out) {
		t.Fatalf("build: %v, want it run afresh:\n%s", err, out)
	}
	if s, b, tr := entries(); s+b+tr != 0 {
		t.Errorf("after a build with --cache-max-size 1: %d steps, %d base images, %d trees left", s, b, tr)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// kiln cache gc on a filled state directory.
	_, _, stop = startTestDaemon(t, "-H", sock, "--state-dir", state)
	if out, err := classicBuild(t, cli, sock, df); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	cmd := newRootCommand(&stdout, io.Discard, fakeHost(t, false, nil))
	cmd.SetArgs([]string{"cache", "gc", "--state-dir", state, "--max-size", "1"})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("kiln cache gc: %v\n%s", err, stdout.String())
	}
	if s, b, tr := entries(); s+b+tr != 0 {
		t.Errorf("after kiln cache gc --max-size 1: %d steps, %d base images, %d trees left:\n%s", s, b, tr, stdout.String())
	}
}

// TestServeSharedCacheRepository: --cache-repo names the repository the shared cache
// uses, over plain HTTP only for an --insecure-registry; none without the flag.
func TestServeSharedCacheRepository(t *testing.T) {
	t.Parallel()
	lg := logrus.New()
	lg.SetOutput(io.Discard)
	for _, tc := range []struct {
		repo, insecure, want, scheme string
	}{
		{"", "", "", ""},
		{"registry.example.com/team/cache", "", "registry.example.com/team/cache", "https"},
		{"registry.example.com:5000/cache", "registry.example.com:5000", "registry.example.com:5000/cache", "http"},
	} {
		f := &serveCacheFlags{cacheRepo: tc.repo, cacheTTL: time.Hour}
		b := &apiserver.BuildConfig{PlainHTTP: func(r string) bool { return r == tc.insecure }}
		c, err := f.sharedCache(b, t.TempDir(), lg)
		if err != nil {
			t.Fatalf("%q: %v", tc.repo, err)
		}
		if tc.want == "" {
			if c != nil {
				t.Errorf("no --cache-repo: a shared cache %v", c.Repository())
			}
			continue
		}
		if got := c.Repository(); got.String() != tc.want || got.Scheme() != tc.scheme {
			t.Errorf("%q: repository %s over %s, want %s over %s", tc.repo, got, got.Scheme(), tc.want, tc.scheme)
		}
	}
}
