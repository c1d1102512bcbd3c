package builder_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/contexts"
	"github.com/kiln-build/kiln/isolation"
	"github.com/kiln-build/kiln/test/testworld"
)

// registryMode is what the switchable test registry does with a request.
type registryMode int32

const (
	registryUp       registryMode = iota
	registryDown                  // the connection is dropped: unreachable
	registryNotFound              // every manifest is unknown: the tag was deleted
)

// switchRegistry is an in-process registry that can be taken down, and that counts
// the manifest and blob requests it serves.
type switchRegistry struct {
	host, busybox string // busybox: host/busybox:test, a single-platform image
	index         string // host/multi:test, an index holding the busybox image
	indexDigest   string // host/multi@sha256:...
	imageDigest   string // host/busybox@sha256:...

	mode      atomic.Int32
	manifests atomic.Int32
	blobs     atomic.Int32
}

func newSwitchRegistry(t *testing.T) *switchRegistry {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("builds need root (chroot isolation)")
	}
	r := &switchRegistry{}
	r.host, r.busybox = testworld.BusyboxRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			switch registryMode(r.mode.Load()) {
			case registryDown:
				if hj, ok := w.(http.Hijacker); ok {
					if conn, _, err := hj.Hijack(); err == nil {
						conn.Close()
						return
					}
				}
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			case registryNotFound:
				if strings.Contains(req.URL.Path, "/manifests/") {
					http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}`, http.StatusNotFound)
					return
				}
			}
			switch {
			case strings.Contains(req.URL.Path, "/manifests/"):
				r.manifests.Add(1)
			case strings.Contains(req.URL.Path, "/blobs/"):
				r.blobs.Add(1)
			}
			next.ServeHTTP(w, req)
		})
	}, testworld.Entry{Name: "etc/base.txt", Data: "from the base\n"})
	ref, err := name.ParseReference(r.busybox)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	r.imageDigest = r.host + "/busybox@" + d.String()
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{
		Add:        img,
		Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}},
	})
	r.index = r.host + "/multi:test"
	tag, err := name.ParseReference(r.index)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(tag, idx); err != nil {
		t.Fatal(err)
	}
	id, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	r.indexDigest = r.host + "/multi@" + id.String()
	r.manifests.Store(0)
	r.blobs.Store(0)
	return r
}

func (r *switchRegistry) set(m registryMode) { r.mode.Store(int32(m)) }

// cacheBuild builds "FROM base" plus an ENV with the base cache in cacheDir.
func cacheBuild(t *testing.T, cacheDir, base string, pull builder.PullPolicy) (*builder.Result, []builder.Event, error) {
	t.Helper()
	bctx, err := contexts.FromDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var events []builder.Event
	res, err := builder.Build(context.Background(), &builder.Request{
		Dockerfile: []byte("FROM " + base + "\nENV CACHED=1\n"),
		Context:    bctx,
		Pull:       pull,
	},
		builder.WithWorkspace(builder.Workspace{Isolation: isolation.Chroot, StateDir: t.TempDir(), BaseCache: cacheDir}),
		builder.WithEvents(func(e builder.Event) { events = append(events, e) }),
	)
	return res, events, err
}

func warnings(events []builder.Event) []string {
	var out []string
	for _, e := range events {
		if w, ok := e.(builder.Warning); ok {
			out = append(out, w.Message)
		}
	}
	return out
}

func TestWarmThenBuildWithRegistryDown(t *testing.T) {
	t.Parallel()
	reg := newSwitchRegistry(t)
	tests := []struct {
		name     string
		base     func(r *switchRegistry) string
		mode     registryMode
		pull     builder.PullPolicy
		wantErr  bool
		wantWarn bool
	}{
		{name: "digest, registry down", base: func(r *switchRegistry) string { return r.imageDigest }, mode: registryDown},
		{name: "index digest, registry down", base: func(r *switchRegistry) string { return r.indexDigest }, mode: registryDown},
		{name: "tag, registry down, default policy", base: func(r *switchRegistry) string { return r.busybox }, mode: registryDown, wantWarn: true},
		{name: "index tag, registry down, default policy", base: func(r *switchRegistry) string { return r.index }, mode: registryDown, wantWarn: true},
		{name: "tag, registry down, pull always", base: func(r *switchRegistry) string { return r.busybox }, mode: registryDown, pull: builder.PullAlways, wantErr: true},
		{name: "tag, registry down, pull if missing", base: func(r *switchRegistry) string { return r.busybox }, mode: registryDown, pull: builder.PullIfMissing},
		{name: "tag deleted: no fallback", base: func(r *switchRegistry) string { return r.busybox }, mode: registryNotFound, wantErr: true},
		{name: "digest, tag deleted", base: func(r *switchRegistry) string { return r.imageDigest }, mode: registryNotFound},
	}
	cacheDir := t.TempDir()
	err := builder.Warm(context.Background(), cacheDir, &builder.WarmRequest{Images: []string{reg.busybox, reg.index}})
	if err != nil {
		t.Fatal(err)
	}
	// Not parallel: the cases share the registry's switch.
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg.set(tc.mode)
			defer reg.set(registryUp)
			res, events, err := cacheBuild(t, cacheDir, tc.base(reg), tc.pull)
			if tc.wantErr {
				if err == nil {
					t.Fatal("build succeeded, want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := len(warnings(events)) > 0; got != tc.wantWarn {
				t.Errorf("warnings %q, want some: %v", warnings(events), tc.wantWarn)
			}
			if err := validate.Image(res.Image); err != nil {
				t.Error(err)
			}
			if got := files(t, res.Image)["/etc/base.txt"]; !strings.Contains(got, "from the base") {
				t.Errorf("etc/base.txt = %q", got)
			}
		})
	}
}

func TestBaseCacheSecondBuildDownloadsNothing(t *testing.T) {
	t.Parallel()
	reg := newSwitchRegistry(t)
	cacheDir := t.TempDir()
	first, _, err := cacheBuild(t, cacheDir, reg.index, builder.PullIfChanged)
	if err != nil {
		t.Fatal(err)
	}
	if reg.blobs.Load() == 0 {
		t.Fatal("the first build downloaded no blob")
	}
	reg.manifests.Store(0)
	reg.blobs.Store(0)
	second, _, err := cacheBuild(t, cacheDir, reg.index, builder.PullIfChanged)
	if err != nil {
		t.Fatal(err)
	}
	if got := reg.blobs.Load(); got != 0 {
		t.Errorf("the second build fetched %d blobs, want 0", got)
	}
	if got := reg.manifests.Load(); got != 1 {
		t.Errorf("the second build made %d manifest requests, want 1 (the tag's HEAD)", got)
	}
	ids := []v1.Hash{first.ID, second.ID}
	if ids[0] == (v1.Hash{}) || cmp.Diff(layerDigests(t, first.Image), layerDigests(t, second.Image)) != "" {
		t.Errorf("the builds' layers differ: %v", ids)
	}
}

func TestBaseCacheRepairsDamagedBlobs(t *testing.T) {
	t.Parallel()
	reg := newSwitchRegistry(t)
	tests := []struct {
		name   string
		damage func(path string) error
	}{
		{name: "truncated", damage: func(p string) error { return os.Truncate(p, 10) }},
		{name: "same size, other bytes", damage: func(p string) error {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			data[len(data)/2] ^= 0xff
			return os.WriteFile(p, data, 0o644)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cacheDir := t.TempDir()
			if err := builder.Warm(context.Background(), cacheDir, &builder.WarmRequest{Images: []string{reg.busybox}}); err != nil {
				t.Fatal(err)
			}
			// Damage every blob: manifests and configs are checked when read, layers by size
			// (and, re-downloaded, by digest).
			blobs, _ := filepath.Glob(filepath.Join(cacheDir, "blobs", "sha256", "*"))
			for _, b := range blobs {
				if err := tc.damage(b); err != nil {
					t.Fatal(err)
				}
			}
			res, _, err := cacheBuild(t, cacheDir, reg.busybox, builder.PullIfChanged)
			if tc.name == "same size, other bytes" {
				// A layer damaged in place keeps its size: Warm --force repairs it.
				if err := builder.Warm(context.Background(), cacheDir, &builder.WarmRequest{Images: []string{reg.busybox}, Force: true}); err != nil {
					t.Fatal(err)
				}
				res, _, err = cacheBuild(t, cacheDir, reg.busybox, builder.PullIfChanged)
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := validate.Image(res.Image); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestWarmConcurrentlyIntoOneCache(t *testing.T) {
	t.Parallel()
	reg := newSwitchRegistry(t)
	cacheDir := t.TempDir()
	refs := []string{reg.busybox, reg.index, reg.imageDigest, reg.indexDigest}
	var wg sync.WaitGroup
	errs := make([]error, 4*len(refs))
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = builder.Warm(context.Background(), cacheDir, &builder.WarmRequest{Images: []string{refs[i%len(refs)]}})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ii, err := layout.ImageIndexFromPath(cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(ii); err != nil {
		t.Error(err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range im.Manifests {
		names = append(names, m.Annotations["org.opencontainers.image.ref.name"])
	}
	want := []string{"", reg.busybox, reg.index}
	if diff := cmp.Diff(want, sortedUnique(names)); diff != "" {
		t.Errorf("index.json names (-want +got):\n%s", diff)
	}
	left, _ := filepath.Glob(filepath.Join(cacheDir, "blobs", "sha256", ".tmp-*"))
	if len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

func TestDockerfileBaseImages(t *testing.T) {
	t.Parallel()
	amd64 := v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 := v1.Platform{OS: "linux", Architecture: "arm64"}
	host := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	tests := []struct {
		name       string
		dockerfile string
		args       map[string]*string
		platform   string // "" for linux/amd64, "-" for none
		want       []builder.BaseImage
		wantErr    bool
	}{
		{name: "one stage", dockerfile: "FROM alpine:3\nRUN true\n", want: []builder.BaseImage{{Ref: "alpine:3", Platform: amd64, Explicit: true}}},
		{
			name:       "args, stage names and scratch",
			dockerfile: "ARG BASE=debian\nARG TAG=12\nFROM $BASE:$TAG AS build\nFROM build AS again\nFROM scratch\nCOPY --from=build / /\nFROM busybox\n",
			args:       map[string]*string{"TAG": str("bookworm")},
			want:       []builder.BaseImage{{Ref: "debian:bookworm", Platform: amd64, Explicit: true}, {Ref: "busybox", Platform: amd64, Explicit: true}},
		},
		{name: "platform", dockerfile: "ARG P=linux/arm64\nFROM --platform=$P alpine\n", want: []builder.BaseImage{{Ref: "alpine", Platform: arm64, Explicit: true}}},
		{name: "platform args", dockerfile: "FROM --platform=$BUILDPLATFORM alpine\nFROM --platform=$TARGETPLATFORM busybox\n", platform: "linux/arm64",
			want: []builder.BaseImage{{Ref: "alpine", Platform: host, Explicit: true}, {Ref: "busybox", Platform: arm64, Explicit: true}}},
		{name: "no platform asked for", dockerfile: "FROM alpine\n", platform: "-", want: []builder.BaseImage{{Ref: "alpine", Platform: host}}},
		{name: "stage name is case-insensitive", dockerfile: "FROM alpine AS Base\nFROM base\n", want: []builder.BaseImage{{Ref: "alpine", Platform: amd64, Explicit: true}}},
		{name: "empty platform", dockerfile: "FROM --platform=$NOPE alpine\n", wantErr: true},
		{name: "blank base", dockerfile: "ARG X\nFROM $X\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			platform := tc.platform
			switch platform {
			case "":
				platform = "linux/amd64"
			case "-":
				platform = ""
			}
			got, err := builder.DockerfileBaseImages(&builder.Request{Dockerfile: []byte(tc.dockerfile), BuildArgs: tc.args, Platform: platform})
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestWarmReportsEveryFailure(t *testing.T) {
	t.Parallel()
	reg := newSwitchRegistry(t)
	err := builder.Warm(context.Background(), t.TempDir(), &builder.WarmRequest{
		Images: []string{reg.host + "/missing:one", reg.busybox, reg.host + "/missing:two"},
	})
	if err == nil || !strings.Contains(err.Error(), "missing:one") || !strings.Contains(err.Error(), "missing:two") {
		t.Fatalf("err = %v, want both missing images named", err)
	}
}

func layerDigests(t *testing.T, img v1.Image) []v1.Hash {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []v1.Hash
	for _, l := range ls {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

func sortedUnique(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
