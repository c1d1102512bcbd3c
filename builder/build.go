package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/shell"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/isolation"
	"github.com/kiln-build/kiln/nettimeout"
)

// Option configures one Build call.
type Option func(*settings)

type settings struct {
	workspace Workspace
	events    func(Event)
	registry  Registry
	phases    *Phases
	cleanup   func(func() error)
}

// WithWorkspace sets where the build runs. Required.
func WithWorkspace(ws Workspace) Option { return func(s *settings) { s.workspace = ws } }

// WithEvents sets the function that receives progress events. It is called from the
// build's goroutine, in order, and must not block for long.
func WithEvents(fn func(Event)) Option { return func(s *settings) { s.events = fn } }

// WithDeferredCleanup hands the removal of the build's scratch files (stage roots and
// their overlays, downloads; never the layers of the image Build returns) to hand
// instead of removing them before Build returns. hand is called at most once, before
// Build returns; the caller must then call the function it got, once, from any
// goroutine, before it removes the state directory, and reports its error as a
// warning. kiln build runs it while it writes the outputs: a RUN that created
// thousands of files leaves as many to delete, which on ext4 takes tenths of a second.
func WithDeferredCleanup(hand func(cleanup func() error)) Option {
	return func(s *settings) { s.cleanup = hand }
}

// WithRegistry sets how base images are pulled.
func WithRegistry(r Registry) Option { return func(s *settings) { s.registry = r } }

// build is the state of one Build call.
type build struct {
	req  *Request
	ws   Workspace
	emit func(Event)
	// phases accumulates the build's time per phase.
	phases *Phases
	// limits are the request's resource limits under the workspace's caps.
	limits isolation.Limits
	df     *dockerfile
	// stageSteps counts the instructions announced so far per stage index.
	stageSteps map[int]int
	args       *buildArgs
	lex        *shell.Lex
	puller     *puller
	platform   platformWant // the build's target platform
	created    time.Time

	blobDir  string // layer blobs: pulled base layers and layers this build wrote
	rootsDir string // chroot isolation: one root per stage
	tmpDir   string // downloads, filesystems of images used by COPY --from
	// overlays mounts chroot stage roots on cached base trees; nil in place.
	overlays *overlays

	// cache is the workspace's step cache, nil when the build does not use one;
	// cacheSalt folds the settings that shape every layer into every key.
	cache     Cache
	cacheSalt string

	step, total int
	results     []*stageResult // by stage index; nil until built

	// mountCacheUsed says a RUN used a cache mount: the build trims the store after.
	mountCacheUsed atomic.Bool

	fsMu    sync.Mutex
	fsCache map[string]string // image reference -> extracted filesystem (COPY --from=image)

	hashes *hashMemo // digests of context files from earlier builds (hashmemo.go)
}

// stageResult is a finished stage.
type stageResult struct {
	state *imageState
	id    v1.Hash
	root  string // the stage's root while it still holds the stage (chroot), else ""
	stage *stage // the stage whose root root is: it may still owe cached layers
	fresh bool   // some step of the stage ran rather than came from the cache
	// asIs is the stage's pulled base as served when the stage changed nothing of it:
	// the build's image is then the base itself.
	asIs *rawImage
}

// Build runs req and returns the built image. It is the single entry point of the
// engine: every front door calls it. The returned image's layers are files under the
// workspace's state directory; write the outputs before removing it.
func Build(ctx context.Context, req *Request, opts ...Option) (*Result, error) {
	s := settings{events: func(Event) {}}
	for _, o := range opts {
		o(&s)
	}
	ws := s.workspace
	if ws.StateDir == "" {
		return nil, errors.New("builder: the workspace needs a state directory")
	}
	if ws.Isolation != isolation.Chroot && ws.Isolation != isolation.InPlace {
		return nil, fmt.Errorf("builder: unknown isolation %v", ws.Isolation)
	}
	if req.Context == nil {
		return nil, errors.New("builder: the request has no build context")
	}
	obs := observerOf(ws.Observer)
	obs.BuildStarted()
	start := time.Now()
	s.phases = req.Phases
	if s.phases == nil {
		s.phases = NewPhases()
	}
	s.events = observeEvents(obs, s.events)
	res, err := buildTimed(ctx, req, s)
	s.events(s.phases.Times()) // the breakdown, once, last
	obs.BuildFinished(Classify(err), time.Since(start))
	return res, err
}

// buildTimed is Build under the workspace's build timeout.
func buildTimed(ctx context.Context, req *Request, s settings) (*Result, error) {
	ws := s.workspace
	limits, err := effectiveLimits(req.Limits, ws)
	if err != nil {
		return nil, &UserError{Err: err}
	}
	if ws.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, ws.Timeout, &TimeoutError{Timeout: ws.Timeout})
		defer cancel()
		res, err := runBuild(ctx, req, s, limits)
		var te *TimeoutError
		if err != nil && errors.As(context.Cause(ctx), &te) {
			return nil, te
		}
		return res, err
	}
	return runBuild(ctx, req, s, limits)
}

// runBuild is Build once the settings are read.
func runBuild(ctx context.Context, req *Request, s settings, limits isolation.Limits) (*Result, error) {
	ws := s.workspace
	platform, err := parsePlatform(req.Platform)
	if err != nil {
		return nil, &UserError{Err: err}
	}
	df, err := parseDockerfile(req, ws.InputLimits)
	if err != nil {
		return nil, &UserError{Err: err}
	}
	df.addLabels(req.Labels)

	b := &build{
		req:      req,
		ws:       ws,
		limits:   limits,
		emit:     s.events,
		phases:   s.phases,
		df:       df,
		args:     newBuildArgs(req.BuildArgs),
		lex:      shell.NewLex(df.escape),
		platform: platformWant{Platform: platform, explicit: req.Platform != ""},
		created:  time.Now().UTC(),
		results:  make([]*stageResult, len(df.stages)),
		fsCache:  map[string]string{},
		hashes:   newHashMemo(ws.StateDir),
	}
	b.args.setPlatforms(hostPlatform(), platform)
	if req.Reproducible {
		b.created = time.Unix(0, 0).UTC()
	}
	for _, w := range df.warnings {
		b.emit(Warning{Message: w})
	}
	release, err := claimRoot(ctx, ws, b.emit)
	if err != nil {
		return nil, err
	}
	defer release()
	defer b.keepBudget(ctx, ws.Budget.Begin())
	b.blobDir = filepath.Join(ws.StateDir, "blobs")
	spreadSubdirs(ws.StateDir) // each build's scratch tree away from the last one's
	b.tmpDir, err = os.MkdirTemp(ws.StateDir, "build-")
	if err != nil {
		return nil, fmt.Errorf("creating build directory: %w", err)
	}
	defer func() {
		if s.cleanup != nil {
			s.cleanup(b.removeScratch)
		} else if err := b.removeScratch(); err != nil {
			b.emit(Warning{Message: "Removing the build's scratch files: " + err.Error()})
		}
	}()
	defer b.trimMountCache()
	b.rootsDir = filepath.Join(b.tmpDir, "roots")
	if ws.Isolation == isolation.Chroot {
		cacheDir := ws.BaseCache
		if cacheDir == "" {
			cacheDir = ws.StateDir
		}
		b.overlays = newOverlays(filepath.Join(cacheDir, rootfsDirName), b.tmpDir)
	}
	for _, d := range []string{b.blobDir, b.rootsDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("creating %s: %w", d, err)
		}
	}
	pullOpts, err := b.pullerOptions()
	if err != nil {
		return nil, err
	}
	b.puller = newPuller(s.registry, platform, b.blobDir, pullOpts...)
	b.useCache(withSharedCache(ws.Cache, ws.SharedCache, ws.Observer))
	ctx = WithCacheScope(ctx) // the shared cache's pushes of this build, flushed below
	defer b.flushShared(ctx)
	return b.run(ctx)
}

// fetchNet are the limits of what the build fetches for its Dockerfile (ADD URLs and
// git repositories): the request's network limits, guarded by the workspace's fetch
// policy.
func (b *build) fetchNet() nettimeout.Limits {
	return b.puller.reg.Net.Guarded(b.ws.Fetch)
}

// removeScratch unmounts the stage roots and then removes the build's scratch
// directory. A root that cannot be unmounted keeps the directory: removing through a
// mount is never done. The error is the warning to show.
func (b *build) removeScratch() error {
	if err := b.overlays.release(); err != nil {
		return fmt.Errorf("leaving %s in place: %w", b.tmpDir, err)
	}
	os.RemoveAll(b.tmpDir)
	return nil
}

func (b *build) run(ctx context.Context) (*Result, error) {
	if err := b.declareGlobalArgs(); err != nil {
		return nil, err
	}
	b.total = b.df.totalSteps()
	for i := range b.df.stages {
		if !b.df.build[i] {
			continue
		}
		res, err := b.buildStage(ctx, i)
		if err != nil {
			return nil, err
		}
		b.results[i] = res
		if i == b.df.target {
			break
		}
	}
	if unused := b.args.unused(); len(unused) > 0 {
		b.emit(Warning{Message: fmt.Sprintf("One or more build-args [%s] were not consumed", strings.Join(unused, " "))})
	}
	final := b.results[b.df.target]
	var img v1.Image
	var err error
	if final.asIs != nil {
		img, err = final.asIs.image(final.state.layers)
	} else {
		img, err = final.state.image(b.created)
	}
	if err != nil {
		return nil, err
	}
	id, err := img.ConfigName()
	if err != nil {
		return nil, err
	}
	return &Result{Image: img, ID: id}, nil
}

// declareGlobalArgs evaluates the ARGs before the first FROM.
func (b *build) declareGlobalArgs() error {
	for _, a := range b.df.metaArgs {
		for _, kv := range a.Args {
			var def *string
			if kv.Value != nil {
				v, _, err := b.lex.ProcessWord(*kv.Value, shellEnv(b.args.globalEnv()))
				if err != nil {
					return b.instructionError(a.Location(), a.String(), err)
				}
				def = &v
			}
			b.args.declareGlobal(kv.Key, def)
		}
	}
	return nil
}

// changesFiles reports whether an instruction, as written, is one BuildKit numbers
// ("[2/5] RUN …"): FROM and the instructions that change the filesystem. The others
// only change the image's config.
func changesFiles(text string) bool {
	kw, _, _ := strings.Cut(strings.TrimSpace(text), " ")
	switch strings.ToUpper(kw) {
	case "FROM", "RUN", "COPY", "ADD", "WORKDIR":
		return true
	}
	return false
}

// nextStep advances the step counter and announces the instruction.
func (b *build) nextStep(stage int, line int, text string) int {
	b.step++
	name := b.df.stages[stage].Name
	if name == "" {
		name = fmt.Sprint(stage)
	}
	ev := StepStarted{
		Step: b.step, Total: b.total, Stage: name, Line: line, Text: text,
		StageIndex: stage, Stages: len(b.df.stages),
	}
	if changesFiles(text) {
		if b.stageSteps == nil {
			b.stageSteps = map[int]int{}
		}
		b.stageSteps[stage]++
		ev.StageStep, ev.StageTotal = b.stageSteps[stage], b.df.fileSteps(stage)
	}
	b.emit(ev)
	return b.step
}
