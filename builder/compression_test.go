package builder_test

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/builder/output"
	"github.com/kiln-build/kiln/compression"
	"github.com/kiln-build/kiln/contexts"
	"github.com/kiln-build/kiln/isolation"
	"github.com/kiln-build/kiln/snapshot"
)

// TestCompression builds with each layer compression, compresses the image as the
// outputs do (output.Compressor), pushes it to the test registry and reads it back
// with go-containerregistry: zstd layers make an OCI image whose base layers keep
// their bytes under OCI media types; gzip stays Docker's schema 2, and so does
// "none", with Docker's plain-tar type. The build itself writes plain tars whatever
// the compression: each new layer's digest is its diff ID. Every pushed blob
// hashes to its manifest digest and size, and decompresses to its config diff ID.
func TestCompression(t *testing.T) {
	w := newWorld(t)
	tests := []struct {
		compression  snapshot.Compression
		level        int
		manifest     types.MediaType
		base, layers types.MediaType
	}{
		{snapshot.Gzip, 0, types.DockerManifestSchema2, types.DockerLayer, types.DockerLayer},
		{snapshot.Zstd, 0, types.OCIManifestSchema1, types.OCILayer, types.OCILayerZStd},
		{snapshot.Zstd, 19, types.OCIManifestSchema1, types.OCILayer, types.OCILayerZStd},
		{snapshot.Uncompressed, 0, types.DockerManifestSchema2, types.DockerLayer, types.DockerUncompressedLayer},
	}
	for _, tt := range tests {
		t.Run(sprintf("%s-%d", tt.compression, tt.level), func(t *testing.T) {
			ctxDir := t.TempDir()
			if err := os.WriteFile(filepath.Join(ctxDir, "a"), []byte("copied"), 0o644); err != nil {
				t.Fatal(err)
			}
			bctx, err := contexts.FromDir(ctxDir)
			if err != nil {
				t.Fatal(err)
			}
			res, err := builder.Build(context.Background(), &builder.Request{
				Dockerfile:       []byte("FROM " + w.busybox + "\nCOPY a /a\nRUN echo ran > /ran\n"),
				Context:          bctx,
				Compression:      tt.compression,
				CompressionLevel: tt.level,
			}, builder.WithWorkspace(builder.Workspace{Isolation: isolation.Chroot, StateDir: t.TempDir()}))
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			ref, err := name.ParseReference(w.registry+"/compression:"+tt.compression.String(), name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			built, err := res.Image.Layers()
			if err != nil {
				t.Fatal(err)
			}
			for i, l := range built[1:] {
				d, _ := l.Digest()
				id, _ := l.DiffID()
				if d != id {
					t.Errorf("built layer %d: digest %s, diffID %s: the build compressed it", i+1, d, id)
				}
			}
			comp, err := output.NewCompressor(t.TempDir(), output.Compression(tt.compression.String()), tt.level)
			if err != nil {
				t.Fatal(err)
			}
			out, err := comp.CompressImage(context.Background(), res.Image)
			if err != nil {
				t.Fatalf("compressing: %v", err)
			}
			if err := remote.Write(ref, out); err != nil {
				t.Fatalf("push: %v", err)
			}
			img, err := remote.Image(ref)
			if err != nil {
				t.Fatalf("pull: %v", err)
			}
			if tt.compression == snapshot.Gzip {
				// validate reads layers as gzip only; zstd ones are checked by diffID below.
				if err := validate.Image(img); err != nil {
					t.Errorf("image read back is invalid: %v", err)
				}
			}
			m, err := img.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			if m.MediaType != tt.manifest {
				t.Errorf("manifest media type %s, want %s", m.MediaType, tt.manifest)
			}
			if len(m.Layers) != 3 {
				t.Fatalf("%d layers, want the base's and two", len(m.Layers))
			}
			for i, l := range m.Layers {
				want := tt.layers
				if i == 0 {
					want = tt.base
				}
				if l.MediaType != want {
					t.Errorf("layer %d media type %s, want %s", i, l.MediaType, want)
				}
			}
			layers, err := img.Layers()
			if err != nil {
				t.Fatal(err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			for i, l := range layers {
				if got := diffID(t, l); got != cf.RootFS.DiffIDs[i] {
					t.Errorf("layer %d decompresses to %s, want diffID %s", i, got, cf.RootFS.DiffIDs[i])
				}
				if got := sniffedDiffID(t, l); got != cf.RootFS.DiffIDs[i] {
					t.Errorf("layer %d's blob, decompressed as its magic says, hashes to %s, want diffID %s", i, got, cf.RootFS.DiffIDs[i])
				}
				d, size := blobDigest(t, l)
				if d != m.Layers[i].Digest || size != m.Layers[i].Size {
					t.Errorf("layer %d blob is %s (%d bytes), manifest says %s (%d bytes)", i, d, size, m.Layers[i].Digest, m.Layers[i].Size)
				}
			}
			for i, want := range map[int]string{1: "copied", 2: "ran\n"} {
				if got := layerFile(t, layers[i]); got != want {
					t.Errorf("layer %d holds %q, want %q", i, got, want)
				}
			}
		})
	}
}

// diffID hashes a layer's uncompressed content, as read from its blob.
func diffID(t *testing.T, l v1.Layer) v1.Hash {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h, _, err := v1.SHA256(rc)
	if err != nil {
		t.Fatalf("reading layer: %v", err)
	}
	return h
}

// sniffedDiffID hashes a layer's blob after undoing the compression its first bytes
// name, not the one its media type claims.
func sniffedDiffID(t *testing.T, l v1.Layer) v1.Hash {
	t.Helper()
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	zr, _, err := compression.NewReader(rc)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	h, _, err := v1.SHA256(zr)
	if err != nil {
		t.Fatalf("reading layer: %v", err)
	}
	return h
}

// blobDigest hashes a layer's blob as the registry serves it.
func blobDigest(t *testing.T, l v1.Layer) (v1.Hash, int64) {
	t.Helper()
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h, n, err := v1.SHA256(rc)
	if err != nil {
		t.Fatalf("reading blob: %v", err)
	}
	return h, n
}

// layerFile returns the content of the one regular file of a layer.
func layerFile(t *testing.T, l v1.Layer) string {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var files []string
	var content string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files, content = append(files, h.Name), string(b)
		}
	}
	if len(files) != 1 {
		t.Fatalf("layer holds files %s, want one", strings.Join(files, ", "))
	}
	return content
}

// TestCompressionOnceAcrossRebuilds: a rebuild from the step cache has the same plain
// layers, so the outputs' memo serves their compressed blobs and nothing is
// compressed again; and two --reproducible builds, cached or not, memoized or not,
// give the same manifest digest.
func TestCompressionOnceAcrossRebuilds(t *testing.T) {
	w := newWorld(t)
	ctxDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(ctxDir, "a"), []byte("copied"), 0o644); err != nil {
		t.Fatal(err)
	}
	cache, err := builder.NewLocalCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	memo := t.TempDir()
	build := func(c builder.Cache, memo string) (digest v1.Hash, compressed, memoized int) {
		t.Helper()
		bctx, err := contexts.FromDir(ctxDir)
		if err != nil {
			t.Fatal(err)
		}
		ws := builder.Workspace{Isolation: isolation.Chroot, StateDir: t.TempDir()}
		if c != nil {
			ws.Cache = c
		}
		res, err := builder.Build(context.Background(), &builder.Request{
			Dockerfile:   []byte("FROM " + w.busybox + "\nCOPY a /a\nRUN echo ran > /ran\n"),
			Context:      bctx,
			Reproducible: true,
		}, builder.WithWorkspace(ws))
		if err != nil {
			t.Fatalf("build: %v", err)
		}
		comp, err := output.NewCompressor(memo, output.Gzip, 0, output.WithCompressReport(func(e output.LayerCompressed) {
			if e.Memoized {
				memoized++
			} else {
				compressed++
			}
		}))
		if err != nil {
			t.Fatal(err)
		}
		img, err := comp.CompressImage(context.Background(), res.Image)
		if err != nil {
			t.Fatal(err)
		}
		if digest, err = img.Digest(); err != nil {
			t.Fatal(err)
		}
		return digest, compressed, memoized
	}
	first, c1, m1 := build(cache, memo)
	if c1 != 2 || m1 != 0 {
		t.Errorf("first build: %d layers compressed, %d from the memo; want 2, 0", c1, m1)
	}
	again, c2, m2 := build(cache, memo)
	if c2 != 0 || m2 != 2 {
		t.Errorf("rebuild from the cache: %d layers compressed, %d from the memo; want 0, 2", c2, m2)
	}
	if again != first {
		t.Errorf("rebuild: manifest %s, first %s", again, first)
	}
	fresh, c3, _ := build(nil, t.TempDir())
	if c3 != 2 {
		t.Errorf("build without cache into a new memo: %d layers compressed, want 2", c3)
	}
	if fresh != first {
		t.Errorf("second --reproducible build: manifest %s, first %s: not bit-identical", fresh, first)
	}
}

// failingSink takes a layer and then fails to record it.
type failingSink struct{ aborted, committed *int }

func (failingSink) Write(p []byte) (int, error) { return len(p), nil }
func (s failingSink) Commit(v1.Hash) error      { *s.committed++; return errors.New("disk full") }
func (s failingSink) Abort()                    { *s.aborted++ }

// With Request.LayerSinks, every layer the build writes (after a RUN, a COPY through
// the root, a COPY on the fast path) is compressed into the memo while it is written:
// the export then compresses nothing and gives the manifest that compressing at
// export gives. A sink that fails costs only that pass.
func TestLayerSinksCompressWhileWriting(t *testing.T) {
	w := newWorld(t)
	ctxDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(ctxDir, "a"), []byte("copied"), 0o644); err != nil {
		t.Fatal(err)
	}
	df := []byte("FROM " + w.busybox + "\nCOPY a /a\nRUN echo ran > /ran\nCOPY a /b\n")
	build := func(sinks func() (builder.LayerSink, error)) *builder.Result {
		t.Helper()
		bctx, err := contexts.FromDir(ctxDir)
		if err != nil {
			t.Fatal(err)
		}
		res, err := builder.Build(context.Background(), &builder.Request{
			Dockerfile: df, Context: bctx, Reproducible: true, LayerSinks: sinks,
		}, builder.WithWorkspace(builder.Workspace{Isolation: isolation.Chroot, StateDir: t.TempDir()}))
		if err != nil {
			t.Fatalf("build: %v", err)
		}
		return res
	}
	export := func(memo string, img v1.Image) (v1.Hash, int, int) {
		t.Helper()
		var compressed, memoized int
		comp, err := output.NewCompressor(memo, output.Gzip, 0, output.WithCompressReport(func(e output.LayerCompressed) {
			if e.Memoized {
				memoized++
			} else {
				compressed++
			}
		}), output.WithCompressJobs(1))
		if err != nil {
			t.Fatal(err)
		}
		out, err := comp.CompressImage(context.Background(), img)
		if err != nil {
			t.Fatal(err)
		}
		d, err := out.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d, compressed, memoized
	}

	memo := t.TempDir()
	comp, err := output.NewCompressor(memo, output.Gzip, 0)
	if err != nil {
		t.Fatal(err)
	}
	sinks := 0
	res := build(func() (builder.LayerSink, error) {
		sinks++
		s, err := comp.NewSink()
		return s, err
	})
	if sinks != 3 {
		t.Errorf("%d sinks asked for, want one per new layer (3)", sinks)
	}
	got, c, m := export(memo, res.Image)
	if c != 0 || m != 3 {
		t.Errorf("export after sinks: %d layers compressed, %d from the memo; want 0, 3", c, m)
	}
	want, c, _ := export(t.TempDir(), build(nil).Image)
	if c != 3 {
		t.Errorf("export without sinks compressed %d layers, want 3", c)
	}
	if got != want {
		t.Errorf("manifest with sinks %s, compressed at export %s", got, want)
	}

	var aborted, committed int
	res = build(func() (builder.LayerSink, error) { return failingSink{&aborted, &committed}, nil })
	if committed != 3 || aborted != 0 {
		t.Errorf("failing sinks: %d commits, %d aborts; want 3, 0", committed, aborted)
	}
	if d, c, _ := export(t.TempDir(), res.Image); c != 3 || d != want {
		t.Errorf("after failing sinks: export compressed %d layers into %s; want 3 into %s", c, d, want)
	}
}
