package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/snapshot"
)

// Cache stores what build steps did, so that a later build with the same inputs can
// reuse a step instead of running it (Docker's classic build cache, kaniko's
// --cache-repo). Keys are described in cache_key.go and docs/caching.md. A Cache is
// used by concurrent builds and must be safe for that.
type Cache interface {
	// Get returns the step stored under key, or an error wrapping ErrCacheMiss when
	// there is none. Any other error is reported as a warning and read as a miss.
	Get(ctx context.Context, key v1.Hash) (*CachedStep, error)
	// Put stores step under key, replacing what was there. The step's layer is readable
	// while Put runs; the cache keeps a copy of its own.
	Put(ctx context.Context, key v1.Hash, step *CachedStep) error
}

// ErrCacheMiss is what Cache.Get wraps when it has no entry for a key.
var ErrCacheMiss = errors.New("no cache entry")

// CachedStep is what one step did to the image: applied to the state the step started
// from, it reproduces the state the step ended with, byte for byte.
type CachedStep struct {
	// Layer is the layer the step added, nil when it added none. A layer returned by
	// Get must stay readable after the build (the built image refers to it).
	Layer v1.Layer
	// History is the step's history entry, with the time the step first ran.
	History v1.History
	// Config is the container config after the step. The builder recomputes a step's
	// config (it is a pure function of the instruction and the config before it) and
	// checks the fields that key later steps against this record.
	Config v1.Config
}

// CacheInput is one named input of a step, as it went into the step's key: a file
// ("file:src/main.go"), a build arg ("arg:VERSION"), an image or a stage. Digest is a
// digest of the input's value; values themselves are never stored.
type CacheInput struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
}

// InputIndex is an optional capability of a Cache: it remembers, for a step slot (the
// state a step starts from and its instruction), the inputs of the step last stored
// there, so that a miss can name the file, build arg or base image that changed.
type InputIndex interface {
	// Inputs returns the inputs recorded for slot, or an error wrapping ErrCacheMiss.
	Inputs(ctx context.Context, slot v1.Hash) ([]CacheInput, error)
	// PutInputs records the inputs of the step just stored for slot.
	PutInputs(ctx context.Context, slot v1.Hash, inputs []CacheInput) error
}

// useCache sets the cache a build uses: none when the workspace has none, or when each
// stage takes a single snapshot, where steps have no layers of their own.
func (b *build) useCache(c Cache) {
	if c == nil {
		return
	}
	if b.req.SingleSnapshot {
		b.emit(Debug{Message: "The build cache is not used with a single snapshot per stage"})
		return
	}
	b.cache = c
	b.cacheSalt = b.keySalt()
}

// execute runs one instruction of the stage through the cache: a step found there is
// applied without touching the root; any other step runs and is stored.
func (s *stage) execute(ctx context.Context, cmd instructions.Command, text string) error {
	if err := s.expand(cmd, true); err != nil {
		return err
	}
	b := s.b
	if b.cache == nil {
		return s.apply(ctx, cmd)
	}
	if f, ok := b.cache.(StepFilter); ok && !f.Caches(strings.ToUpper(cmd.Name())) {
		// Not kept (kaniko's --cache-run-layers=false, --cache-copy-layers=false). Its key
		// still chains the identity of the states after it (see identity), so that the
		// steps after an unchanged COPY hit as they do in kaniko.
		b.emit(CacheMiss{Step: s.step, Text: text, Reason: strings.ToUpper(cmd.Name()) + " steps are not cached"})
		k, kerr := s.timedKey(ctx, cmd)
		if err := s.apply(ctx, cmd); err != nil {
			return err
		}
		s.ran(fmt.Sprintf("step %d (%s) is not cached and ran again", s.step, truncate(text, 60)))
		if kerr == nil {
			s.state.chain = k.key
		}
		return nil
	}
	k, err := s.timedKey(ctx, cmd)
	if err != nil {
		// Not cacheable (an ADD of a URL) or its sources cannot be read: the step runs
		// and reports any real problem itself.
		b.emit(CacheMiss{Step: s.step, Text: text, Reason: err.Error()})
		s.fresh = true
		s.state.chain = v1.Hash{} // nothing to chain from: back to the content's identity
		return s.apply(ctx, cmd)
	}
	if !b.req.NoCache {
		getStart := time.Now()
		hit, err := b.cache.Get(ctx, k.key)
		b.phases.Since(PhaseCache, getStart)
		switch {
		case err == nil:
			ok, err := s.applyCached(ctx, cmd, hit)
			if err != nil {
				return err
			}
			if ok {
				b.emit(CacheHit{Step: s.step, Text: text})
				s.parentNote = ""
				s.chainOn(k)
				return nil
			}
			b.emit(Warning{Message: fmt.Sprintf("The cache entry for %q does not match the step; running it", text)})
		case !errors.Is(err, ErrCacheMiss):
			b.emit(Warning{Message: fmt.Sprintf("Reading the cache entry for %q: %v; running the step", text, err)})
		}
	}
	missStart := time.Now()
	b.emit(CacheMiss{Step: s.step, Text: text, Reason: s.missReason(ctx, k)})
	b.phases.Since(PhaseCache, missStart)
	layers := len(s.state.layers)
	if err := s.apply(ctx, cmd); err != nil {
		return err
	}
	storeStart := time.Now()
	s.store(ctx, k, layers, text)
	b.phases.Since(PhaseCache, storeStart)
	s.ran(fmt.Sprintf("step %d (%s) ran again and changed the image", s.step, truncate(text, 60)))
	s.chainOn(k)
	return nil
}

// timedKey is stepKey, its time counted in PhaseCache.
func (s *stage) timedKey(ctx context.Context, cmd instructions.Command) (*stepKey, error) {
	defer s.b.phases.Since(PhaseCache, time.Now())
	return s.stepKey(ctx, cmd)
}

// chainOn moves a key-chained identity (see imageState.identity) past the step k.
func (s *stage) chainOn(k *stepKey) {
	if s.state.chain != (v1.Hash{}) {
		s.state.chain = k.key
	}
}

// ran records that a step of the stage ran: the state after it is not known to the
// cache, and note says why for the misses that may follow.
func (s *stage) ran(note string) {
	s.fresh = true
	s.parentNote = note
}

// store puts what the step just applied into the cache, and its inputs into the index.
// A cache that cannot store is a warning, never a failed build.
func (s *stage) store(ctx context.Context, k *stepKey, layersBefore int, text string) {
	b := s.b
	hist := s.state.config.History
	step := &CachedStep{History: hist[len(hist)-1], Config: *s.state.config.Config.DeepCopy()}
	if len(s.state.layers) > layersBefore {
		step.Layer = s.state.layers[len(s.state.layers)-1]
	}
	if err := b.cache.Put(ctx, k.key, step); err != nil {
		b.emit(Warning{Message: fmt.Sprintf("Storing %q in the cache: %v", text, err)})
		return
	}
	if idx, ok := b.cache.(InputIndex); ok {
		if err := idx.PutInputs(ctx, k.slot, k.inputs); err != nil {
			b.emit(Debug{Message: fmt.Sprintf("Recording the inputs of %q: %v", text, err)})
		}
	}
}

// applyCached applies a cached step to the state. It reports false, changing nothing,
// when the entry cannot be what this step did (a corrupt or colliding entry).
//
// Steps that work on the root (RUN, COPY, ADD, WORKDIR) only change the config fields
// that are part of the state's identity, so the entry's values for those are taken and
// its layer appended. The other instructions change only the config, as a pure function
// of it: they are applied as usual and the entry contributes their history entry, the
// time they first ran included.
func (s *stage) applyCached(ctx context.Context, cmd instructions.Command, hit *CachedStep) (bool, error) {
	switch c := cmd.(type) {
	case *instructions.RunCommand, *instructions.CopyCommand, *instructions.AddCommand, *instructions.WorkdirCommand:
		want := s.state.config.Config.DeepCopy()
		if w, ok := c.(*instructions.WorkdirCommand); ok {
			want.WorkingDir = resolveWorkdir(want.WorkingDir, w.Path)
		}
		same := reflect.DeepEqual(keyedConfig(*want), keyedConfig(hit.Config))
		if linked(cmd) {
			// Stored on another state, maybe: only the working directory is in its key.
			same = want.WorkingDir == hit.Config.WorkingDir
		}
		if !same || hit.History.EmptyLayer != (hit.Layer == nil) {
			return false, nil
		}
		if hit.Layer != nil {
			diffID, err := hit.Layer.DiffID()
			if err != nil {
				return false, nil
			}
			s.state.layers = append(s.state.layers, s.b.adoptLayer(hit.Layer))
			s.state.config.RootFS.DiffIDs = append(s.state.config.RootFS.DiffIDs, diffID)
		}
		s.state.config.History = append(s.state.config.History, hit.History)
		s.state.config.Config.WorkingDir = want.WorkingDir
		return true, nil
	}
	if hit.Layer != nil {
		return false, nil
	}
	before := s.state.clone()
	if err := s.apply(ctx, cmd); err != nil {
		return false, err
	}
	hist := s.state.config.History
	last := &hist[len(hist)-1]
	if last.CreatedBy != hit.History.CreatedBy || !reflect.DeepEqual(keyedConfig(s.state.config.Config), keyedConfig(hit.Config)) {
		s.state = before
		return false, nil
	}
	*last = hit.History
	return true, nil
}

// adoptLayer links a cached layer's blob into the build's blob directory when it is a
// file on the same filesystem, so the built image does not depend on the cache keeping
// it (a prune while the image is being written); otherwise the cache's layer is used.
func (b *build) adoptLayer(l v1.Layer) v1.Layer {
	fl, ok := l.(*snapshot.Layer)
	if !ok {
		return l
	}
	d, _ := fl.Digest()
	dst := filepath.Join(b.blobDir, d.Algorithm+"-"+d.Hex)
	if _, err := os.Stat(dst); err != nil {
		if err := os.Link(fl.Path(), dst); err != nil && !errors.Is(err, os.ErrExist) {
			return l
		}
	}
	diffID, _ := fl.DiffID()
	size, _ := fl.Size()
	mt, _ := fl.MediaType()
	return snapshot.LayerFromFile(dst, d, diffID, size, mt)
}

// missReason says why a step was not in the cache, as precisely as the builder can:
// the inputs that differ from those last stored for the same state and instruction,
// else what made the state new (a step that ran again, a changed base image).
func (s *stage) missReason(ctx context.Context, k *stepKey) string {
	if s.b.req.NoCache {
		return "the cache is not used for this build (--no-cache)"
	}
	if idx, ok := s.b.cache.(InputIndex); ok {
		prev, err := idx.Inputs(ctx, k.slot)
		if err == nil {
			if d := describeInputChanges(prev, k.inputs); d != "" {
				return d
			}
			return "the cache entry for this step is gone (pruned or expired)"
		}
	}
	if s.parentNote != "" {
		return s.parentNote
	}
	return "no cache entry for this step"
}

// baseNote compares a pulled base image with the one the same FROM pulled last time,
// records the new one, and says what changed ("" when unchanged or unknown).
func (b *build) baseNote(ctx context.Context, ref string, platform v1.Platform, id v1.Hash) string {
	idx, ok := b.cache.(InputIndex)
	if !ok {
		return ""
	}
	slot := digestOf("kiln-cache-base-v1", ref, platform.String())
	now := []CacheInput{{Name: "base:" + ref, Digest: id.String()}}
	prev, err := idx.Inputs(ctx, slot)
	known := err == nil && len(prev) == 1
	if known && prev[0] == now[0] {
		return ""
	}
	if err := idx.PutInputs(ctx, slot, now); err != nil {
		b.emit(Debug{Message: fmt.Sprintf("Recording base image %s: %v", ref, err)})
	}
	if !known {
		return ""
	}
	return fmt.Sprintf("the base image %s changed (%s, was %s)", ref, shortHash(id.String()), shortHash(prev[0].Digest))
}
