package copier

import (
	"archive/tar"
	"context"
	"fmt"
	"os"

	"github.com/kiln-build/kiln/compression"
)

// isArchive reports whether the file at host is a tar archive, plain or compressed,
// judged by content and never by name: after decompression, a first tar header must
// read cleanly (an empty archive therefore is copied as a file, as in Docker).
func isArchive(host string) (bool, error) {
	f, err := os.Open(host)
	if err != nil {
		return false, fmt.Errorf("open %s: %w", host, unwrapPathError(err))
	}
	defer f.Close()
	r, _, err := compression.NewReader(f)
	if err != nil {
		return false, nil // undecodable compressed data: a plain file
	}
	defer r.Close()
	_, err = tar.NewReader(r).Next()
	return err == nil, nil
}

// extract unpacks the local archive it into destHost, the classic builder's Untar: a
// missing destination is created (owned by 0:0, whatever --chown says), entries keep
// the owners recorded in the archive, and .wh. files are ordinary files here.
func (c *copier) extract(ctx context.Context, it item, destHost string) error {
	isDir, err := c.isExistingDir(destHost)
	if err != nil {
		return err
	}
	if !isDir {
		if err := c.mkdirAll(destHost, Owner{}); err != nil {
			return err
		}
	}
	shown := it.rel
	if it.remote {
		shown = it.name
	}
	f, err := os.Open(it.host)
	if err != nil {
		return fmt.Errorf("open %s: %w", shown, unwrapPathError(err))
	}
	defer f.Close()
	r, _, err := compression.NewLimitedReader(f, compression.Limits{
		MaxBytes: c.req.MaxArchiveBytes, BytesSetting: "--max-add-size",
		MaxRatio: c.req.MaxArchiveRatio, RatioSetting: "--max-decompression-ratio",
		What: "ADD " + shown,
	})
	if err != nil {
		return fmt.Errorf("decompressing %s: %w", shown, err)
	}
	defer r.Close()
	if err := c.untar(ctx, c.imagePath(destHost), r); err != nil {
		return fmt.Errorf("extracting %s to %s: %w", shown, c.imagePath(destHost), err)
	}
	return nil
}
