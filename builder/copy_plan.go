package builder

import (
	"context"
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"

	"github.com/kiln-build/kiln/snapshot"
)

// COPY's fast path. A COPY or ADD whose files nobody reads from the stage's root
// afterwards does not create its regular files in the root: the copier plans them
// (copier.Request.Plan) and the layer is written from their sources, entry for entry
// what writing them and reading them back would give. "Nobody reads" is decided
// statically, per instruction: it is the last instruction of its stage that works on
// the root (only config instructions follow), and no later stage built by this build
// copies or mounts from this stage. The decision only saves time: the root is left
// marked as not holding the layer (stage.extracted), so anything that does need the
// root afterwards (a COPY --from the finished stage) extracts the layer into it first
// and sees exactly what the slow path would have left.

// copyPlan returns a new plan for the COPY or ADD o being executed when the fast path
// applies to it, and nil when its files must be written into the root.
func (s *stage) copyPlan(o copyOpts) *snapshot.Plan {
	switch {
	case !s.lastWork, s.b.req.SingleSnapshot, o.link:
		return nil
	case s.b.df.readLater(s.index, s.b.req):
		return nil
	}
	return snapshot.NewPlan()
}

// onlyConfig reports whether cmds change nothing but the image's config: none of them
// reads or writes the root.
func onlyConfig(cmds []instructions.Command) bool {
	for _, cmd := range cmds {
		switch cmd.(type) {
		case *instructions.EnvCommand, *instructions.LabelCommand, *instructions.MaintainerCommand,
			*instructions.ExposeCommand, *instructions.VolumeCommand, *instructions.UserCommand,
			*instructions.StopSignalCommand, *instructions.CmdCommand, *instructions.EntrypointCommand,
			*instructions.ShellCommand, *instructions.HealthCheckCommand, *instructions.OnbuildCommand,
			*instructions.ArgCommand:
		default:
			return false
		}
	}
	return true
}

// readLater reports whether a stage after stage i that this build builds may read
// stage i's root: COPY --from or RUN --mount from= naming it, or naming a stage
// through a variable that cannot be resolved before the build.
func (df *dockerfile) readLater(i int, req *Request) bool {
	lex := shell.NewLex(df.escape)
	env := shell.EnvsFromSlice(df.globalDefaults(req))
	names := func(ref string, j int) bool {
		if ref == "" {
			return false
		}
		if strings.Contains(ref, "$") {
			return true
		}
		expanded, _, err := lex.ProcessWord(ref, env)
		if err != nil {
			return true
		}
		k, ok := df.stageIndex(expanded, j)
		return ok && k == i
	}
	for j := i + 1; j < len(df.stages); j++ {
		if !df.build[j] {
			continue
		}
		for _, cmd := range df.stages[j].Commands {
			switch c := cmd.(type) {
			case *instructions.CopyCommand:
				if names(c.From, j) {
					return true
				}
			case *instructions.RunCommand:
				for _, m := range instructions.GetMounts(c) {
					if names(m.From, j) {
						return true
					}
				}
			case *instructions.OnbuildCommand:
				return true // its instruction is parsed only when it runs: assume the worst
			}
		}
	}
	return false
}

// writePlannedLayer writes a COPY's layer with its planned files taken from their
// sources. The root lacks those files, so it is marked as not holding the layer: a
// later reader of the root extracts it first (catchUp), and the record of the root's
// files is left alone, to be made again then.
func (s *stage) writePlannedLayer(ctx context.Context, touched []string, plan *snapshot.Plan, history string) error {
	before := s.extracted
	if err := s.writeLayer(ctx, &snapshot.Changes{Changed: touched}, history, snapshot.WithPlan(plan)); err != nil {
		return err
	}
	s.extracted = before
	s.b.emit(Debug{Message: fmt.Sprintf("%s %d file%s from their sources, not written into the root", plannedMessage, plan.Len(), plural(plan.Len()))})
	return nil
}

// plannedMessage starts the Debug event sent when a COPY took its fast path; tests
// look for it.
const plannedMessage = "Layer of planned files:"
