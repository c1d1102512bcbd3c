package builder

import (
	"path/filepath"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"sort"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/buildkit/util/suggest"
	"github.com/moby/patternmatcher"
)

// The build checks that need the stage's state as the build reaches an instruction:
// UndefinedVar (the base image's Env counts), ExposeProtoCasing and
// ExposeInvalidFormat (on the expanded ports), CopyIgnoredFile (on the expanded
// sources) and InvalidBaseImagePlatform (on the pulled base). BuildKit decides them
// while it converts the Dockerfile, before any step runs; kiln, which learns a base
// image's config when it reaches the stage, reports them as it goes, and with
// `error=true` fails at the first instruction that violates one.

// nonEnvArgs are the build args BuildKit never puts in a stage's environment, so never
// reports as undefined.
var nonEnvArgs = map[string]bool{"BUILDKIT_SBOM_SCAN_CONTEXT": true, "BUILDKIT_SBOM_SCAN_STAGE": true}

// undefinedVars is UndefinedVar for one expanded word: each variable the word uses
// that neither the stage's environment (the base image's Env, ENV, ARG values) nor an
// ARG of the stage declares, with the closest defined name as a suggestion.
func (s *stage) undefinedVars(cmd instructions.Command, unmatched map[string]struct{}, env shell.EnvGetter, declared map[string]bool) {
	var names []string
	for name := range unmatched {
		if !declared[name] && !nonEnvArgs[name] {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		match, _ := suggest.Search(name, env.Keys(), true)
		s.b.df.lint.run(&linter.RuleUndefinedVar, cmd.Location(), linter.RuleUndefinedVar.Format(name, match))
	}
}

// declaredArgs is the set of ARG names the current stage has declared.
func (s *stage) declaredArgs() map[string]bool {
	declared := map[string]bool{}
	for _, k := range s.b.args.declared {
		declared[k] = true
	}
	return declared
}

// lintArg is UndefinedVar for an ARG's defaults: only those the build uses (no build
// arg of that name given); earlier names of the same ARG count as declared.
func (s *stage) lintArg(c *instructions.ArgCommand, env shell.EnvGetter) {
	declared := s.declaredArgs()
	for _, kv := range c.Args {
		if _, given := s.b.req.BuildArgs[kv.Key]; !given && kv.Value != nil {
			if _, unmatched, err := s.b.lex.ProcessWord(*kv.Value, env); err == nil {
				s.undefinedVars(c, unmatched, env, declared)
			}
		}
		declared[kv.Key] = true
	}
}

// lintExpanded runs the checks on an instruction's expanded arguments.
func (s *stage) lintExpanded(cmd instructions.Command) {
	lc := s.b.df.lint
	switch c := cmd.(type) {
	case *instructions.ExposeCommand:
		for _, p := range c.Ports {
			lc.exposePort(p, c.Location())
		}
	case *instructions.CopyCommand:
		if c.From == "" {
			s.copyIgnored("Copy", c.SourcePaths, c.Location())
		}
	case *instructions.AddCommand:
		s.copyIgnored("Add", c.SourcePaths, c.Location())
	}
}

// exposePort is ExposeProtoCasing and ExposeInvalidFormat for one port of EXPOSE,
// as [ip:][hostport:]port[/proto]; a port BuildKit cannot split is left to EXPOSE.
func (lc *lintChecks) exposePort(raw string, loc []parser.Range) {
	parts := strings.Split(raw, ":")
	n := len(parts)
	container, ip, host := parts[n-1], "", ""
	if n >= 2 {
		host = parts[n-2]
	}
	if n >= 3 {
		ip = strings.Join(parts[:n-2], ":")
	}
	port, proto, _ := strings.Cut(container, "/")
	switch strings.ToLower(proto) {
	case "", "tcp", "udp", "sctp":
	default:
		return
	}
	if port == "" {
		return
	}
	if proto != strings.ToLower(proto) {
		lc.run(&linter.RuleExposeProtoCasing, loc, linter.RuleExposeProtoCasing.Format(raw))
	}
	if ip != "" || host != "" {
		lc.run(&linter.RuleExposeInvalidFormat, loc, linter.RuleExposeInvalidFormat.Format(raw))
	}
}

// copyIgnored is CopyIgnoredFile: a COPY or ADD source from the context that
// .dockerignore excludes. As BuildKit, nothing is checked without a .dockerignore or
// when it has exceptions (!pattern); the context root counts only when a pattern
// excludes everything.
func (s *stage) copyIgnored(cmd string, srcs []string, loc []parser.Range) {
	bc := s.b.req.Context
	if bc == nil || len(bc.Patterns) == 0 {
		return
	}
	m, err := patternmatcher.New(bc.Patterns)
	if err != nil || m.Exclusions() {
		return
	}
	for _, src := range srcs {
		if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") || isGitURL(src) {
			continue
		}
		src = filepath.ToSlash(filepath.Clean(src))
		if (src == "." || src == "/") && !excludesAll(m) {
			continue
		}
		if ok, err := m.MatchesOrParentMatches(src); err == nil && ok {
			s.b.df.lint.run(&linter.RuleCopyIgnoredFile, loc, linter.RuleCopyIgnoredFile.Format(cmd, src))
		}
	}
}

// excludesAll reports whether a .dockerignore pattern excludes every entry of the
// context root.
func excludesAll(m *patternmatcher.PatternMatcher) bool {
	for _, p := range m.Patterns() {
		if p.Exclusion() {
			continue
		}
		switch p.String() {
		case "*", "**", "**/*":
			return true
		}
	}
	return false
}

// basePlatform is InvalidBaseImagePlatform: the base image pulled for a stage is for
// another OS or architecture than the one asked for. kiln refuses such an image when
// a platform was asked for (see PlatformError), so this fires for a base used as it
// is when none was.
func (lc *lintChecks) basePlatform(name string, want v1.Platform, cf v1.ConfigFile, loc []parser.Range) {
	if lc == nil || cf.OS == "" || cf.Architecture == "" || (cf.OS == want.OS && cf.Architecture == want.Architecture) {
		return
	}
	format := func(os, arch, variant string) string {
		return platforms.FormatAll(platforms.Normalize(ocispecs.Platform{OS: os, Architecture: arch, Variant: variant}))
	}
	expected := format(want.OS, want.Architecture, want.Variant)
	actual := format(cf.OS, cf.Architecture, cf.Variant)
	lc.run(&linter.RuleInvalidBaseImagePlatform, loc, linter.RuleInvalidBaseImagePlatform.Format(name, expected, actual))
}

// flushLint emits the checks that fired since the last call as warnings; with
// `error=true`, one that fired fails the build.
func (b *build) flushLint() error {
	lc := b.df.lint
	if lc == nil || len(lc.warnings) == lc.emitted {
		return nil
	}
	for _, w := range lc.warnings[lc.emitted:] {
		b.emit(Warning{Message: w})
	}
	lc.emitted = len(lc.warnings)
	return lc.err(b.df.name)
}
