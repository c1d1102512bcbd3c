package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-build/kiln/credentials"
	"github.com/kiln-build/kiln/test/testworld"
)

func TestPlanCacheTarget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		args      []string
		wantRepo  string // "" = none
		wantLocal bool
		wantErr   string
	}{
		{name: "off", args: []string{"-d", "reg.test/app:v1"}},
		{name: "inferred from the first destination", args: []string{"--cache", "-d", "reg.test/team/app:v1", "-d", "other.test/x:1"}, wantRepo: "reg.test/team/app/cache"},
		{name: "docker hub destination", args: []string{"--cache", "-d", "user/app"}, wantRepo: "index.docker.io/user/app/cache"},
		{name: "given", args: []string{"--cache", "--cache-repo", "cache.test/layers", "-d", "reg.test/app:v1"}, wantRepo: "cache.test/layers"},
		{name: "given with --no-push", args: []string{"--cache", "--cache-repo", "cache.test/layers", "--no-push"}, wantRepo: "cache.test/layers"},
		{name: "no-push infers nothing", args: []string{"--cache", "--no-push", "-d", "reg.test/app:v1"}, wantErr: "specify cache repo with --cache-repo"},
		{name: "no repository, state dir", args: []string{"--cache", "--no-push", "--state-dir", "/tmp/x"}, wantLocal: true},
		{name: "tag in the repository", args: []string{"--cache", "--cache-repo", "cache.test/layers:v1", "--no-push"}, wantErr: "without a tag or digest"},
		{name: "oci layout", args: []string{"--cache", "--cache-repo", "oci:/cache", "--no-push"}, wantErr: "OCI layout cache is not supported"},
		{name: "negative ttl", args: []string{"--cache", "--cache-ttl=-1h", "-d", "reg.test/app:v1"}, wantErr: "--cache-ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, _ := parseFlags(t, tt.args...)
			out, err := planOutputs(f)
			if err != nil {
				t.Fatal(err)
			}
			target, err := planCacheTarget(f, out, credentials.Chain())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var repo string
			local := false
			if target != nil {
				local = target.local
				if target.repo != nil {
					repo = target.repo.Name()
				}
			}
			if repo != tt.wantRepo || local != tt.wantLocal {
				t.Errorf("repo %q, local %v; want %q, %v", repo, local, tt.wantRepo, tt.wantLocal)
			}
		})
	}
}

func TestStepKinds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		run, copyLayers bool
		want            map[string]bool
	}{
		{run: true, copyLayers: false, want: map[string]bool{"RUN": true, "COPY": false, "ADD": false, "ENV": true, "WORKDIR": true}},
		{run: false, copyLayers: true, want: map[string]bool{"RUN": false, "COPY": true, "ADD": true, "LABEL": true}},
	}
	for _, tt := range tests {
		keep := stepKinds(tt.run, tt.copyLayers)
		for instr, want := range tt.want {
			if got := keep(instr); got != want {
				t.Errorf("run=%v copy=%v: %s kept = %v, want %v", tt.run, tt.copyLayers, instr, got, want)
			}
		}
	}
}

// cacheRegistry is the busybox test registry, refusing writes to cache repositories
// while refuse is set.
func cacheRegistry(t *testing.T) (host, ref string, refuse *atomic.Bool) {
	t.Helper()
	refuse = &atomic.Bool{}
	host, ref = testworld.BusyboxRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if refuse.Load() && r.Method != http.MethodGet && r.Method != http.MethodHead && strings.Contains(r.URL.Path, "/cache/") {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusForbidden)
				w.Write([]byte(`{"errors":[{"code":"DENIED","message":"the cache is read-only"}]}`))
				return
			}
			next.ServeHTTP(w, r)
		})
	}, testworld.Entry{Name: "etc/passwd", Data: "root:x:0:0:root:/root:/bin/sh\n"})
	return host, ref, refuse
}

func readReport(t *testing.T, path string) cacheReport {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r cacheReport
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("report %s: %v", path, err)
	}
	return r
}

// results lists a report's step results, "hit", "miss" or "none" in step order.
func results(r cacheReport) string {
	var out []string
	for _, s := range r.Steps {
		out = append(out, s.Result)
	}
	return strings.Join(out, " ")
}

// TestBuildWithRegistryCache runs kiln build as a user would: a build fills the cache
// repository inferred from --destination, a rebuild takes the steps from it, an
// expired cache misses, and a registry refusing the cache's pushes only warns.
func TestBuildWithRegistryCache(t *testing.T) {
	t.Parallel()
	needRoot(t)
	host, base, refuse := cacheRegistry(t)
	dir := t.TempDir()
	ctxDir := filepath.Join(dir, "ctx")
	os.MkdirAll(ctxDir, 0o755)
	write := func(n, c string) {
		if err := os.WriteFile(filepath.Join(ctxDir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("Dockerfile", "FROM "+base+"\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b\nENV DONE=1\n")
	write("a.txt", "one\n")
	dest := host + "/team/app:v1"
	build := func(name string, extra ...string) (report cacheReport, log string) {
		t.Helper()
		path := filepath.Join(dir, name+".json")
		args := append([]string{"build", "--context", "dir://" + ctxDir, "--isolation=chroot", "-d", dest,
			"--cache", "--cache-report", path, "--log-format=text"}, extra...)
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr, e2eHost(t)); code != 0 {
			t.Fatalf("%s: kiln build exited %d:\n%s", name, code, stderr.String())
		}
		return readReport(t, path), stderr.String()
	}

	first, _ := build("first", "--cache-copy-layers")
	if got := results(first); got != "none miss miss miss" {
		t.Errorf("first build: %s, want none miss miss miss", got)
	}
	repo, _ := name.NewRepository(host + "/team/app/cache")
	tags, err := remote.List(repo)
	if err != nil || len(tags) != 3 {
		t.Errorf("cache repository %s holds %q (%v), want a tag per cached step", repo, tags, err)
	}

	again, log := build("again", "--cache-copy-layers")
	if got := results(again); got != "none hit hit hit" {
		t.Errorf("rebuild: %s, want none hit hit hit", got)
	}
	if !strings.Contains(log, "Using caching version of cmd: RUN cat /a.txt > /b") {
		t.Errorf("no cache hit in the log:\n%s", log)
	}

	// kaniko's defaults: COPY is not cached.
	noCopy, _ := build("nocopy")
	if s := noCopy.Steps[1]; s.Result != "miss" || s.Reason != "COPY steps are not cached" {
		t.Errorf("COPY with --cache-copy-layers=false: %+v", s)
	}

	expired, _ := build("expired", "--cache-copy-layers", "--cache-ttl=1ns")
	if got := results(expired); got != "none miss miss miss" {
		t.Errorf("expired cache: %s, want every step a miss", got)
	}

	refuse.Store(true)
	write("a.txt", "two\n")
	refused, log := build("refused", "--cache-copy-layers")
	if got := results(refused); got != "none miss miss miss" {
		t.Errorf("changed file: %s, want misses", got)
	}
	if !strings.Contains(log, "Error uploading layer to cache") || !strings.Contains(log, "DENIED") {
		t.Errorf("a refused cache push was not reported as a warning:\n%s", log)
	}
}

// A failed build still writes its report, up to the failing step, as text for a .txt.
func TestCacheReportOfFailedBuild(t *testing.T) {
	t.Parallel()
	needRoot(t)
	host, base, _ := cacheRegistry(t)
	ctxDir := t.TempDir()
	df := "FROM " + base + "\nRUN echo ok > /ok\nRUN false\nRUN echo never\n"
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "report.txt")
	var stdout, stderr bytes.Buffer
	code := run([]string{"build", "--context", "dir://" + ctxDir, "--isolation=chroot", "--no-push",
		"--cache", "--cache-repo", host + "/ci/cache", "--cache-report", path}, &stdout, &stderr, e2eHost(t))
	if code == 0 {
		t.Fatal("a RUN false build succeeded")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no report after a failed build: %v", err)
	}
	want := "Step 1/4 : FROM " + base + ": not cached\n" +
		"Step 2/4 : RUN echo ok > /ok: miss (no cache entry for this step)\n" +
		"Step 3/4 : RUN false: miss (step 2 (RUN echo ok > /ok) ran again and changed the image)\n" +
		"0 hits, 2 misses\n"
	if got := string(data); !strings.HasPrefix(got, want) || !strings.Contains(got, "The build failed at step 3: ") {
		t.Errorf("report:\n%s\nwant it to start with:\n%s\nand name step 3 as failed", got, want)
	}
	// The step that ran before the failure is in the cache for the next attempt.
	tags, err := remote.List(mustRepo(t, host+"/ci/cache"))
	if err != nil || len(tags) != 1 {
		t.Errorf("cache holds %q (%v), want the one step that succeeded", tags, err)
	}
}

func mustRepo(t *testing.T, s string) name.Repository {
	t.Helper()
	r, err := name.NewRepository(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
