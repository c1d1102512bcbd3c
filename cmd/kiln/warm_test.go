package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/credentials"
	"github.com/kiln-build/kiln/test/testworld"
)

// downableRegistry is the busybox test registry behind a switch that drops every
// connection, as an unreachable registry does.
func downableRegistry(t *testing.T) (ref string, down *atomic.Bool) {
	t.Helper()
	down = &atomic.Bool{}
	_, ref = testworld.BusyboxRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if down.Load() {
				if hj, ok := w.(http.Hijacker); ok {
					if conn, _, err := hj.Hijack(); err == nil {
						conn.Close()
						return
					}
				}
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			next.ServeHTTP(w, r)
		})
	}, testworld.Entry{Name: "etc/warm.txt", Data: "warm\n"},
		testworld.Entry{Name: "etc/passwd", Data: "root:x:0:0:root:/root:/bin/sh\n"})
	return ref, down
}

// cachedNames returns the reference names index.json of a base cache records.
func cachedNames(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var im v1.IndexManifest
	if err := json.Unmarshal(data, &im); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range im.Manifests {
		out = append(out, m.Annotations["org.opencontainers.image.ref.name"])
	}
	return out
}

func TestWarmCommand(t *testing.T) {
	t.Parallel()
	ref, _ := downableRegistry(t)
	host := strings.Split(ref, "/")[0]
	dfDir := t.TempDir()
	dockerfile := filepath.Join(dfDir, "Dockerfile")
	df := "ARG REPO=missing\nFROM " + host + "/${REPO}:test AS base\nFROM base\nFROM scratch\n"
	if err := os.WriteFile(dockerfile, []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		args      []string
		wantCode  int
		wantErr   string
		wantNames []string
	}{
		{name: "image", args: []string{"-i", ref}, wantNames: []string{ref}},
		{name: "dockerfile with build arg", args: []string{"-d", dockerfile, "--build-arg", "REPO=busybox"}, wantNames: []string{ref}},
		{name: "kaniko's spellings", args: []string{"--image", ref, "--force", "--customPlatform=linux/amd64", "--cache-ttl=1h"}, wantNames: []string{ref}},
		{name: "dockerfile without the arg", args: []string{"-d", dockerfile}, wantCode: 1, wantErr: host + "/missing:test"},
		{name: "one of two fails", args: []string{"-i", ref, "-i", host + "/nope:1"}, wantCode: 1, wantErr: "nope:1", wantNames: []string{ref}},
		{name: "nothing to warm", args: nil, wantCode: 1, wantErr: "--image or a --dockerfile"},
		{name: "bad platform", args: []string{"-i", ref, "--custom-platform=linux/amd64/v2/x"}, wantCode: 1, wantErr: "platform"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			var stdout, stderr bytes.Buffer
			args := append([]string{"warm", "--cache-dir", dir, "--log-format=text"}, tc.args...)
			code := run(args, &stdout, &stderr, fakeHost(t, false, nil))
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", code, tc.wantCode, stderr.String())
			}
			if tc.wantErr != "" && !strings.Contains(stderr.String(), tc.wantErr) {
				t.Errorf("stderr does not mention %q:\n%s", tc.wantErr, stderr.String())
			}
			if tc.wantNames != nil {
				if got := cachedNames(t, dir); strings.Join(got, ",") != strings.Join(tc.wantNames, ",") {
					t.Errorf("cached %q, want %q", got, tc.wantNames)
				}
			}
		})
	}
}

// TestWarmThenBuildWithRegistryDown is the warmer's purpose: builds start from the
// cache although the registry is gone, from a digest always and from a tag with a
// warning.
func TestWarmThenBuildWithRegistryDown(t *testing.T) {
	testworld.RequireRoot(t)
	ref, down := downableRegistry(t)
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(r)
	if err != nil {
		t.Fatal(err)
	}
	byDigest := r.Context().Digest(desc.Digest.String()).String()
	cache := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"warm", "-c", cache, "-i", ref}, &stdout, &stderr, fakeHost(t, false, nil)); code != 0 {
		t.Fatalf("kiln warm exited %d:\n%s", code, stderr.String())
	}
	down.Store(true)
	tests := []struct {
		name, from, wantLog string
	}{
		{name: "digest", from: byDigest},
		{name: "tag", from: ref, wantLog: "Cannot reach the registry"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctxDir := t.TempDir()
			df := "FROM " + tc.from + "\nRUN cat /etc/warm.txt > /copy.txt\n"
			if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(df), 0o644); err != nil {
				t.Fatal(err)
			}
			layoutDir := filepath.Join(t.TempDir(), "out")
			var stdout, stderr bytes.Buffer
			args := []string{"build", "-c", ctxDir, "--isolation=chroot", "--cache-dir", cache, "--oci-layout-path", layoutDir, "--log-format=text"}
			if code := run(args, &stdout, &stderr, fakeHost(t, false, nil)); code != 0 {
				t.Fatalf("kiln build exited %d:\n%s", code, stderr.String())
			}
			if tc.wantLog != "" && !strings.Contains(stderr.String(), tc.wantLog) {
				t.Errorf("the build log does not say %q:\n%s", tc.wantLog, stderr.String())
			}
		})
	}
	// Without the cache the same build fails: the registry really is down.
	ctxDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM "+byDigest+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"build", "-c", ctxDir, "--isolation=chroot", "--no-push"}, &stdout, &stderr, fakeHost(t, false, nil)); code == 0 {
		t.Error("a build without the cache succeeded with the registry down")
	}
}

func TestPlanBaseCache(t *testing.T) {
	t.Parallel()
	ctxDir := testContext(t)
	cache := t.TempDir()
	tests := []struct {
		name        string
		inContainer bool
		args        []string
		want        string
		wantIgnored bool
	}{
		{name: "none by default", args: nil, want: ""},
		{name: "chroot", args: []string{"--cache-dir", cache, "--isolation=chroot"}, want: cache},
		{name: "in place: ignored", inContainer: true, args: []string{"--cache-dir", cache}, want: cache, wantIgnored: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, _ := parseFlags(t, append([]string{"-c", ctxDir, "--no-push"}, tc.args...)...)
			p, err := planBuild(context.Background(), f, fakeHost(t, tc.inContainer, nil))
			if err != nil {
				t.Fatal(err)
			}
			defer p.req.Context.Close()
			defer os.RemoveAll(p.workspace.StateDir)
			if p.workspace.BaseCache != tc.want {
				t.Errorf("BaseCache = %q, want %q", p.workspace.BaseCache, tc.want)
			}
			if tc.wantIgnored && !p.workspace.Ignore.Match(filepath.Join(cache, "blobs")) {
				t.Errorf("the cache is not in the in-place ignore set %v", p.workspace.Ignore.Paths())
			}
		})
	}
}

func TestPlanServeBaseCache(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	other := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "under the state directory", args: []string{"--state-dir", state}, want: filepath.Join(state, "cache", "base")},
		{name: "given", args: []string{"--state-dir", state, "--cache-dir", other}, want: other},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := planServe(parseServeFlags(t, tc.args...), fakeHost(t, true, nil), credentials.Chain())
			if err != nil {
				t.Fatal(err)
			}
			ws := cfg.build.Workspace
			if ws.BaseCache != tc.want {
				t.Errorf("BaseCache = %q, want %q", ws.BaseCache, tc.want)
			}
			if !ws.Ignore.Match(ws.BaseCache) {
				t.Errorf("in place, the cache %s is not ignored: %v", ws.BaseCache, ws.Ignore.Paths())
			}
		})
	}
}
