package builder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/isolation"
	"github.com/kiln-build/kiln/snapshot"
)

// stage is a stage being built: its image state, its root and the record of the
// root's files that the next snapshot is compared with.
type stage struct {
	b      *build
	index  int
	state  *imageState
	root   string
	runner isolation.Runner
	files  *snapshot.Index
	cmdSet bool // CMD was set in this stage (ENTRYPOINT then keeps it)
	// hostname is what RUN sees as its host name and $HOSTNAME (chroot isolation).
	hostname string
	step     int

	// The root is filled lazily (see materialise): steps taken from the cache only
	// append layers to the state, and the root catches up when a step must run.
	ready     bool // the root was set up (reset, in place) for this stage
	extracted int  // how many of state.layers the root holds
	// baseLayers is how many of state.layers come from a pulled image (the stage's
	// base, or its base stage's): chroot roots mount them from the extracted-base
	// cache (see mountBase) instead of extracting them.
	baseLayers int
	overlay    bool // the root is an overlay on a cached base tree

	firstHistory int    // history entries inherited from the base
	parentNote   string // why the current state may be new, for cache-miss reasons
	fresh        bool   // a step of this stage ran rather than came from the cache
	// lastWork is set while the stage's last instruction that works on the root runs
	// (only config instructions follow it): COPY's fast path (copy_plan.go).
	lastWork bool
}

func (b *build) buildStage(ctx context.Context, i int) (*stageResult, error) {
	def := &b.df.stages[i]
	line := lineOf(def.Location)
	step := b.nextStep(i, line, def.SourceCode)
	b.args.resetStage()

	s := &stage{b: b, index: i, step: step}
	fail := func(err error) (*stageResult, error) {
		return nil, b.instructionError(def.Location, def.SourceCode, err)
	}
	base, err := b.resolveBase(ctx, def)
	if err != nil {
		return fail(err)
	}
	limits := b.ws.InputLimits.effective()
	if err := limits.checkLayers(len(base.state.layers)); err != nil {
		return fail(err)
	}
	s.state = base.state
	s.firstHistory = len(base.state.config.History)
	s.parentNote = base.note
	s.baseLayers = base.pulledLayers
	// The stage's image is created now: its ID after every step is then the ID the
	// image gets if the build ends there (Docker prints both and they agree). Steps
	// taken from the cache move it back to when they were first built (see stamp).
	s.state.config.Created = v1.Time{Time: b.created}
	if err := s.prepareRoot(ctx); err != nil {
		return fail(err)
	}
	// A stage used as a base no longer needs its own root once this one is made.
	triggers := s.state.config.Config.OnBuild
	s.state.config.Config.OnBuild = nil
	if len(triggers) > 0 {
		b.emit(Info{Message: fmt.Sprintf("# Executing %d build trigger%s", len(triggers), plural(len(triggers)))})
		// Triggers always run: they are not steps of their own to key and report.
		if err := s.materialise(ctx); err != nil {
			return fail(err)
		}
		for _, t := range triggers {
			if err := s.trigger(ctx, t); err != nil {
				return fail(err)
			}
		}
		s.ran("the base image's ONBUILD triggers ran")
	}
	// Docker prints the base's own ID after FROM (none for scratch): the same on every
	// build of the same base. Triggers made a new image, whose ID it prints instead.
	fromID := base.id
	if len(triggers) > 0 {
		fromID = s.state.id()
	}
	b.emit(StepDone{Step: step, ImageID: fromID})

	for ci, cmd := range def.Commands {
		loc, text := commandSource(cmd)
		s.step = b.nextStep(i, lineOf(loc), text)
		s.lastWork = onlyConfig(def.Commands[ci+1:])
		if err := s.execute(ctx, cmd, text); err != nil {
			return nil, b.instructionError(loc, text, err)
		}
		if err := limits.checkLayers(len(s.state.layers)); err != nil {
			return nil, b.instructionError(loc, text, err)
		}
		s.stamp()
		b.emit(StepDone{Step: s.step, ImageID: s.state.id()})
	}
	if b.req.SingleSnapshot {
		if err := s.materialise(ctx); err != nil {
			return nil, b.instructionError(def.Location, def.SourceCode, err)
		}
		if err := s.snapshot(ctx, "/bin/sh -c #(nop) single snapshot", nil); err != nil {
			return nil, b.instructionError(def.Location, def.SourceCode, err)
		}
		if err := limits.checkLayers(len(s.state.layers)); err != nil {
			return nil, b.instructionError(def.Location, def.SourceCode, err)
		}
	}
	res := &stageResult{state: s.state, id: s.state.id(), fresh: s.fresh}
	if len(def.Commands) == 0 && len(triggers) == 0 && !b.req.SingleSnapshot && base.raw != nil {
		// FROM alone: the stage is its base, as with Docker (same image, same ID).
		res.asIs, res.id = base.raw, base.id
	}
	if b.ws.Isolation == isolation.Chroot {
		res.root, res.stage = s.root, s
	}
	return res, nil
}

// stamp sets the image's creation time to that of its newest step in this stage: the
// build's start for steps that ran, the first build's for steps from the cache. So a
// rebuild taken wholly from the cache has the ID of the build that filled it, as with
// Docker, whose cached steps are the very images it built then.
func (s *stage) stamp() {
	latest := time.Time{}
	for _, h := range s.state.config.History[s.firstHistory:] {
		if h.Created.After(latest) {
			latest = h.Created.Time
		}
	}
	if latest.IsZero() {
		latest = s.b.created
	}
	s.state.config.Created = v1.Time{Time: latest}
}

// resolvedBase is the starting point of a stage.
type resolvedBase struct {
	state *imageState
	// note says, for cache-miss reasons, what changed about the base since the last
	// build ("" when nothing is known to have).
	note string
	// pulledLayers is how many of state's layers, first to last, come from a pulled
	// image rather than from steps of this build.
	pulledLayers int
	// id is the base's image ID as Docker prints it after FROM: a pulled image's config
	// digest, an earlier stage's final ID, zero for scratch.
	id v1.Hash
	// raw is a pulled base as served, or an earlier stage that is one unchanged (nil
	// otherwise).
	raw *rawImage
}

// resolveBase returns the starting state of a stage: scratch, an earlier stage, or a
// pulled image.
func (b *build) resolveBase(ctx context.Context, def *instructions.Stage) (resolvedBase, error) {
	env := shellEnv(b.args.globalEnv())
	name, _, err := b.lex.ProcessWord(def.BaseName, env)
	if err != nil {
		return resolvedBase{}, err
	}
	if name == "" {
		return resolvedBase{}, fmt.Errorf("base name (%s) should not be blank", def.BaseName)
	}
	platform, err := b.stagePlatform(def, env)
	if err != nil {
		return resolvedBase{}, err
	}
	if j, ok := b.df.stageIndex(name, def2index(b.df, def)); ok && b.df.stages[j].Name == strings.ToLower(name) {
		prev := b.results[j]
		if prev == nil {
			return resolvedBase{}, fmt.Errorf("stage %s was not built", name)
		}
		base := resolvedBase{state: prev.state.clone(), id: prev.id, raw: prev.asIs}
		if prev.fresh {
			base.note = fmt.Sprintf("the base stage %s ran steps again", name)
		}
		if prev.stage != nil {
			base.pulledLayers = prev.stage.baseLayers
		}
		return base, nil
	}
	if strings.EqualFold(name, "scratch") {
		return resolvedBase{state: scratchState(platform.Platform)}, nil
	}
	b.emit(Info{Message: fmt.Sprintf("Retrieving image %s", name)})
	pullStart := time.Now()
	got, err := b.puller.pullImage(ctx, name, platform)
	b.phases.Since(PhaseBase, pullStart)
	if err != nil {
		return resolvedBase{}, err
	}
	st := got.state
	b.df.lint.basePlatform(name, platform.Platform, st.config, def.Location)
	if err := b.flushLint(); err != nil {
		return resolvedBase{}, err
	}
	note := b.baseNote(ctx, name, platform.Platform, st.id())
	return resolvedBase{state: st, note: note, pulledLayers: len(st.layers), id: got.id, raw: got.raw}, nil
}

// stagePlatform is the platform a stage's base is pulled for: FROM --platform expanded
// with env (the global args, BuildKit's platform args among them), or the build's. An
// expression that expands to nothing is an error, as with BuildKit and Docker.
func (b *build) stagePlatform(def *instructions.Stage, env shell.EnvGetter) (platformWant, error) {
	if def.Platform == "" {
		return b.platform, nil
	}
	s, _, err := b.lex.ProcessWord(def.Platform, env)
	if err != nil {
		return platformWant{}, err
	}
	if s == "" {
		return platformWant{}, fmt.Errorf("empty platform value from expression %s", def.Platform)
	}
	p, err := parsePlatform(s)
	if err != nil {
		return platformWant{}, err
	}
	return platformWant{Platform: p, explicit: true}, nil
}

// def2index is the index of a stage definition: stages may only refer to earlier ones.
func def2index(df *dockerfile, def *instructions.Stage) int {
	for i := range df.stages {
		if &df.stages[i] == def {
			return i
		}
	}
	return len(df.stages)
}

// prepareRoot picks the stage's root and runner. The root is filled by materialise,
// when a step first needs it.
func (s *stage) prepareRoot(ctx context.Context) error {
	b := s.b
	switch b.ws.Isolation {
	case isolation.Chroot:
		s.root = filepath.Join(b.rootsDir, fmt.Sprint(s.index))
		if err := os.MkdirAll(s.root, 0o755); err != nil {
			return err
		}
		// Docker names a RUN container's host after the container's short ID.
		s.hostname = randomID()[:12]
		opts := []isolation.ChrootOption{isolation.WithHostname(s.hostname), isolation.WithScratchDir(b.tmpDir)}
		if b.ws.SeccompUnconfined {
			opts = append(opts, isolation.WithSeccompUnconfined())
		}
		if b.ws.Cgroups != nil {
			opts = append(opts, isolation.WithCgroups(b.ws.Cgroups))
		}
		s.runner = isolation.NewChroot(s.root, opts...)
	case isolation.InPlace:
		s.root = b.ws.rootDir()
		var opts []isolation.InPlaceOption
		if b.ws.InPlaceNamespaces {
			opts = append(opts, isolation.WithNamespaces(b.ws.SeccompUnconfined), isolation.WithHidden(b.ws.Hidden...))
		}
		s.runner = isolation.NewInPlace(opts...)
	}
	return ctx.Err()
}

// materialise makes the root hold the stage's image as it stands and records it, before
// a step that works on the root runs. Layers taken from the cache since the last step
// that ran are extracted now, so a build taken wholly from the cache extracts nothing,
// not even its base.
func (s *stage) materialise(ctx context.Context) error {
	extracted, err := s.catchUp(ctx)
	if err != nil {
		return err
	}
	if s.files != nil && !extracted {
		return nil
	}
	opts := []snapshot.ScanOption{snapshot.WithScanIgnore(s.b.ws.Ignore), snapshot.WithMode(s.b.req.SnapshotMode)}
	if s.overlay {
		opts = append(opts, snapshot.WithoutBirthTime())
	}
	scanStart := time.Now()
	files, err := snapshot.Scan(ctx, s.root, opts...)
	s.b.phases.Since(PhaseSnapshot, scanStart)
	if err != nil {
		return fmt.Errorf("recording the root filesystem: %w", err)
	}
	s.files = files
	return nil
}

// catchUp extracts the layers the root does not hold yet, resetting an in-place root
// first, and reports whether it extracted any. COPY --from uses it on a finished
// stage's root, which needs no record.
func (s *stage) catchUp(ctx context.Context) (bool, error) {
	b := s.b
	defer b.phases.Since(PhaseBase, time.Now())
	if !s.ready {
		if b.ws.InPlace() {
			if err := snapshot.Reset(ctx, s.root, b.ws.Ignore); err != nil {
				return false, fmt.Errorf("resetting the root filesystem: %w", err)
			}
		} else if _, err := s.mountBase(ctx); err != nil {
			return false, err
		}
		s.ready = true
	}
	pending := s.state.layers[s.extracted:]
	if len(pending) == 0 {
		return false, nil
	}
	b.emit(Debug{Message: fmt.Sprintf("%s %d layer%s into the root of stage %d", extractingMessage, len(pending), plural(len(pending)), s.index)})
	for _, l := range pending {
		if err := extractLayer(ctx, s.root, l, b.ws.Ignore, b.emit); err != nil {
			return false, err
		}
		s.extracted++
	}
	return true, nil
}

// extractingMessage starts the Debug event sent when a root is filled; tests look for it.
const extractingMessage = "Extracting"

// extractLayer applies one layer to a root. Device nodes the kernel refuses to
// create (rootless kiln, an unprivileged container) are skipped with one Warning per
// layer through emit (nil: none).
func extractLayer(ctx context.Context, root string, l v1.Layer, ig *snapshot.Ignore, emit func(Event)) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	var skipped []string
	err = snapshot.Extract(ctx, root, "/", rc, snapshot.WithIgnore(ig),
		snapshot.WithSkippedNode(func(p string) { skipped = append(skipped, p) }))
	d, _ := l.Digest()
	if err != nil {
		return fmt.Errorf("extracting layer %s: %w", d, err)
	}
	if len(skipped) > 0 && emit != nil {
		emit(Warning{Message: fmt.Sprintf("Layer %s: skipped %d device node%s (%s): creating device nodes is not permitted here (rootless kiln or an unprivileged container)",
			d, len(skipped), plural(len(skipped)), strings.Join(skipped, ", "))})
	}
	return nil
}

// trigger runs one ONBUILD trigger inherited from the base image.
func (s *stage) trigger(ctx context.Context, expr string) error {
	res, err := parser.Parse(strings.NewReader(expr))
	if err != nil {
		return fmt.Errorf("parsing ONBUILD trigger %q: %w", expr, err)
	}
	for _, n := range res.AST.Children {
		cmd, err := instructions.ParseCommand(n)
		if err != nil {
			return fmt.Errorf("parsing ONBUILD trigger %q: %w", expr, err)
		}
		if err := s.dispatch(ctx, cmd); err != nil {
			return fmt.Errorf("ONBUILD trigger %q: %w", expr, err)
		}
	}
	return nil
}

// commandSource returns where a command is in the Dockerfile and its text.
func commandSource(cmd instructions.Command) ([]parser.Range, string) {
	text := ""
	if st, ok := cmd.(fmt.Stringer); ok {
		text = st.String()
	}
	return cmd.Location(), text
}

func lineOf(loc []parser.Range) int {
	if len(loc) == 0 {
		return 0
	}
	return loc[0].Start.Line
}

// endLineOf is the last line of a multi-line location, 0 for a one-line one.
func endLineOf(loc []parser.Range) int {
	if len(loc) == 0 || loc[len(loc)-1].End.Line <= loc[0].Start.Line {
		return 0
	}
	return loc[len(loc)-1].End.Line
}

func (b *build) instructionError(loc []parser.Range, text string, err error) error {
	if ie, ok := err.(*InstructionError); ok {
		return ie
	}
	return &InstructionError{File: b.df.name, Line: lineOf(loc), EndLine: endLineOf(loc), Instruction: text, Err: err}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// shellEnv adapts a KEY=VALUE list to the lexer.
func shellEnv(env []string) shell.EnvGetter { return shell.EnvsFromSlice(env) }
