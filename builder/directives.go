package builder

import (
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// BuiltinFrontend reports whether ref, a `# syntax=` value or a BUILDKIT_SYNTAX build
// arg, names Docker's own Dockerfile frontend (docker/dockerfile or
// docker/dockerfile-upstream, any tag or digest, with or without docker.io/): kiln
// builds such Dockerfiles with its own Dockerfile support. Every door asks this one
// function.
func BuiltinFrontend(ref string) bool {
	r := strings.TrimSpace(ref)
	for _, p := range []string{"docker.io/", "index.docker.io/", "registry-1.docker.io/"} {
		r = strings.TrimPrefix(r, p)
	}
	r, ok := strings.CutPrefix(r, "docker/")
	if !ok {
		return false
	}
	repo, _, _ := strings.Cut(r, "@")
	repo, _, _ = strings.Cut(repo, ":")
	return repo == "dockerfile" || repo == "dockerfile-upstream"
}

// FrontendError is the error for a Dockerfile that asks for a frontend image other
// than Docker's own: kiln runs no frontend images.
func FrontendError(ref string) error {
	return fmt.Errorf("the Dockerfile asks for the external frontend %q (a # syntax= line or BUILDKIT_SYNTAX): "+
		"kiln builds with its own Dockerfile support and runs no frontend images; remove the # syntax= line "+
		"or name docker/dockerfile", ref)
}

// checkSyntax decides what to do with the frontend the build asks for: the
// Dockerfile's `# syntax=` line, else the BUILDKIT_SYNTAX build arg, else the one the
// front door was asked for (Request.Syntax). Docker's own frontend yields a warning
// saying kiln stands in for it; any other is an error.
func checkSyntax(name string, req *Request) (string, error) {
	ref, _, loc, ok := parser.DetectSyntax(req.Dockerfile)
	where := name
	if ok && len(loc) > 0 {
		where = fmt.Sprintf("%s:%d", name, loc[0].Start.Line)
	}
	if !ok {
		if v := req.BuildArgs["BUILDKIT_SYNTAX"]; v != nil && *v != "" {
			ref, ok, where = *v, true, "BUILDKIT_SYNTAX"
		} else if req.Syntax != "" {
			ref, ok, where = req.Syntax, true, "the frontend requested"
		}
	}
	if !ok {
		return "", nil
	}
	if !BuiltinFrontend(ref) {
		return "", fmt.Errorf("%s: %w", where, FrontendError(ref))
	}
	return fmt.Sprintf("# syntax=%s: kiln builds this Dockerfile with its own Dockerfile support (no frontend image is run)", ref), nil
}

// lintChecks collects BuildKit's build-check warnings for one Dockerfile.
type lintChecks struct {
	linter   *linter.Linter
	warnings []string
	emitted  int // warnings[:emitted] were given to the build
}

// newLintChecks configures BuildKit's build checks from the `# check=` directive
// (skip=Rule,Rule|all; error=true; experimental=...) or, as BuildKit reads it, the
// BUILDKIT_DOCKERFILE_CHECK build arg, which takes precedence.
func newLintChecks(name string, req *Request) (*lintChecks, error) {
	opt, _, loc, _ := parser.ParseDirective("check", req.Dockerfile)
	where := name
	if len(loc) > 0 {
		where = fmt.Sprintf("%s:%d", name, loc[0].Start.Line)
	}
	if v := req.BuildArgs["BUILDKIT_DOCKERFILE_CHECK"]; v != nil {
		opt, where = *v, "BUILDKIT_DOCKERFILE_CHECK"
	}
	cfg, err := linter.ParseLintOptions(opt)
	if err != nil {
		return nil, fmt.Errorf("%s: # check: %w", where, err)
	}
	lc := &lintChecks{}
	cfg.Warn = func(rule, _, _, msg string, location []parser.Range) {
		line := 0
		if len(location) > 0 {
			line = location[0].Start.Line
		}
		lc.warnings = append(lc.warnings, linter.LintFormatShort(rule, msg, line))
	}
	lc.linter = linter.New(cfg)
	return lc, nil
}

// run reports a rule violation at the lines of location.
func (lc *lintChecks) run(rule linter.LinterRuleI, location []parser.Range, msg string) {
	lc.linter.Run(rule, location, msg)
}

// err fails the build when `error=true` is set and a check fired; the error lists the
// warnings, which the build never gets to emit.
func (lc *lintChecks) err(name string) error {
	if err := lc.linter.Error(); err != nil {
		return fmt.Errorf("%s: %w (# check=error=true):\n%s", name, err, strings.Join(lc.warnings, "\n"))
	}
	return nil
}
