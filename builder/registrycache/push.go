package registrycache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/snapshot"
)

// Put queues step for a push to <repo>:<key hex> and returns: the build goes on while
// the layer uploads, as kaniko's does. Put waits only when the queue is full. Until the
// push is done, Get serves the step from memory. A push that fails is reported by
// Flush, never here: a cache that cannot be written must not fail the build.
func (c *Cache) Put(ctx context.Context, key v1.Hash, step *builder.CachedStep) error {
	if c.readOnly {
		return nil
	}
	c.mu.Lock()
	t := c.tallyOf(ctx)
	refused := c.refused != nil
	if refused {
		t.skipped++
	}
	c.mu.Unlock()
	if refused {
		return nil
	}
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	queued := *step
	release := func() {}
	if step.Layer != nil {
		queued.Layer, release = c.spoolLayer(step.Layer)
	}
	// Get serves the caller's own step, not the spooled copy, whose link goes with
	// the push: a build that takes it links the blob where it lives.
	served := step
	c.mu.Lock()
	c.pending[key] = served
	c.mu.Unlock()
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		defer func() { <-c.slots }()
		defer release()
		c.workers <- struct{}{}
		err := c.push(ctx, key, &queued)
		<-c.workers
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.pending[key] == served {
			delete(c.pending, key)
		}
		if err != nil {
			t.errs = append(t.errs, err)
			if refusal(err) && c.refused == nil {
				c.refused = err
			}
			return
		}
		t.stored++
	}()
	return nil
}

// push writes one entry's image.
func (c *Cache) push(ctx context.Context, key v1.Hash, step *builder.CachedStep) error {
	ref := c.Tag(key)
	c.mu.Lock()
	refused := c.refused
	c.mu.Unlock()
	if refused != nil {
		return fmt.Errorf("pushing %s: not tried after an earlier refusal: %w", ref, refused)
	}
	layer, err := c.compressLayer(ctx, step.Layer)
	if err != nil {
		return fmt.Errorf("making cache entry %s: %w", ref, err)
	}
	compressed := *step
	compressed.Layer = layer
	img, err := entryImage(&compressed, v1.Time{Time: c.now().UTC()})
	if err != nil {
		return fmt.Errorf("making cache entry %s: %w", ref, err)
	}
	c.logf("Pushing layer %s to cache now", ref)
	if err := remote.Write(ref, img, append(c.remote, remote.WithContext(ctx))...); err != nil {
		return fmt.Errorf("pushing %s: %w", ref, err)
	}
	return nil
}

// entryImage is the image a step is stored as: its layer, if any, on an empty image
// created now, with the step's history entry and container config.
func entryImage(step *builder.CachedStep, created v1.Time) (v1.Image, error) {
	cf := &v1.ConfigFile{
		Created: created,
		Config:  *step.Config.DeepCopy(),
		RootFS:  v1.RootFS{Type: "layers"},
	}
	base := empty.Image
	if step.Layer == nil {
		cf.History = []v1.History{step.History}
		return mutate.ConfigFile(base, cf)
	}
	mt, err := step.Layer.MediaType()
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(string(mt), "application/vnd.oci.") {
		// A zstd layer has no Docker schema 2 name: the entry is an OCI image.
		base = mutate.MediaType(base, types.OCIManifestSchema1)
		base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	}
	img, err := mutate.ConfigFile(base, cf)
	if err != nil {
		return nil, err
	}
	return mutate.Append(img, mutate.Addendum{Layer: step.Layer, History: step.History})
}

// spoolLayer hard-links a layer file into the spool directory and returns the linked
// layer and how to remove the link; a layer it cannot link is returned as it is.
func (c *Cache) spoolLayer(l v1.Layer) (v1.Layer, func()) {
	nothing := func() {}
	fl, ok := l.(*snapshot.Layer)
	if !ok || c.spool == "" {
		return l, nothing
	}
	if err := os.MkdirAll(c.spool, 0o700); err != nil {
		return l, nothing
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	link := filepath.Join(c.spool, "layer-"+hex.EncodeToString(rnd[:]))
	if err := os.Link(fl.Path(), link); err != nil {
		return l, nothing
	}
	digest, err1 := fl.Digest()
	diffID, err2 := fl.DiffID()
	size, err3 := fl.Size()
	mt, err4 := fl.MediaType()
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		os.Remove(link)
		return l, nothing
	}
	return snapshot.LayerFromFile(link, digest, diffID, size, mt), func() { os.Remove(link) }
}

// tallyOf returns the tally of ctx's scope (builder.CacheScope), made on first use.
// c.mu must be held.
func (c *Cache) tallyOf(ctx context.Context) *tally {
	scope := builder.CacheScope(ctx)
	t := c.tallies[scope]
	if t == nil {
		t = &tally{}
		c.tallies[scope] = t
	}
	return t
}

// Flush waits for the stores queued so far in ctx's scope (builder.WithCacheScope: one
// build's, on a server running several) and reports those of its pushes that failed,
// nil when none did; without a scope, it waits for every store. Stores after it are
// tried again even if the registry refused the credentials before. Waiting ends early
// when ctx is done; the pushes still running then go on.
func (c *Cache) Flush(ctx context.Context) error {
	scope := builder.CacheScope(ctx)
	c.mu.Lock()
	var ts []*tally
	for s, t := range c.tallies {
		if scope == nil || s == scope {
			ts = append(ts, t)
			delete(c.tallies, s)
		}
	}
	c.mu.Unlock()
	done := make(chan struct{})
	go func() {
		for _, t := range ts {
			t.wg.Wait()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("waiting for cache pushes to %s: %w", c.repo, ctx.Err())
	}
	c.mu.Lock()
	var errs []error
	skipped, stored := 0, 0
	for _, t := range ts {
		errs = append(errs, t.errs...)
		skipped += t.skipped
		stored += t.stored
	}
	// A refusal holds until the next Flush: a server (kiln serve --cache-repo) flushes
	// after each build, and tries again with the next one, after its credentials may
	// have been fixed.
	c.refused = nil
	c.mu.Unlock()
	if len(errs) == 0 && skipped == 0 {
		return nil
	}
	msg := fmt.Sprintf("%d of %d cache pushes to %s failed", len(errs)+skipped, len(errs)+skipped+stored, c.repo)
	if skipped > 0 {
		msg += fmt.Sprintf(" (%d not tried after the registry refused the credentials)", skipped)
	}
	if len(errs) == 0 {
		return errors.New(msg)
	}
	return fmt.Errorf("%s; the first: %w", msg, errs[0])
}
