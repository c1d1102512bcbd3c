package apiserver

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// writeDockerArchive writes entries as a docker-archive, the format of docker save
// that docker load reads: manifest.json (one element per image, tags in the order
// given), each image's config as "<hex>.json", and each layer once, as stored
// (compressed; docker load decompresses) under "<hex>.tar.gz". go-containerregistry's
// tarball writer would do, but orders tags by map iteration, so docker load would
// report them in a different order every time.
func writeDockerArchive(w io.Writer, entries []*saveEntry) error {
	manifest := make(tarball.Manifest, 0, len(entries))
	for _, e := range entries {
		cfgName, err := e.img.ConfigName()
		if err != nil {
			return err
		}
		layers, err := e.img.Layers()
		if err != nil {
			return err
		}
		d := tarball.Descriptor{Config: cfgName.Hex + ".json", RepoTags: e.tags}
		for _, l := range layers {
			name, err := layerFileName(l)
			if err != nil {
				return err
			}
			d.Layers = append(d.Layers, name)
		}
		manifest = append(manifest, d)
	}
	raw, err := json.Marshal(manifest)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	if err := writeArchiveFile(tw, "manifest.json", bytes.NewReader(raw), int64(len(raw))); err != nil {
		return err
	}
	written := map[string]bool{}
	for i, e := range entries {
		cfg, err := e.img.RawConfigFile()
		if err != nil {
			return err
		}
		if !written[manifest[i].Config] {
			written[manifest[i].Config] = true
			if err := writeArchiveFile(tw, manifest[i].Config, bytes.NewReader(cfg), int64(len(cfg))); err != nil {
				return err
			}
		}
		layers, err := e.img.Layers()
		if err != nil {
			return err
		}
		for j, l := range layers {
			name := manifest[i].Layers[j]
			if written[name] {
				continue
			}
			written[name] = true
			if err := writeArchiveLayer(tw, name, l); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

// layerFileName names a layer's file by its digest and compression.
func layerFileName(l v1.Layer) (string, error) {
	d, err := l.Digest()
	if err != nil {
		return "", err
	}
	mt, err := l.MediaType()
	if err != nil {
		return "", err
	}
	switch mt {
	case types.DockerLayer, types.OCILayer, types.DockerForeignLayer, types.OCIRestrictedLayer:
		return d.Hex + ".tar.gz", nil
	case types.OCILayerZStd:
		return d.Hex + ".tar.zst", nil
	}
	return d.Hex + ".tar", nil
}

func writeArchiveLayer(tw *tar.Writer, name string, l v1.Layer) error {
	size, err := l.Size()
	if err != nil {
		return err
	}
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	return writeArchiveFile(tw, name, rc, size)
}

func writeArchiveFile(tw *tar.Writer, name string, r io.Reader, size int64) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if _, err := io.Copy(tw, r); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
