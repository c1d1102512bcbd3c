package builder

import (
	"sort"
	"strings"

	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/buildkit/util/suggest"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The build checks BuildKit runs on the FROM lines of every stage, built or not,
// before it dispatches anything: InvalidDefaultArgInFrom, UndefinedArgInFrom,
// RedundantTargetPlatform and FromPlatformFlagConstDisallowed.

// fromEnv is the global scope FROM lines are expanded with.
type fromEnv struct {
	env  shell.EnvGetter
	keys []string // every name the scope defines or declares, for suggestions
	ok   bool     // false: a global ARG's default could not be expanded
}

// globalScope evaluates the platform args and the ARGs before the first FROM, as the
// build does (see declareGlobalArgs), with the given build args.
func globalScope(lex *shell.Lex, metaArgs []instructions.ArgCommand, given map[string]*string, host, target v1.Platform) fromEnv {
	a := newBuildArgs(given)
	a.setPlatforms(host, target)
	declared := map[string]bool{}
	for name := range a.auto {
		declared[name] = true
	}
	for _, cmd := range metaArgs {
		for _, kv := range cmd.Args {
			declared[kv.Key] = true
			var def *string
			if kv.Value != nil {
				v, _, err := lex.ProcessWord(*kv.Value, shellEnv(a.globalEnv()))
				if err != nil {
					return fromEnv{}
				}
				def = &v
			}
			a.declareGlobal(kv.Key, def)
		}
	}
	keys := make([]string, 0, len(declared))
	for k := range declared {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return fromEnv{env: shellEnv(a.globalEnv()), keys: keys, ok: true}
}

// lintFrom runs the FROM checks over every stage. given are the build args, host and
// target the build's platforms.
func (lc *lintChecks) lintFrom(lex *shell.Lex, stages []instructions.Stage, metaArgs []instructions.ArgCommand, given map[string]*string, host, target v1.Platform) {
	// InvalidDefaultArgInFrom: the base name with no build args but the platform ones.
	platformOnly := map[string]*string{}
	for _, side := range []string{"BUILD", "TARGET"} {
		for _, part := range []string{"PLATFORM", "OS", "ARCH", "VARIANT"} {
			if v, ok := given[side+part]; ok {
				platformOnly[side+part] = v
			}
		}
	}
	if defaults := globalScope(lex, metaArgs, platformOnly, host, target); defaults.ok {
		for _, st := range stages {
			res, err := lex.ProcessWordWithMatches(st.BaseName, defaults.env)
			if err != nil {
				break
			}
			if _, err := reference.ParseNormalizedNamed(res.Result); err != nil {
				lc.run(&linter.RuleInvalidDefaultArgInFrom, st.Location, linter.RuleInvalidDefaultArgInFrom.Format(st.BaseName))
			}
		}
	}
	scope := globalScope(lex, metaArgs, given, host, target)
	if !scope.ok {
		return
	}
	for _, st := range stages {
		if res, err := lex.ProcessWordWithMatches(st.BaseName, scope.env); err == nil {
			lc.undefinedInFrom(res.Unmatched, scope, st)
		}
		if st.Platform == "" {
			continue
		}
		res, err := lex.ProcessWordWithMatches(st.Platform, scope.env)
		if err != nil {
			continue
		}
		lc.undefinedInFrom(res.Unmatched, scope, st)
		if _, only := res.Matched["TARGETPLATFORM"]; only && len(res.Matched) == 1 && len(res.Unmatched) == 0 {
			if v, _ := scope.env.Get("TARGETPLATFORM"); v == res.Result {
				lc.run(&linter.RuleRedundantTargetPlatform, st.Location, linter.RuleRedundantTargetPlatform.Format(st.Platform))
			}
		}
		if len(res.Matched) == 0 && len(res.Unmatched) == 0 {
			p, err := platforms.Parse(res.Result)
			if err == nil && !strings.Contains(st.Name, p.OS) && !strings.Contains(st.Name, p.Architecture) {
				lc.run(&linter.RuleFromPlatformFlagConstDisallowed, st.Location, linter.RuleFromPlatformFlagConstDisallowed.Format(res.Result))
			}
		}
	}
}

// undefinedInFrom is UndefinedArgInFrom: a FROM line uses a name no global ARG
// declares (nor a platform arg), with the closest declared name as a suggestion.
func (lc *lintChecks) undefinedInFrom(unmatched map[string]struct{}, scope fromEnv, st instructions.Stage) {
	declared := map[string]bool{}
	for _, k := range scope.keys {
		declared[k] = true
	}
	var names []string
	for name := range unmatched {
		if !declared[name] {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		match, _ := suggest.Search(name, scope.keys, true)
		lc.run(&linter.RuleUndefinedArgInFrom, st.Location, linter.RuleUndefinedArgInFrom.Format(name, match))
	}
}
