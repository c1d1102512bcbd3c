package builder_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/contexts"
	"github.com/kiln-build/kiln/isolation"
	"github.com/kiln-build/kiln/test/testworld"
)

// platformRegistry is an in-process registry holding images for several platforms.
// Every image has one layer with /marker naming the platform it was made for, so a
// test sees which image a build started from.
type platformRegistry struct {
	host string
	// single and index refs by name: "amd64" (host/single-amd64:1), "multi" (an index
	// of linux/amd64, linux/arm64/v8 and linux/arm/v7 with an attestation manifest)...
	refs map[string]string
	ids  map[string]v1.Hash // config digest of each single image, by marker
}

func newPlatformRegistry(t *testing.T) *platformRegistry {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	r := &platformRegistry{host: strings.TrimPrefix(srv.URL, "http://"), refs: map[string]string{}, ids: map[string]v1.Hash{}}
	amd64 := r.image(t, "linux", "amd64", "", nil)
	arm64 := r.image(t, "linux", "arm64", "v8", nil)
	armv7 := r.image(t, "linux", "arm", "v7", nil)
	attestation := r.image(t, "unknown", "unknown", "", nil)
	r.push(t, "amd64", "single-amd64:1", amd64)
	r.push(t, "arm64", "single-arm64:1", arm64)
	r.push(t, "noplatform", "noplatform:1", r.image(t, "", "", "", nil))
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: amd64, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm64, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
		mutate.IndexAddendum{Add: armv7, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}}},
		mutate.IndexAddendum{Add: attestation, Descriptor: v1.Descriptor{
			Platform:    &v1.Platform{OS: "unknown", Architecture: "unknown"},
			Annotations: map[string]string{"vnd.docker.reference.type": "attestation-manifest"},
		}},
	)
	r.push(t, "multi", "multi:1", idx)
	return r
}

// image makes an image for os/arch/variant (empty: a config naming no platform)
// whose layer holds /marker and the extra files.
func (r *platformRegistry) image(t *testing.T, os, arch, variant string, extra map[string][]byte) v1.Image {
	t.Helper()
	marker := strings.TrimSuffix(os+"/"+arch+"/"+variant, "/")
	if os == "" {
		marker = "none"
	}
	files := map[string][]byte{"marker": []byte(marker)}
	for k, v := range extra {
		files[k] = v
	}
	img, err := mutate.AppendLayers(empty.Image, tarLayer(t, files))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = os, arch, variant
	cf.Config.Env = []string{"PATH=/bin"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	id, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	r.ids[marker] = id
	return img
}

// push writes an image or index as host/repoTag and remembers it as key.
func (r *platformRegistry) push(t *testing.T, key, repoTag string, w remote.Taggable) {
	t.Helper()
	ref, err := name.ParseReference(r.host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	switch w := w.(type) {
	case v1.ImageIndex:
		err = remote.WriteIndex(ref, w)
	case v1.Image:
		err = remote.Write(ref, w)
	}
	if err != nil {
		t.Fatal(err)
	}
	r.refs[key] = ref.String()
}

// tarLayer is a layer holding files (directories are created as needed).
func tarLayer(t *testing.T, files map[string][]byte) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for p, data := range files {
		if i := strings.LastIndex(p, "/"); i > 0 && !dirs[p[:i]] {
			dirs[p[:i]] = true
			if err := tw.WriteHeader(&tar.Header{Name: p[:i] + "/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
				t.Fatal(err)
			}
		}
		if err := tw.WriteHeader(&tar.Header{Name: p, Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(data))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// platformBuild builds dockerfile (IMG_x replaced by the registry's refs) for platform,
// with the base cache in cacheDir when not empty.
func (r *platformRegistry) build(t *testing.T, dockerfile, platform, cacheDir string) (*builder.Result, []builder.Event, error) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("chroot builds need root")
	}
	for k, ref := range r.refs {
		dockerfile = strings.ReplaceAll(dockerfile, "IMG_"+k, ref)
	}
	bctx, err := contexts.FromDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var events []builder.Event
	res, err := builder.Build(context.Background(), &builder.Request{Dockerfile: []byte(dockerfile), Context: bctx, Platform: platform},
		builder.WithWorkspace(builder.Workspace{Isolation: isolation.Chroot, StateDir: t.TempDir(), BaseCache: cacheDir}),
		builder.WithEvents(func(e builder.Event) { events = append(events, e) }),
	)
	return res, events, err
}

// TestBasePlatform checks which image a base gives for the platform asked for, and
// that a platform the base does not provide is an error naming the image, the platform
// asked for and the ones available — with and without the base cache.
func TestBasePlatform(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the table assumes an amd64 host")
	}
	r := newPlatformRegistry(t)
	tests := []struct {
		name       string
		dockerfile string
		platform   string
		wantMarker string            // /marker of the built image
		wantConfig string            // os/arch[/variant] of the built image's config
		wantFiles  map[string]string // other files of the built image
		wantEnv    string            // an Env entry the built image has
		wantWarn   string            // part of a warning
		wantErr    []string          // parts of the error
	}{
		{name: "single image, its own platform", dockerfile: "FROM IMG_amd64\n", platform: "linux/amd64",
			wantMarker: "linux/amd64", wantConfig: "linux/amd64"},
		{name: "single image, another platform", dockerfile: "FROM IMG_amd64\n", platform: "linux/arm64",
			wantErr: []string{"Dockerfile:1", "no match for platform in manifest", r.refs["amd64"], "is an image for linux/amd64, not linux/arm64"}},
		{name: "single arm64/v8 image serves arm64", dockerfile: "FROM IMG_arm64\n", platform: "linux/arm64",
			wantMarker: "linux/arm64/v8", wantConfig: "linux/arm64/v8"},
		{name: "single image, no platform asked: used with a warning", dockerfile: "FROM IMG_arm64\n",
			wantMarker: "linux/arm64/v8", wantConfig: "linux/arm64/v8", wantWarn: "is for linux/arm64/v8 and this machine is linux/amd64; no platform was requested"},
		{name: "config without platform is taken to be the one asked for", dockerfile: "FROM IMG_noplatform\n", platform: "linux/arm64",
			wantMarker: "none", wantConfig: "linux/arm64", wantWarn: "does not say which platform it is for"},
		{name: "index, host platform by default", dockerfile: "FROM IMG_multi\n",
			wantMarker: "linux/amd64", wantConfig: "linux/amd64"},
		{name: "index, arm64 gives arm64/v8", dockerfile: "FROM IMG_multi\n", platform: "linux/arm64",
			wantMarker: "linux/arm64/v8", wantConfig: "linux/arm64/v8"},
		{name: "index, aarch64 is arm64", dockerfile: "FROM IMG_multi\n", platform: "linux/aarch64",
			wantMarker: "linux/arm64/v8", wantConfig: "linux/arm64/v8"},
		{name: "index, arm is arm/v7", dockerfile: "FROM IMG_multi\n", platform: "linux/arm",
			wantMarker: "linux/arm/v7", wantConfig: "linux/arm/v7"},
		{name: "index, arm/v8 takes the older arm/v7", dockerfile: "FROM IMG_multi\n", platform: "linux/arm/v8",
			wantMarker: "linux/arm/v7", wantConfig: "linux/arm/v7"},
		{name: "index, arm/v6 is not served by arm/v7", dockerfile: "FROM IMG_multi\n", platform: "linux/arm/v6",
			wantErr: []string{"no match for platform in manifest", r.refs["multi"] + " has no image for linux/arm/v6; its index provides linux/amd64, linux/arm64/v8, linux/arm/v7"}},
		{name: "index, platform missing", dockerfile: "FROM IMG_multi\nRUN true\n", platform: "linux/s390x",
			wantErr: []string{"Dockerfile:1", "has no image for linux/s390x; its index provides linux/amd64, linux/arm64/v8, linux/arm/v7"}},
		{name: "FROM --platform overrides the build's", dockerfile: "FROM --platform=linux/arm/v7 IMG_multi\n", platform: "linux/arm64",
			wantMarker: "linux/arm/v7", wantConfig: "linux/arm/v7",
			wantWarn: "FromPlatformFlagConstDisallowed: FROM --platform flag should not use constant value \"linux/arm/v7\" (line 1)"},
		{name: "FROM --platform=$TARGETPLATFORM", dockerfile: "FROM --platform=$TARGETPLATFORM IMG_multi\n", platform: "linux/arm/v7",
			wantMarker: "linux/arm/v7", wantConfig: "linux/arm/v7", wantWarn: "RedundantTargetPlatform: Setting platform to predefined $TARGETPLATFORM"},
		{name: "FROM --platform=$BUILDPLATFORM, final stage for the target",
			dockerfile: "FROM --platform=$BUILDPLATFORM IMG_multi AS build\nFROM IMG_multi\nCOPY --from=build /marker /build-marker\n",
			platform:   "linux/arm64", wantMarker: "linux/arm64/v8", wantConfig: "linux/arm64/v8",
			wantFiles: map[string]string{"/build-marker": "linux/amd64"}},
		{name: "FROM --platform of a single image for another platform", dockerfile: "FROM --platform=linux/arm64 IMG_amd64\n",
			wantErr: []string{"Dockerfile:1", "is an image for linux/amd64, not linux/arm64"}},
		{name: "platform args in a stage", dockerfile: "FROM IMG_multi\nARG TARGETPLATFORM\nARG TARGETARCH\nARG BUILDPLATFORM\nENV T=$TARGETPLATFORM/$TARGETARCH/$BUILDPLATFORM\n",
			platform: "linux/arm64", wantMarker: "linux/arm64/v8", wantConfig: "linux/arm64/v8", wantEnv: "T=linux/arm64/arm64/linux/amd64"},
		{name: "platform args need ARG in a stage", dockerfile: "FROM IMG_multi\nENV T=x$TARGETARCH\n",
			platform: "linux/arm64", wantMarker: "linux/arm64/v8", wantConfig: "linux/arm64/v8", wantEnv: "T=x",
			wantWarn: "UndefinedVar: Usage of undefined variable '$TARGETARCH' (line 2)"},
		{name: "a global ARG without value keeps the platform arg", dockerfile: "ARG TARGETARCH\nFROM --platform=linux/$TARGETARCH IMG_multi\n",
			platform: "linux/arm64", wantMarker: "linux/arm64/v8", wantConfig: "linux/arm64/v8"},
		{name: "COPY --from an index takes the target's image", dockerfile: "FROM IMG_multi\nCOPY --from=IMG_multi /marker /copied\n",
			platform: "linux/arm64", wantMarker: "linux/arm64/v8", wantConfig: "linux/arm64/v8", wantFiles: map[string]string{"/copied": "linux/arm64/v8"}},
		{name: "COPY --from a single image for another platform copies its files", dockerfile: "FROM IMG_multi\nCOPY --from=IMG_amd64 /marker /copied\n",
			platform: "linux/arm64", wantMarker: "linux/arm64/v8", wantConfig: "linux/arm64/v8", wantFiles: map[string]string{"/copied": "linux/amd64"},
			wantWarn: "is for linux/amd64, not linux/arm64: COPY --from copies its files as they are"},
		{name: "empty FROM --platform", dockerfile: "FROM --platform=$NOPE IMG_multi\n",
			wantErr: []string{"Dockerfile:1", "empty platform value from expression $NOPE"}},
	}
	for _, cache := range []bool{false, true} {
		for _, tc := range tests {
			name := tc.name
			if cache {
				name = "base cache/" + name
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				cacheDir := ""
				if cache {
					cacheDir = t.TempDir()
				}
				res, events, err := r.build(t, tc.dockerfile, tc.platform, cacheDir)
				if tc.wantErr != nil {
					if err == nil {
						t.Fatal("build succeeded, want an error")
					}
					for _, part := range tc.wantErr {
						if !strings.Contains(err.Error(), part) {
							t.Errorf("error %q does not contain %q", err, part)
						}
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				checkPlatformImage(t, res.Image, tc.wantMarker, tc.wantConfig, tc.wantEnv, tc.wantFiles)
				warned := strings.Join(warnings(events), "\n")
				if tc.wantWarn == "" && warned != "" {
					t.Errorf("unexpected warnings: %s", warned)
				}
				if !strings.Contains(warned, tc.wantWarn) {
					t.Errorf("warnings %q, want one containing %q", warned, tc.wantWarn)
				}
			})
		}
	}
}

// checkPlatformImage compares a built image's /marker, config platform, an Env entry
// and files with what is wanted.
func checkPlatformImage(t *testing.T, img v1.Image, marker, platform, env string, want map[string]string) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSuffix(cf.OS+"/"+cf.Architecture+"/"+cf.Variant, "/"); got != platform {
		t.Errorf("config platform %s, want %s", got, platform)
	}
	fs := files(t, img)
	if got := strings.TrimPrefix(fs["/marker"], "f 0755 0:0 "); got != marker {
		t.Errorf("/marker %q, want %q: the build started from the wrong image", got, marker)
	}
	for p, content := range want {
		if got := strings.TrimPrefix(fs[p], "f 0755 0:0 "); got != content {
			t.Errorf("%s = %q, want %q", p, got, content)
		}
	}
	if env != "" && !strings.Contains(strings.Join(cf.Config.Env, "\n"), env) {
		t.Errorf("env %q, want %q in it", cf.Config.Env, env)
	}
}

// A RUN in an image for another architecture, with no emulator registered in
// binfmt_misc, fails with a message that says so and names the Dockerfile line, not
// with a bare exit code.
func TestRunForeignArchitecture(t *testing.T) {
	platform, elf := testworld.ForeignExecutable(t)
	r := newPlatformRegistry(t)
	p, err := v1.ParsePlatform(platform)
	if err != nil {
		t.Fatal(err)
	}
	img := r.image(t, p.OS, p.Architecture, p.Variant, map[string][]byte{"bin/sh": elf, "etc/passwd": []byte("root:x:0:0:root:/root:/bin/sh\n")})
	r.push(t, "foreign", "foreign:1", img)
	_, _, err = r.build(t, "FROM IMG_foreign\nENV A=1\nRUN true\n", platform, "")
	if err == nil {
		t.Fatal("RUN of a foreign /bin/sh succeeded")
	}
	want := "Dockerfile:3: RUN true: The command '/bin/sh -c true' could not be run: exec: \"/bin/sh\": exec format error: " +
		"the image is " + platform + " and this machine runs linux/" + runtime.GOARCH + " without an emulator registered in binfmt_misc"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error:\n%s\nwant it to contain:\n%s", err, want)
	}
	var re *builder.RunError
	if !errors.As(err, &re) || re.Code != 126 {
		t.Errorf("error %#v: want a *builder.RunError with code 126", err)
	}
}

// kiln warm --custom-platform caches the platform's image of an index, and fails for a
// single image for another platform as a build would.
func TestWarmPlatform(t *testing.T) {
	r := newPlatformRegistry(t)
	cacheDir := t.TempDir()
	err := builder.Warm(context.Background(), cacheDir, &builder.WarmRequest{
		Images: []string{r.refs["multi"], r.refs["amd64"]}, Platform: "linux/arm64",
	})
	want := "no match for platform in manifest: " + r.refs["amd64"] + " is an image for linux/amd64, not linux/arm64"
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), r.refs["multi"]) {
		t.Fatalf("warm: %v; want only %q", err, want)
	}
	res, _, err := r.build(t, "FROM IMG_multi\n", "linux/arm64", cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	checkPlatformImage(t, res.Image, "linux/arm64/v8", "linux/arm64/v8", "", nil)
}
