package builder

import (
	"path"
	"regexp"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
)

// BuildKit's build checks that need more than the parser: the ones BuildKit runs on
// the whole Dockerfile (stage names, instruction casing) and the ones it runs while
// dispatching the stages it builds (JSON form, key=value form, WORKDIR, instructions
// used twice, secret-looking ARG and ENV names). StageNameCasing, FromAsCasing and
// MaintainerDeprecated come from instructions.Parse itself. The texts are BuildKit's
// (linter.Rule*.Format); kiln decides statically what BuildKit decides on the LLB
// state, so a base image's SHELL or WORKDIR is not seen (see docs/dockerfile.md).

// reservedStageNames are the stage names BuildKit's ReservedStageName rejects.
var reservedStageNames = map[string]bool{"context": true, "scratch": true}

// secretName and secretAllowed are SecretsUsedInArgOrEnv's patterns: a word of the
// name (split at _) that says secret, and one that says it is not one.
var (
	secretName    = regexp.MustCompile(`(?i)(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)(?:_|$)`)
	secretAllowed = regexp.MustCompile(`(?i)(?:_|^)(?:public|file|version)(?:_|$)`)
)

// lintStages runs the dispatch-time checks that need only the Dockerfile over the
// parsed stages; built says which stages the build dispatches (BuildKit checks only
// those).
func (lc *lintChecks) lintStages(stages []instructions.Stage, built []bool) {
	type state struct{ workdir, shell bool }
	states := make([]state, len(stages))
	for i, st := range stages {
		var s state
		for j := 0; j < i; j++ {
			if stages[j].Name != "" && stages[j].Name == strings.ToLower(st.BaseName) {
				s = states[j]
			}
		}
		var cmd, entrypoint, healthcheck []instructions.Command
		for _, c := range st.Commands {
			switch c := c.(type) {
			case *instructions.ShellCommand:
				s.shell = true
			case *instructions.WorkdirCommand:
				if !s.workdir && !path.IsAbs(c.Path) && built[i] {
					lc.run(&linter.RuleWorkdirRelativePath, c.Location(), linter.RuleWorkdirRelativePath.Format(c.Path))
				}
				s.workdir = true
			case *instructions.EnvCommand:
				for _, kv := range c.Env {
					if kv.NoDelim && built[i] {
						lc.run(&linter.RuleLegacyKeyValueFormat, c.Location(), linter.RuleLegacyKeyValueFormat.Format(c.Name()))
					}
					lc.secretKey(built[i], "ENV", kv.Key, c)
				}
			case *instructions.LabelCommand:
				for _, kv := range c.Labels {
					if kv.NoDelim && built[i] {
						lc.run(&linter.RuleLegacyKeyValueFormat, c.Location(), linter.RuleLegacyKeyValueFormat.Format(c.Name()))
					}
				}
			case *instructions.ArgCommand:
				for _, kv := range c.Args {
					lc.secretKey(built[i], "ARG", kv.Key, c)
				}
			case *instructions.CmdCommand:
				cmd = lc.usedOnce(built[i], cmd, c)
				lc.jsonArgs(built[i], s.shell, c.PrependShell, c)
			case *instructions.EntrypointCommand:
				entrypoint = lc.usedOnce(built[i], entrypoint, c)
				lc.jsonArgs(built[i], s.shell, c.PrependShell, c)
			case *instructions.HealthCheckCommand:
				healthcheck = lc.usedOnce(built[i], healthcheck, c)
			}
		}
		states[i] = s
	}
}

// stageNames is ReservedStageName and DuplicateStageName.
func (lc *lintChecks) stageNames(stages []instructions.Stage) {
	seen := map[string]bool{}
	for _, st := range stages {
		if st.Name == "" {
			continue
		}
		if reservedStageNames[st.Name] {
			lc.run(&linter.RuleReservedStageName, st.Location, linter.RuleReservedStageName.Format(st.Name))
		}
		if seen[st.Name] {
			lc.run(&linter.RuleDuplicateStageName, st.Location, linter.RuleDuplicateStageName.Format(st.Name))
		}
		seen[st.Name] = true
	}
}

// casing is ConsistentInstructionCasing: each instruction keyword in one case, the
// case most keywords of the Dockerfile use.
func (lc *lintChecks) casing(stages []instructions.Stage) {
	consistent := func(s string) bool { return s == strings.ToLower(s) || s == strings.ToUpper(s) }
	lower, upper := 0, 0
	count := func(s string) {
		if !consistent(s) {
			return
		}
		if s == strings.ToLower(s) {
			lower++
		} else {
			upper++
		}
	}
	for _, st := range stages {
		count(st.OrigCmd)
		for _, c := range st.Commands {
			count(c.Name())
		}
	}
	majorityLower := lower > upper
	report := func(name string, st instructions.Stage, c instructions.Command) {
		want := ""
		if majorityLower && strings.ToLower(name) != name {
			want = "lowercase"
		} else if !majorityLower && strings.ToUpper(name) != name {
			want = "uppercase"
		}
		if want == "" {
			return
		}
		loc := st.Location
		if c != nil {
			loc = c.Location()
		}
		lc.run(&linter.RuleConsistentInstructionCasing, loc, linter.RuleConsistentInstructionCasing.Format(name, want))
	}
	for _, st := range stages {
		report(st.OrigCmd, st, nil)
		for _, c := range st.Commands {
			report(c.Name(), st, c)
		}
	}
}

// jsonArgs is JSONArgsRecommended: CMD or ENTRYPOINT in the shell form while no SHELL
// instruction set the shell that form runs with.
func (lc *lintChecks) jsonArgs(built, shellSet, prependShell bool, c instructions.Command) {
	if built && prependShell && !shellSet {
		lc.run(&linter.RuleJSONArgsRecommended, c.Location(), linter.RuleJSONArgsRecommended.Format(c.Name()))
	}
}

// usedOnce is MultipleInstructionsDisallowed: an earlier CMD, ENTRYPOINT or
// HEALTHCHECK of the stage is reported (it is the one that has no effect).
func (lc *lintChecks) usedOnce(built bool, prev []instructions.Command, c instructions.Command) []instructions.Command {
	if built && len(prev) > 0 {
		p := prev[len(prev)-1]
		lc.run(&linter.RuleMultipleInstructionsDisallowed, p.Location(), linter.RuleMultipleInstructionsDisallowed.Format(p.Name()))
	}
	return append(prev, c)
}

// secretKey is SecretsUsedInArgOrEnv.
func (lc *lintChecks) secretKey(built bool, instruction, key string, c instructions.Command) {
	if built && secretName.MatchString(key) && !secretAllowed.MatchString(key) {
		lc.run(&linter.RuleSecretsUsedInArgOrEnv, c.Location(), linter.RuleSecretsUsedInArgOrEnv.Format(instruction, key))
	}
}
