package builder

import (
	"sort"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/shell"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// proxyArgs are the build args Docker predefines: usable without an ARG instruction,
// passed to RUN, never reported as unused and never written into history.
var proxyArgs = map[string]bool{
	"HTTP_PROXY": true, "http_proxy": true,
	"HTTPS_PROXY": true, "https_proxy": true,
	"FTP_PROXY": true, "ftp_proxy": true,
	"NO_PROXY": true, "no_proxy": true,
	"ALL_PROXY": true, "all_proxy": true,
}

// buildArgs tracks --build-arg values, the ARGs declared so far in the current stage,
// and which build args were consumed anywhere (for the "not consumed" warning).
type buildArgs struct {
	given    map[string]*string // --build-arg values; nil value: declared without value
	global   map[string]*string // values of ARGs before the first FROM, after overrides
	declared []string           // ARG names in the current stage, in declaration order
	values   map[string]*string // current stage's ARG values
	consumed map[string]bool
	// auto are the platform args (see setPlatforms): global ARGs without a value keep
	// them instead of unsetting them.
	auto map[string]bool
}

func newBuildArgs(given map[string]*string) *buildArgs {
	return &buildArgs{
		given:    given,
		global:   map[string]*string{},
		values:   map[string]*string{},
		consumed: map[string]bool{},
	}
}

// declareGlobal records an ARG before the first FROM. Its value is the build arg
// when given, else the default (expanded with earlier global args by the caller). An
// ARG naming a platform arg without a value keeps the platform's value, as BuildKit's.
func (a *buildArgs) declareGlobal(name string, def *string) {
	v := a.resolve(name, def)
	if v == nil && a.auto[name] {
		return
	}
	a.global[name] = v
}

// setPlatforms defines BuildKit's automatic platform args in the global scope, from
// the platform RUN executes on (build: this machine's) and the one the image is for
// (target): BUILDPLATFORM, BUILDOS, BUILDARCH, BUILDVARIANT and TARGETPLATFORM,
// TARGETOS, TARGETARCH, TARGETVARIANT. FROM lines see them; a stage sees one after
// an `ARG NAME` without value, as any global arg. A build arg of the same name
// overrides it. Docker's classic builder defines none of them (FROM
// --platform=$BUILDPLATFORM is an error there); kiln follows BuildKit, whose
// Dockerfiles use them.
func (a *buildArgs) setPlatforms(build, target v1.Platform) {
	a.auto = map[string]bool{}
	for _, side := range []struct {
		prefix string
		p      v1.Platform
	}{{"BUILD", build}, {"TARGET", target}} {
		for _, kv := range [][2]string{
			{"PLATFORM", formatPlatform(side.p)},
			{"OS", side.p.OS},
			{"ARCH", side.p.Architecture},
			{"VARIANT", side.p.Variant},
		} {
			name, v := side.prefix+kv[0], kv[1]
			a.auto[name] = true
			a.global[name] = a.resolve(name, &v)
		}
	}
}

// resolve returns the value an ARG gets: the build arg if given with a value,
// else the default.
func (a *buildArgs) resolve(name string, def *string) *string {
	if v, ok := a.given[name]; ok {
		a.consumed[name] = true
		if v != nil {
			return v
		}
	}
	return def
}

// resetStage starts a new stage: declared ARGs are forgotten (ARG scope is per stage).
func (a *buildArgs) resetStage() {
	a.declared = nil
	a.values = map[string]*string{}
}

// declare records an ARG inside a stage. An ARG without default re-imports the
// global value of the same name, as Docker does.
func (a *buildArgs) declare(name string, def *string) {
	if def == nil {
		if g, ok := a.global[name]; ok {
			def = g
		}
	}
	v := a.resolve(name, def)
	if _, seen := a.values[name]; !seen {
		a.declared = append(a.declared, name)
	}
	a.values[name] = v
}

// globalEnv is the environment FROM lines are expanded with.
func (a *buildArgs) globalEnv() []string {
	var env []string
	for k, v := range a.global {
		if v != nil {
			env = append(env, k+"="+*v)
		}
	}
	sort.Strings(env)
	return env
}

// stageArgs returns the stage's ARGs that have values and are not shadowed by a key of
// the image's Env, in declaration order, followed by the given proxy args. history
// selects the form recorded in history, where proxy args are left out.
func (a *buildArgs) stageArgs(imageEnv []string, history bool) []string {
	inEnv := map[string]bool{}
	for _, kv := range imageEnv {
		k, _, _ := strings.Cut(kv, "=")
		inEnv[k] = true
	}
	var out []string
	for _, k := range a.declared {
		v := a.values[k]
		if v == nil || inEnv[k] {
			continue
		}
		out = append(out, k+"="+*v)
	}
	if history {
		return out
	}
	var proxies []string
	for k, v := range a.given {
		if proxyArgs[k] && v != nil && !inEnv[k] && a.values[k] == nil {
			proxies = append(proxies, k+"="+*v)
		}
	}
	sort.Strings(proxies)
	return append(out, proxies...)
}

// expansionEnv is what instruction arguments are expanded with: the image's Env, then
// the stage's ARGs that Env does not shadow.
func (a *buildArgs) expansionEnv(imageEnv []string) shell.EnvGetter {
	env := append(append([]string(nil), imageEnv...), a.stageArgs(imageEnv, true)...)
	return shell.EnvsFromSlice(env)
}

// unused lists build args that no ARG consumed, sorted; proxy args and BuildKit's
// frontend options (BUILDKIT_SYNTAX, BUILDKIT_INLINE_CACHE, BUILDKIT_MULTI_PLATFORM,
// BUILDKIT_DOCKERFILE_CHECK...: read by the build, not by ARGs) are exempt.
func (a *buildArgs) unused() []string {
	var out []string
	for k := range a.given {
		if !a.consumed[k] && !proxyArgs[k] && !strings.HasPrefix(k, "BUILDKIT_") {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
