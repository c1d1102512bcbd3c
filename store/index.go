package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"syscall"
	"time"
)

// indexVersion is the format of the index file; a store refuses newer ones rather
// than rewrite them without fields it does not know.
const indexVersion = 1

// index is the store's tag index: which images exist and which names point at them.
// It is the only mutable file; blobs are content-addressed and written before the index
// names them, so the index file is the commit point of every change.
type index struct {
	Version int `json:"version"`
	// Images maps an image ID (config digest, "sha256:…") to what the store knows of it.
	Images map[string]*imageRecord `json:"images"`
	// Tags maps a normalized tag ("docker.io/library/busybox:latest") to an image ID.
	Tags map[string]string `json:"tags"`
	// ContentSizes caches each layer blob's unpacked size (the sum of its files'
	// sizes, as dockerd counts image size), so storing an image again does not
	// decompress layers it already has.
	ContentSizes map[string]int64 `json:"contentSizes,omitempty"`
}

// imageRecord is one stored image. Everything `docker images` shows is kept here so
// that listing never opens a blob.
type imageRecord struct {
	Manifest string `json:"manifest"` // manifest digest
	// Layers are the manifest's layer digests, so garbage collection needs no blob.
	Layers []string `json:"layers"`
	// RepoDigests are normalized repo@digest references ("127.0.0.1:5000/app@sha256:…").
	RepoDigests []string          `json:"repoDigests,omitempty"`
	Created     time.Time         `json:"created"`
	Size        int64             `json:"size"`
	Labels      map[string]string `json:"labels,omitempty"`
	LastTagTime time.Time         `json:"lastTagTime,omitzero"`
}

func newIndex() *index {
	return &index{
		Version:      indexVersion,
		Images:       map[string]*imageRecord{},
		Tags:         map[string]string{},
		ContentSizes: map[string]int64{},
	}
}

// tagsOf returns the normalized tags naming id, sorted as dockerd sorts references.
func (ix *index) tagsOf(id string) []string {
	var tags []string
	for t, target := range ix.Tags {
		if target == id {
			tags = append(tags, t)
		}
	}
	sort.Strings(tags)
	return tags
}

// refsOf returns every tag and repo digest of id, sorted by their normalized strings
// (dockerd's reference store order, which decides the order of rmi's records).
func (ix *index) refsOf(id string) []string {
	refs := ix.tagsOf(id)
	if rec := ix.Images[id]; rec != nil {
		refs = append(refs, rec.RepoDigests...)
	}
	sort.Strings(refs)
	return refs
}

// clone returns a deep copy, so a failed change can be abandoned without touching the
// index readers see.
func (ix *index) clone() *index {
	c := newIndex()
	for id, rec := range ix.Images {
		r := *rec
		r.Layers = append([]string(nil), rec.Layers...)
		r.RepoDigests = append([]string(nil), rec.RepoDigests...)
		if rec.Labels != nil {
			r.Labels = make(map[string]string, len(rec.Labels))
			for k, v := range rec.Labels {
				r.Labels[k] = v
			}
		}
		c.Images[id] = &r
	}
	for k, v := range ix.Tags {
		c.Tags[k] = v
	}
	for k, v := range ix.ContentSizes {
		c.ContentSizes[k] = v
	}
	return c
}

// fileStamp identifies one version of the index file. Every write replaces the file by
// rename, so a new inode (or, should an inode be reused, a new mtime or size) means
// another writer changed it.
type fileStamp struct {
	ino   uint64
	size  int64
	mtime time.Time
}

func stampOf(fi fs.FileInfo) fileStamp {
	st := fileStamp{size: fi.Size(), mtime: fi.ModTime()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = sys.Ino
	}
	return st
}

// readIndex loads the index file; a missing file is an empty store.
func readIndex(path string) (*index, fileStamp, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return newIndex(), fileStamp{}, nil
	}
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("opening the image index %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("reading the image index %s: %w", path, err)
	}
	ix := newIndex()
	if err := json.NewDecoder(f).Decode(ix); err != nil {
		return nil, fileStamp{}, fmt.Errorf("reading the image index %s: %w", path, err)
	}
	if ix.Version > indexVersion {
		return nil, fileStamp{}, fmt.Errorf("the image index %s has format %d; this kiln reads up to %d", path, ix.Version, indexVersion)
	}
	if ix.Images == nil {
		ix.Images = map[string]*imageRecord{}
	}
	if ix.Tags == nil {
		ix.Tags = map[string]string{}
	}
	if ix.ContentSizes == nil {
		ix.ContentSizes = map[string]int64{}
	}
	return ix, stampOf(fi), nil
}
