package builder

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// compressedDir is the subdirectory of the local cache where the outputs memoize
// compressed layers (output.Compressor; docs/caching.md "When layers are compressed").
const compressedDir = "compressed"

// pruneCompressed drops the memo's records of layers no remaining entry holds
// (keepDiffs, "sha256-<hex>" of diffIDs), then every memo blob no remaining record
// names. A memo is a cache of a cache: what goes is compressed again when needed.
func (c *LocalCache) pruneCompressed(keepDiffs map[string]bool, rep *PruneReport) error {
	dir := filepath.Join(c.dir, compressedDir)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	named := map[string]bool{}
	err := c.sweep(compressedDir, func(name string, _ fs.FileInfo) bool {
		if !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			return false
		}
		diffID, _, _ := strings.Cut(name, ".")
		if !keepDiffs[diffID] {
			return true
		}
		var e struct {
			Digest v1.Hash `json:"digest"`
		}
		if raw, err := os.ReadFile(filepath.Join(dir, name)); err == nil && json.Unmarshal(raw, &e) == nil {
			named[e.Digest.Algorithm+"-"+e.Digest.Hex] = true
		}
		return false
	}, rep)
	if err != nil {
		return err
	}
	stale := c.now().Add(-time.Hour)
	return c.sweep(compressedDir, func(name string, fi fs.FileInfo) bool {
		if strings.HasPrefix(name, ".") {
			return strings.HasSuffix(name, ".tmp") && fi.ModTime().Before(stale) // a crashed compression's
		}
		return !strings.HasSuffix(name, ".json") && !named[name]
	}, rep)
}
