package builder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

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
	s.state = base
	// The stage's image is created now: its ID after every step is then the ID the
	// image gets if the build ends there (Docker prints both and they agree).
	s.state.config.Created = v1.Time{Time: b.created}
	if err := s.prepareRoot(ctx); err != nil {
		return fail(err)
	}
	// A stage used as a base no longer needs its own root once this one is made.
	triggers := s.state.config.Config.OnBuild
	s.state.config.Config.OnBuild = nil
	if len(triggers) > 0 {
		b.emit(Info{Message: fmt.Sprintf("# Executing %d build trigger%s", len(triggers), plural(len(triggers)))})
		for _, t := range triggers {
			if err := s.trigger(ctx, t); err != nil {
				return fail(err)
			}
		}
	}
	b.emit(StepDone{Step: step, ImageID: s.state.id()})

	for _, cmd := range def.Commands {
		loc, text := commandSource(cmd)
		s.step = b.nextStep(i, lineOf(loc), text)
		if err := s.dispatch(ctx, cmd); err != nil {
			return nil, b.instructionError(loc, text, err)
		}
		b.emit(StepDone{Step: s.step, ImageID: s.state.id()})
	}
	if b.req.SingleSnapshot {
		if err := s.snapshot(ctx, "/bin/sh -c #(nop) single snapshot", nil); err != nil {
			return nil, b.instructionError(def.Location, def.SourceCode, err)
		}
	}
	res := &stageResult{state: s.state, id: s.state.id()}
	if b.ws.Isolation == isolation.Chroot {
		res.root = s.root
	}
	return res, nil
}

// resolveBase returns the starting state of a stage: scratch, an earlier stage, or a
// pulled image.
func (b *build) resolveBase(ctx context.Context, def *instructions.Stage) (*imageState, error) {
	env := shellEnv(b.args.globalEnv())
	name, _, err := b.lex.ProcessWord(def.BaseName, env)
	if err != nil {
		return nil, err
	}
	if name == "" {
		return nil, fmt.Errorf("base name (%s) should not be blank", def.BaseName)
	}
	platform := b.platform
	if def.Platform != "" {
		p, _, err := b.lex.ProcessWord(def.Platform, env)
		if err != nil {
			return nil, err
		}
		if platform, err = parsePlatform(p); err != nil {
			return nil, err
		}
	}
	if j, ok := b.df.stageIndex(name, def2index(b.df, def)); ok && b.df.stages[j].Name == strings.ToLower(name) {
		prev := b.results[j]
		if prev == nil {
			return nil, fmt.Errorf("stage %s was not built", name)
		}
		return prev.state.clone(), nil
	}
	if strings.EqualFold(name, "scratch") {
		return scratchState(platform), nil
	}
	b.emit(Info{Message: fmt.Sprintf("Retrieving image %s", name)})
	st, _, err := b.puller.pull(ctx, name, platform)
	if err != nil {
		return nil, err
	}
	return st, nil
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

// prepareRoot gives the stage a root holding its base's filesystem and records it.
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
		s.runner = isolation.NewChroot(s.root, isolation.WithHostname(s.hostname), isolation.WithScratchDir(b.tmpDir))
	case isolation.InPlace:
		s.root = "/"
		if err := snapshot.Reset(ctx, s.root, b.ws.Ignore); err != nil {
			return fmt.Errorf("resetting the root filesystem: %w", err)
		}
		s.runner = isolation.NewInPlace()
	}
	for _, l := range s.state.layers {
		if err := extractLayer(ctx, s.root, l, b.ws.Ignore); err != nil {
			return err
		}
	}
	files, err := snapshot.Scan(ctx, s.root, snapshot.WithScanIgnore(b.ws.Ignore), snapshot.WithMode(b.req.SnapshotMode))
	if err != nil {
		return fmt.Errorf("recording the root filesystem: %w", err)
	}
	s.files = files
	return nil
}

// extractLayer applies one layer to a root.
func extractLayer(ctx context.Context, root string, l v1.Layer, ig *snapshot.Ignore) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := snapshot.Extract(ctx, root, "/", rc, snapshot.WithIgnore(ig)); err != nil {
		d, _ := l.Digest()
		return fmt.Errorf("extracting layer %s: %w", d, err)
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

func (b *build) instructionError(loc []parser.Range, text string, err error) error {
	if ie, ok := err.(*InstructionError); ok {
		return ie
	}
	return &InstructionError{File: b.df.name, Line: lineOf(loc), Instruction: text, Err: err}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// shellEnv adapts a KEY=VALUE list to the lexer.
func shellEnv(env []string) shell.EnvGetter { return shell.EnvsFromSlice(env) }
