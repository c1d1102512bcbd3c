package buildkitapi

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	controlapi "github.com/moby/buildkit/api/services/control"
	bkclient "github.com/moby/buildkit/client"

	"github.com/moby/buildkit/util/grpcerrors"
	"google.golang.org/grpc/codes"

	"github.com/kiln-build/kiln/test/testworld"
)

// exportDockerfile writes a file with its own mode and owner, and one that a later
// RUN deletes: the exported filesystem must not have it (the whiteout applied).
const exportDockerfile = `FROM %s
COPY --chown=1234:5678 a.txt /out/a.txt
RUN mkdir -p /out/sub && echo hi > /out/sub/x && chmod 0750 /out/sub/x && echo gone > /out/gone
RUN rm /out/gone
`

// fileOutput is a client-side Output of a docker/oci/tar exporter: a buffer, and the
// metadata the server sent with it.
type fileOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
	md  map[string]string
}

func (f *fileOutput) open(md map[string]string) (io.WriteCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.md = md
	return nopWriteCloser{&f.buf}, nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// tarEntries reads a tar stream into its headers and the contents of its files.
func tarEntries(t *testing.T, b []byte) (map[string]*tar.Header, map[string][]byte) {
	t.Helper()
	hdrs, data := map[string]*tar.Header{}, map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return hdrs, data
		}
		if err != nil {
			t.Fatal(err)
		}
		n := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
		hdrs[n] = hdr
		if hdr.Typeflag == tar.TypeReg {
			if data[n], err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// ociImage reads the image an oci exporter's tar holds under digest.
func ociImage(t *testing.T, b []byte, digest string) v1.Image {
	t.Helper()
	dir := t.TempDir()
	hdrs, data := tarEntries(t, b)
	for n, hdr := range hdrs {
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(n)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), data[n], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := v1.NewHash(digest)
	if err != nil {
		t.Fatal(err)
	}
	img, err := idx.Image(h)
	if err != nil {
		t.Fatalf("the oci tar has no image %s: %v", digest, err)
	}
	return img
}

// TestExportLocalAndOCI runs two exporters in one solve: the directory the client
// receives is the image's final filesystem, file for file (mode, mtime, contents) the
// one in the OCI archive the same solve sent, and the archive's image is the one the
// solve reports.
func TestExportLocalAndOCI(t *testing.T) {
	ts := newTestServer(t)
	dir := writeFiles(t, map[string]string{
		"Dockerfile": strings.Replace(exportDockerfile, "%s", ts.busybox, 1),
		"a.txt":      "hello\n",
	})
	out := t.TempDir()
	var oci fileOutput
	resp, _, err := ts.solve(t, dir, nil,
		bkclient.ExportEntry{Type: "local", OutputDir: out},
		bkclient.ExportEntry{Type: "oci", Attrs: map[string]string{"name": "kiln-test/oci:1"}, Output: oci.open})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		path string
		data string // "" for absent
		mode os.FileMode
	}{
		{"out/a.txt", "hello\n", 0o644},
		{"out/sub/x", "hi\n", 0o750},
		{"out/gone", "", 0},
	}
	for _, tt := range tests {
		b, err := os.ReadFile(filepath.Join(out, tt.path))
		if tt.data == "" {
			if err == nil {
				t.Errorf("%s is in the export; a later RUN deleted it", tt.path)
			}
			continue
		}
		if err != nil || string(b) != tt.data {
			t.Errorf("%s = %q, %v; want %q", tt.path, b, err, tt.data)
			continue
		}
		if fi, _ := os.Stat(filepath.Join(out, tt.path)); fi.Mode().Perm() != tt.mode {
			t.Errorf("%s mode %v, want %v", tt.path, fi.Mode().Perm(), tt.mode)
		}
	}

	// The archive: BuildKit's layout, the reported image, and the names.
	hdrs, data := tarEntries(t, oci.buf.Bytes())
	for _, n := range []string{"oci-layout", "index.json", "blobs/sha256"} {
		if hdrs[n] == nil {
			t.Errorf("the oci tar has no %s", n)
		}
	}
	if hdrs["manifest.json"] != nil {
		t.Error("the oci tar has docker's manifest.json")
	}
	var index v1.IndexManifest
	if err := json.Unmarshal(data["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json = %s (%v)", data["index.json"], err)
	}
	if got := index.Manifests[0].Annotations; got["io.containerd.image.name"] != "docker.io/kiln-test/oci:1" || got["org.opencontainers.image.ref.name"] != "1" {
		t.Errorf("index annotations = %v", got)
	}
	digest := resp.ExporterResponse["containerimage.digest"]
	if index.Manifests[0].Digest.String() != digest {
		t.Errorf("index.json names %s, the solve reports %s", index.Manifests[0].Digest, digest)
	}
	if resp.ExporterResponse["image.name"] != "docker.io/kiln-test/oci:1" {
		t.Errorf("image.name = %q", resp.ExporterResponse["image.name"])
	}
	if oci.md["containerimage.digest"] != digest || oci.md["image.name"] != "docker.io/kiln-test/oci:1" {
		t.Errorf("the client got metadata %v with the archive", oci.md)
	}
	if mt := index.Manifests[0].MediaType; mt != types.OCIManifestSchema1 {
		t.Errorf("the oci archive's manifest is %s, want BuildKit's OCI media types", mt)
	}
	img := ociImage(t, oci.buf.Bytes(), digest)
	if id, _ := img.ConfigName(); id.String() != resp.ExporterResponse["containerimage.config.digest"] {
		t.Errorf("the archive's config %s, the solve reports %s", id, resp.ExporterResponse["containerimage.config.digest"])
	}

	// Every file and directory of the flattened image is in the local export, with
	// the image's mode and mtime; nothing else is.
	rc := mutate.Extract(img)
	defer rc.Close()
	flat, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := tarEntries(t, flat)
	for n, hdr := range want {
		if n == "." {
			continue
		}
		fi, err := os.Lstat(filepath.Join(out, n))
		if err != nil {
			t.Errorf("%s: not in the local export: %v", n, err)
			continue
		}
		if hdr.Typeflag == tar.TypeSymlink {
			continue
		}
		if got, want := fi.Mode().Perm(), hdr.FileInfo().Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, the image has %v", n, got, want)
		}
		if got, want := fi.ModTime().Unix(), hdr.ModTime.Unix(); got != want {
			t.Errorf("%s: mtime %d, the image has %d", n, got, want)
		}
	}
	err = filepath.Walk(out, func(p string, _ os.FileInfo, err error) error {
		rel, _ := filepath.Rel(out, p)
		if err == nil && rel != "." && want[rel] == nil {
			t.Errorf("%s is in the local export but not in the image", rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestExportTarAndDocker runs a tar and a docker exporter in one solve: the tar holds
// the final filesystem with the image's owners; the docker archive carries the tag
// and loads into dockerd.
func TestExportTarAndDocker(t *testing.T) {
	ts := newTestServer(t)
	dir := writeFiles(t, map[string]string{
		"Dockerfile": strings.Replace(exportDockerfile, "%s", ts.busybox, 1),
		"a.txt":      "hello\n",
	})
	tag := "kiln-test/export-docker:" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")) + "-" + filepath.Base(dir)
	var tarOut, docker fileOutput
	resp, _, err := ts.solve(t, dir, nil,
		bkclient.ExportEntry{Type: "tar", Output: tarOut.open},
		bkclient.ExportEntry{Type: "docker", Attrs: map[string]string{"name": tag}, Output: docker.open})
	if err != nil {
		t.Fatal(err)
	}

	hdrs, data := tarEntries(t, tarOut.buf.Bytes())
	if a := hdrs["out/a.txt"]; a == nil || a.Uid != 1234 || a.Gid != 5678 || string(data["out/a.txt"]) != "hello\n" {
		t.Errorf("out/a.txt in the tar: %+v %q", a, data["out/a.txt"])
	}
	if x := hdrs["out/sub/x"]; x == nil || x.FileInfo().Mode().Perm() != 0o750 {
		t.Errorf("out/sub/x in the tar: %+v", x)
	}
	if hdrs["out/gone"] != nil {
		t.Error("out/gone is in the tar; a later RUN deleted it")
	}
	if hdrs["bin/busybox"] == nil {
		t.Error("the base image's bin/busybox is not in the tar")
	}

	dhdrs, ddata := tarEntries(t, docker.buf.Bytes())
	var mf []struct{ RepoTags []string }
	if err := json.Unmarshal(ddata["manifest.json"], &mf); err != nil || len(mf) != 1 {
		t.Fatalf("manifest.json = %s (%v)", ddata["manifest.json"], err)
	}
	if diff := cmp.Diff([]string{tag}, mf[0].RepoTags); diff != "" {
		t.Errorf("RepoTags (-want +got):\n%s", diff)
	}
	if dhdrs["index.json"] == nil || dhdrs["oci-layout"] == nil {
		t.Error("the docker archive lacks BuildKit's OCI index")
	}
	if got := resp.ExporterResponse["image.name"]; got != "docker.io/"+tag {
		t.Errorf("image.name = %q", got)
	}

	cli := testworld.Docker(t)
	f := filepath.Join(t.TempDir(), "image.tar")
	if err := os.WriteFile(f, docker.buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	loaded, err := exec.Command(cli, "load", "-i", f).CombinedOutput()
	if err != nil {
		t.Fatalf("docker load: %v\n%s", err, loaded)
	}
	t.Cleanup(func() { exec.Command(cli, "rmi", tag).Run() })
	if !strings.Contains(string(loaded), tag) {
		t.Errorf("docker load said %q, not the tag", loaded)
	}
	id, err := exec.Command(cli, "image", "inspect", "-f", "{{.Id}}", tag).Output()
	if err != nil {
		t.Fatalf("docker image inspect %s: %v", tag, err)
	}
	// dockerd with the containerd image store reports the manifest digest as the ID.
	if got := strings.TrimSpace(string(id)); got != resp.ExporterResponse["containerimage.config.digest"] && got != resp.ExporterResponse["containerimage.digest"] {
		t.Errorf("dockerd loaded %s; the solve reports config %s", got, resp.ExporterResponse["containerimage.config.digest"])
	}
}

func TestCheckExporterAttrs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		typ     string
		attrs   map[string]string
		wantErr bool
		ignored []string
	}{
		{typ: "local", attrs: map[string]string{"dest": "out"}},
		{typ: "docker", attrs: map[string]string{"name": "a:1", "dest": "x.tar", "context": "default", "prefer-image-digest": "true"}},
		{typ: "oci", attrs: map[string]string{"tar": "true"}},
		{typ: "oci", attrs: map[string]string{"tar": "false"}, wantErr: true},
		{typ: "local", attrs: map[string]string{"platform-split": "true"}, wantErr: true},
		{typ: "local", attrs: map[string]string{"platform-split": "false"}},
		{typ: "tar", attrs: map[string]string{"src": "/out"}, wantErr: true},
		{typ: "docker", attrs: map[string]string{"compression": "zstd", "oci-mediatypes": "true"}, ignored: []string{"compression=zstd"}},
		{typ: "local", attrs: map[string]string{"oci-mediatypes": "true", "force-compression": "true"}, ignored: []string{"force-compression=true", "oci-mediatypes=true"}},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprint(i, "-", tt.typ), func(t *testing.T) {
			t.Parallel()
			ignored, err := checkExporterAttrs(&controlapi.Exporter{Type: tt.typ, Attrs: tt.attrs})
			if (err != nil) != tt.wantErr {
				t.Fatalf("%v: err = %v, want error %v", tt.attrs, err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.ignored, ignored); diff != "" {
				t.Errorf("%v: ignored (-want +got):\n%s", tt.attrs, diff)
			}
		})
	}
}

// TestExportLocalMode checks the client's local modes, which need the server to say
// it sends the whole result in one transfer: copy (the default) leaves what the
// destination already had, delete makes it the exported filesystem exactly.
func TestExportLocalMode(t *testing.T) {
	ts := newTestServer(t)
	dir := writeFiles(t, map[string]string{"Dockerfile": "FROM " + ts.busybox + "\nRUN echo built > /built\n"})
	tests := []struct {
		mode      string
		staleKept bool
	}{
		{mode: "", staleKept: true},
		{mode: "copy", staleKept: true},
		{mode: "delete", staleKept: false},
	}
	for _, tt := range tests {
		t.Run("mode="+tt.mode, func(t *testing.T) {
			out := t.TempDir()
			if err := os.WriteFile(filepath.Join(out, "stale"), []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			var attrs map[string]string
			if tt.mode != "" {
				attrs = map[string]string{"mode": tt.mode}
			}
			if _, _, err := ts.solve(t, dir, nil, bkclient.ExportEntry{Type: "local", OutputDir: out, Attrs: attrs}); err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(filepath.Join(out, "built")); err != nil || string(b) != "built\n" {
				t.Errorf("built = %q, %v", b, err)
			}
			_, err := os.Stat(filepath.Join(out, "stale"))
			if kept := err == nil; kept != tt.staleKept {
				t.Errorf("stale file kept = %v, want %v", kept, tt.staleKept)
			}
		})
	}
}

// TestExportClientRefuses checks what the solve says when the client's file target
// refuses the stream: an error fails the solve with the client's reason; no writer at
// all (the target exists already) is success, as with BuildKit.
func TestExportClientRefuses(t *testing.T) {
	ts := newTestServer(t)
	dir := writeFiles(t, map[string]string{"Dockerfile": "FROM " + ts.busybox + "\nRUN echo x > /x\n"})
	tests := []struct {
		typ     string
		output  func(map[string]string) (io.WriteCloser, error)
		wantErr string
	}{
		{typ: "docker", output: func(map[string]string) (io.WriteCloser, error) { return nil, errors.New("disk full here") }, wantErr: "disk full here"},
		{typ: "tar", output: func(map[string]string) (io.WriteCloser, error) { return nil, errors.New("no room") }, wantErr: "no room"},
		{typ: "oci", output: func(map[string]string) (io.WriteCloser, error) { return nil, nil }},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			_, _, err := ts.solve(t, dir, nil, bkclient.ExportEntry{Type: tt.typ, Output: tt.output})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("solve: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("solve error %v, want one naming %q", err, tt.wantErr)
			}
		})
	}
	// The server still builds.
	out := t.TempDir()
	if _, _, err := ts.solve(t, dir, nil, bkclient.ExportEntry{Type: "local", OutputDir: out}); err != nil {
		t.Fatal(err)
	}
	// Failed or not, no export leaves its scratch files behind.
	err := filepath.WalkDir(ts.cfg.Workspace.StateDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), "export-fs-") {
			t.Errorf("left behind: %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestExportToClientRefuses checks the refusals that come before any transfer.
func TestExportToClientRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		exporter *controlapi.Exporter
		want     codes.Code
	}{
		{&controlapi.Exporter{Type: "cacheonly"}, codes.InvalidArgument},
		{&controlapi.Exporter{Type: "oci", Attrs: map[string]string{"tar": "false"}}, codes.InvalidArgument},
		{&controlapi.Exporter{Type: "local"}, codes.FailedPrecondition}, // no session
	}
	for _, tt := range tests {
		s := &Server{}
		err := s.exportToClient(context.Background(), newProgress(func(*controlapi.StatusResponse) {}), &built{}, 0, tt.exporter, map[string]string{})
		if got := grpcerrors.Code(err); got != tt.want {
			t.Errorf("%s %v: %v (%s), want %s", tt.exporter.Type, tt.exporter.Attrs, err, got, tt.want)
		}
	}
}
