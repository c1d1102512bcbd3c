package builder

import (
	"errors"
	"fmt"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Limits bound what a build's client controls: the Dockerfile, the image it makes, and
// the archives ADD extracts. They live in the Workspace, so every door (kiln build,
// /build, the BuildKit door) enforces the same ones; a zero field takes its Default,
// a negative one is unlimited. docs/security.md, "Limits on client input", lists them.
type InputLimits struct {
	// MaxDockerfileBytes is the largest Dockerfile a build parses.
	MaxDockerfileBytes int64
	// MaxInstructions is the most instructions a Dockerfile may hold, all stages counted.
	MaxInstructions int
	// MaxLayers is the most layers the image a stage makes may have, its base's counted.
	// dockerd refuses a 126th ("max depth exceeded"), so an image past 125 could not
	// be run by Docker anyway.
	MaxLayers int
	// MaxArchiveBytes is the most an archive ADD extracts may expand to, and
	// MaxArchiveRatio how many times its compressed size (see compression.Limits):
	// together they stop a zip bomb before it fills the disk.
	MaxArchiveBytes int64
	MaxArchiveRatio int64
}

// The limits a zero Limits field means.
const (
	DefaultMaxDockerfileBytes = 1 << 20
	DefaultMaxInstructions    = 10_000
	DefaultMaxLayers          = 125
	DefaultMaxArchiveBytes    = 32 << 30
	DefaultMaxArchiveRatio    = 100
)

// ErrLimit marks a build stopped by one of its Limits. A front door maps it to
// "request too large" / a client error rather than to a server error.
var ErrLimit = errors.New("build limit exceeded")

// orDefault is v, def when v is 0, and 0 (unlimited) when v is negative.
func orDefault[T int | int64](v, def T) T {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// effective returns l with its defaults filled in; 0 then means unlimited.
func (l InputLimits) effective() InputLimits {
	return InputLimits{
		MaxDockerfileBytes: orDefault(l.MaxDockerfileBytes, DefaultMaxDockerfileBytes),
		MaxInstructions:    orDefault(l.MaxInstructions, DefaultMaxInstructions),
		MaxLayers:          orDefault(l.MaxLayers, DefaultMaxLayers),
		MaxArchiveBytes:    orDefault(l.MaxArchiveBytes, DefaultMaxArchiveBytes),
		MaxArchiveRatio:    orDefault(l.MaxArchiveRatio, DefaultMaxArchiveRatio),
	}
}

// checkDockerfileSize refuses a Dockerfile over the size limit before it is parsed.
func (l InputLimits) checkDockerfileSize(name string, df []byte) error {
	if m := l.MaxDockerfileBytes; m > 0 && int64(len(df)) > m {
		return fmt.Errorf("%w: %s is %d bytes, more than the %d allowed (--max-dockerfile-size)", ErrLimit, name, len(df), m)
	}
	return nil
}

// checkInstructions refuses a parsed Dockerfile with too many instructions, naming the
// line of the first one past the limit.
func (l InputLimits) checkInstructions(name string, ast *parser.Node) error {
	m := l.MaxInstructions
	if m <= 0 || ast == nil || len(ast.Children) <= m {
		return nil
	}
	return &InstructionError{File: name, Line: ast.Children[m].StartLine,
		Err: fmt.Errorf("%w: more than %d instructions (--max-instructions)", ErrLimit, m)}
}

// checkLayers refuses an image state with more layers than the limit.
func (l InputLimits) checkLayers(n int) error {
	if m := l.MaxLayers; m > 0 && n > m {
		return fmt.Errorf("%w: max depth exceeded: the image would have %d layers, more than the %d allowed (--max-layers)", ErrLimit, n, m)
	}
	return nil
}
