package testworld

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestWorldImages checks that the registry holds the base images the conformance corpus
// and kiln's integration tests are written against, in the shape they expect.
func TestWorldImages(t *testing.T) {
	t.Parallel()
	host := Registry(t)
	amd64 := v1.Platform{OS: "linux", Architecture: "amd64"}
	tests := []struct {
		repoTag   string
		mediaType types.MediaType // of the top-level manifest
		cmd       []string
		files     map[string]func(*tar.Header, io.Reader) error
	}{
		{
			repoTag:   BusyboxRepoTag,
			mediaType: types.DockerManifestSchema2,
			cmd:       []string{"sh"},
			files: map[string]func(*tar.Header, io.Reader) error{
				"bin/busybox": isExecutable,
				"bin/sh":      linksTo("/bin/busybox"),
				"etc/passwd":  contains("root:x:0:0:"),
				"etc/group":   contains("nogroup:x:65534:"),
			},
		},
		{
			repoTag:   DebianRepoTag,
			mediaType: types.OCIImageIndex,
			cmd:       []string{"bash"},
			files: map[string]func(*tar.Header, io.Reader) error{
				// all near the front of the sorted layer, so the scan stops early
				"bin":                             linksTo("usr/bin"),
				"etc/debian_version":              contains("12."),
				"etc/apt/sources.list":            contains(" bookworm main"),
				"etc/apt/apt.conf.d/docker-clean": contains("Dir::Cache::pkgcache"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.repoTag, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			ref, err := name.ParseReference(host+"/"+tt.repoTag, name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			desc, err := remote.Get(ref, remote.WithContext(ctx))
			if err != nil {
				t.Fatalf("remote.Get(%s): %v (run `scripts/world.sh up`)", ref, err)
			}
			if desc.MediaType != tt.mediaType {
				t.Errorf("%s: media type %s, want %s", ref, desc.MediaType, tt.mediaType)
			}
			img, err := remote.Image(ref, remote.WithContext(ctx), remote.WithPlatform(amd64))
			if err != nil {
				t.Fatalf("remote.Image(%s): %v", ref, err)
			}
			cfg, err := img.ConfigFile()
			if err != nil {
				t.Fatalf("%s: config: %v", ref, err)
			}
			if diff := cmp.Diff(tt.cmd, cfg.Config.Cmd); diff != "" {
				t.Errorf("%s: Cmd (-want +got):\n%s", ref, diff)
			}
			if cfg.OS != amd64.OS || cfg.Architecture != amd64.Architecture {
				t.Errorf("%s: platform %s/%s, want linux/amd64", ref, cfg.OS, cfg.Architecture)
			}
			layers, err := img.Layers()
			if err != nil {
				t.Fatalf("%s: layers: %v", ref, err)
			}
			if len(layers) != 1 {
				t.Fatalf("%s: %d layers, want 1", ref, len(layers))
			}
			if err := checkLayer(layers[0], tt.files); err != nil {
				t.Errorf("%s: %v", ref, err)
			}
		})
	}
}

// checkLayer streams the layer and applies each check to the entry of that name (leading
// "./" ignored), stopping once all are seen; every named entry must be present.
func checkLayer(l v1.Layer, checks map[string]func(*tar.Header, io.Reader) error) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	seen := map[string]bool{}
	var errs []error
	tr := tar.NewReader(rc)
	for len(seen) < len(checks) {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		p := strings.TrimPrefix(path.Clean(hdr.Name), "./")
		check, ok := checks[p]
		if !ok {
			continue
		}
		seen[p] = true
		if err := check(hdr, tr); err != nil {
			errs = append(errs, err)
		}
	}
	for p := range checks {
		if !seen[p] {
			errs = append(errs, errors.New(p+": not in the layer"))
		}
	}
	return errors.Join(errs...)
}

func isExecutable(h *tar.Header, _ io.Reader) error {
	if h.Typeflag != tar.TypeReg || h.Mode&0o111 == 0 {
		return errors.New(h.Name + ": not an executable regular file")
	}
	return nil
}

func linksTo(target string) func(*tar.Header, io.Reader) error {
	return func(h *tar.Header, _ io.Reader) error {
		if h.Typeflag != tar.TypeSymlink || h.Linkname != target {
			return errors.New(h.Name + ": not a symlink to " + target)
		}
		return nil
	}
}

func contains(s string) func(*tar.Header, io.Reader) error {
	return func(h *tar.Header, r io.Reader) error {
		data, err := io.ReadAll(io.LimitReader(r, 1<<20))
		if err != nil {
			return err
		}
		if !strings.Contains(string(data), s) {
			return errors.New(h.Name + ": does not contain " + s)
		}
		return nil
	}
}

// TestWorldDocker checks that Docker finds a daemon the CLI it returns can talk to.
func TestWorldDocker(t *testing.T) {
	t.Parallel()
	cli := Docker(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, cli, "version", "--format", "{{.Server.APIVersion}}").CombinedOutput()
	if err != nil {
		t.Fatalf("%s version: %v\n%s", cli, err, out)
	}
	if strings.TrimSpace(string(out)) == "" {
		t.Errorf("%s version printed no server API version", cli)
	}
}

// TestCheckLayer makes sure the layer checks TestWorldImages relies on can fail.
func TestCheckLayer(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	entries := []*tar.Header{
		{Name: "./bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: 2},
		{Name: "./bin/sh", Typeflag: tar.TypeSymlink, Linkname: "/bin/busybox"},
		{Name: "./etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2},
	}
	for _, h := range entries {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			if _, err := tw.Write([]byte("x\n")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(buf.Bytes())), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	type checks = map[string]func(*tar.Header, io.Reader) error
	tests := []struct {
		name    string
		checks  checks
		wantErr bool
	}{
		{"all good", checks{"bin/busybox": isExecutable, "bin/sh": linksTo("/bin/busybox"), "etc/passwd": contains("x")}, false},
		{"missing", checks{"bin/bash": isExecutable}, true},
		{"not executable", checks{"etc/passwd": isExecutable}, true},
		{"wrong link", checks{"bin/sh": linksTo("busybox")}, true},
		{"not a link", checks{"bin/busybox": linksTo("/bin/busybox")}, true},
		{"content", checks{"etc/passwd": contains("root")}, true},
	}
	for _, tt := range tests {
		if err := checkLayer(layer, tt.checks); (err != nil) != tt.wantErr {
			t.Errorf("%s: checkLayer = %v, want error %v", tt.name, err, tt.wantErr)
		}
	}
}
