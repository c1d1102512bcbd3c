package builder

import (
	"context"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// FuzzBaseCacheImage reads arbitrary indexes, manifests and image configs as a build
// reads a base image from the cache (the registry's bytes, stored as served): platform
// selection in an index, the manifest, the config and its layers. It may find no image
// but must never panic. In the templates, @CONFIG@, @LAYER@ and @MANIFEST@ become the
// digests of the config, a one-byte layer and the manifest, so the fuzzer can reach
// past digest checks.
func FuzzBaseCacheImage(f *testing.F) {
	manifest := `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",` +
		`"config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":0,"digest":"@CONFIG@"},` +
		`"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":1,"digest":"@LAYER@"}]}`
	index := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` +
		`{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":1,"digest":"@MANIFEST@","platform":{"architecture":"amd64","os":"linux"}},` +
		`{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"@MANIFEST@","platform":{"architecture":"arm","os":"linux","variant":"v7"}}]}`
	config := `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]},"config":{"Env":["PATH=/bin"],"OnBuild":["RUN x"]}}`
	f.Add(index, manifest, config, "linux/amd64")
	f.Add(manifest, manifest, config, "linux/arm/v7")
	f.Add(`{"manifests":[{"digest":"@MANIFEST@","platform":{"os":"linux","architecture":"arm64","variant":"v8"}}]}`, manifest, `{}`, "linux/arm64")
	f.Add(`{"schemaVersion":1}`, `{"layers":null}`, `{"rootfs":{"diff_ids":[]}}`, "")
	f.Fuzz(func(t *testing.T, index, manifest, config, platform string) {
		c, err := openBaseCache(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		put := func(s string) v1.Hash {
			d, err := c.putBlob(ctx, []byte(s))
			if err != nil {
				t.Fatal(err)
			}
			return d
		}
		layer := put("x")
		cfg := put(config)
		fill := func(s string, m v1.Hash) string {
			return strings.NewReplacer("@CONFIG@", cfg.String(), "@LAYER@", layer.String(), "@MANIFEST@", m.String()).Replace(s)
		}
		m := put(fill(manifest, v1.Hash{}))
		idx := put(fill(index, m))
		p, err := parsePlatform(platform)
		if err != nil {
			return
		}
		img, ok := c.image(idx, p)
		if !ok {
			return
		}
		if _, err := img.raw.image(img.layers); err != nil {
			return
		}
		if len(img.layers) != len(img.config.RootFS.DiffIDs) {
			t.Errorf("%d layers for %d diff IDs", len(img.layers), len(img.config.RootFS.DiffIDs))
		}
	})
}
