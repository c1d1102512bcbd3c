package builder

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// dockerfile is a parsed Dockerfile, trimmed to what this build runs.
type dockerfile struct {
	name     string
	stages   []instructions.Stage
	metaArgs []instructions.ArgCommand
	escape   rune
	build    []bool // build[i]: stage i is built
	target   int    // index of the target stage
	warnings []string
	lint     *lintChecks // the build checks, for those run as the build goes
}

// parseDockerfile parses the Dockerfile and picks the stages to build: all stages up
// to the target (Docker's classic builder), or only those the target depends on.
// lim's Dockerfile limits (size, instructions) are checked first.
func parseDockerfile(req *Request, lim InputLimits) (*dockerfile, error) {
	name := req.DockerfileName
	if name == "" {
		name = "Dockerfile"
	}
	lim = lim.effective()
	if err := lim.checkDockerfileSize(name, req.Dockerfile); err != nil {
		return nil, err
	}
	syntaxNote, err := checkSyntax(name, req)
	if err != nil {
		return nil, err
	}
	lint, err := newLintChecks(name, req)
	if err != nil {
		return nil, err
	}
	res, err := parser.Parse(bytes.NewReader(req.Dockerfile))
	if err != nil {
		return nil, locate(name, err)
	}
	for _, w := range res.Warnings {
		if w.URL == linter.RuleNoEmptyContinuation.URL && w.Location != nil {
			lint.run(&linter.RuleNoEmptyContinuation, []parser.Range{*w.Location}, linter.RuleNoEmptyContinuation.Format())
		}
	}
	if err := lim.checkInstructions(name, res.AST); err != nil {
		return nil, err
	}
	lenientJSON(res.AST)
	stages, metaArgs, err := instructions.Parse(res.AST, lint.linter)
	if err != nil {
		return nil, locate(name, err)
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("%s: file with no instructions", name)
	}
	df := &dockerfile{name: name, stages: stages, metaArgs: metaArgs, escape: res.EscapeToken}
	if syntaxNote != "" {
		df.warnings = append(df.warnings, syntaxNote)
	}
	for _, w := range res.Warnings {
		df.warnings = append(df.warnings, w.Short)
	}
	df.target = len(stages) - 1
	if req.Target != "" {
		i, ok := df.stageIndex(req.Target, len(stages))
		if !ok {
			return nil, fmt.Errorf("failed to reach build target %s in Dockerfile", req.Target)
		}
		df.target = i
	}
	df.build = make([]bool, len(stages))
	if req.SkipUnusedStages {
		df.markDependencies(df.target, req)
	} else {
		for i := 0; i <= df.target; i++ {
			df.build[i] = true
		}
	}
	lint.stageNames(stages)
	lint.casing(stages)
	if target, err := parsePlatform(req.Platform); err == nil {
		lint.lintFrom(shell.NewLex(res.EscapeToken), stages, metaArgs, req.BuildArgs, hostPlatform(), target)
	}
	lint.lintStages(stages, df.build)
	df.warnings = append(df.warnings, lint.warnings...)
	lint.emitted = len(lint.warnings)
	df.lint = lint
	if err := lint.err(name); err != nil {
		return nil, err
	}
	return df, nil
}

// lenientJSON gives RUN, CMD, ENTRYPOINT and SHELL arguments such as
// `["a", "b"] # comment` the exec form, as Docker's classic builder does: its parser
// decoded the first JSON value and ignored what followed, where today's parser rejects
// the whole line as JSON and falls back to the shell form.
func lenientJSON(ast *parser.Node) {
	for _, n := range ast.Children {
		switch strings.ToLower(n.Value) {
		case "run", "cmd", "entrypoint", "shell":
		default:
			continue
		}
		if n.Attributes["json"] || len(n.Flags) > 0 || len(n.Heredocs) > 0 || n.Next == nil || n.Next.Next != nil {
			continue
		}
		rest := strings.TrimSpace(n.Next.Value)
		if !strings.HasPrefix(rest, "[") {
			continue
		}
		var words []any
		if err := json.NewDecoder(strings.NewReader(rest)).Decode(&words); err != nil {
			continue
		}
		var head, prev *parser.Node
		ok := true
		for _, w := range words {
			s, isString := w.(string)
			if !isString {
				ok = false
				break
			}
			node := &parser.Node{Value: s}
			if prev == nil {
				head = node
			} else {
				prev.Next = node
			}
			prev = node
		}
		if !ok {
			continue
		}
		n.Next = head
		if n.Attributes == nil {
			n.Attributes = map[string]bool{}
		}
		n.Attributes["json"] = true
	}
}

// locate turns a parser error carrying a source location into an InstructionError.
func locate(name string, err error) error {
	var le *parser.LocationError
	if errors.As(err, &le) && len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
		loc := le.Locations[0]
		return &InstructionError{File: name, Line: lineOf(loc), EndLine: endLineOf(loc), Err: errors.Unwrap(le)}
	}
	return fmt.Errorf("%s: %w", name, err)
}

// stageIndex resolves a stage reference (name, case-insensitive, or index) among the
// first n stages.
func (df *dockerfile) stageIndex(ref string, n int) (int, bool) {
	lower := strings.ToLower(ref)
	for i := 0; i < n && i < len(df.stages); i++ {
		if df.stages[i].Name != "" && df.stages[i].Name == lower {
			return i, true
		}
	}
	if i, err := strconv.Atoi(ref); err == nil && i >= 0 && i < n && i < len(df.stages) {
		return i, true
	}
	return 0, false
}

// markDependencies marks stage i and every stage it uses (FROM <stage>,
// COPY --from=<stage>) for building. References are expanded with the global ARGs;
// a reference that cannot be resolved statically marks every earlier stage.
func (df *dockerfile) markDependencies(i int, req *Request) {
	if df.build[i] {
		return
	}
	df.build[i] = true
	lex := shell.NewLex(df.escape)
	env := shell.EnvsFromSlice(df.globalDefaults(req))
	mark := func(ref string) {
		expanded, _, err := lex.ProcessWord(ref, env)
		if err != nil {
			expanded = ref
		}
		if j, ok := df.stageIndex(expanded, i); ok {
			df.markDependencies(j, req)
		} else if strings.Contains(ref, "$") {
			for j := 0; j < i; j++ {
				df.markDependencies(j, req)
			}
		}
	}
	mark(df.stages[i].BaseName)
	for _, cmd := range df.stages[i].Commands {
		if c, ok := cmd.(*instructions.CopyCommand); ok && c.From != "" {
			mark(c.From)
		}
	}
}

// globalDefaults is the global ARG environment as far as it can be known before the
// build starts (build args over defaults).
func (df *dockerfile) globalDefaults(req *Request) []string {
	var env []string
	for _, a := range df.metaArgs {
		for _, kv := range a.Args {
			if v, ok := req.BuildArgs[kv.Key]; ok && v != nil {
				env = append(env, kv.Key+"="+*v)
			} else if kv.Value != nil {
				env = append(env, kv.Key+"="+*kv.Value)
			}
		}
	}
	return env
}

// totalSteps counts the steps Docker would print: each built stage's FROM and its
// instructions.
func (df *dockerfile) totalSteps() int {
	n := 0
	for i, s := range df.stages {
		if df.build[i] {
			n += 1 + len(s.Commands)
		}
	}
	return n
}

// fileSteps counts stage i's instructions that BuildKit numbers: FROM and those that
// change the filesystem (see changesFiles).
func (df *dockerfile) fileSteps(i int) int {
	n := 1
	for _, c := range df.stages[i].Commands {
		switch strings.ToUpper(c.Name()) {
		case "RUN", "COPY", "ADD", "WORKDIR":
			n++
		}
	}
	return n
}

// addLabels appends a LABEL instruction for --label values to the target stage, as the
// classic builder does (one extra step, keys sorted).
func (df *dockerfile) addLabels(labels map[string]string) {
	if len(labels) == 0 {
		return
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// The values are literal (noExp): they come from the command line.
	cmd := instructions.NewLabelCommand(keys[0], labels[keys[0]], true)
	for _, k := range keys[1:] {
		cmd.Labels = append(cmd.Labels, instructions.KeyValuePair{Key: k, Value: labels[k]})
	}
	st := &df.stages[df.target]
	st.Commands = append(st.Commands, &labelOption{LabelCommand: cmd, text: "LABEL " + labelText(cmd)})
}

// labelOption is a LABEL that came from --label rather than from the Dockerfile.
type labelOption struct {
	*instructions.LabelCommand
	text string
}

func (l *labelOption) String() string { return l.text }

func labelText(c *instructions.LabelCommand) string {
	var parts []string
	for _, kv := range c.Labels {
		parts = append(parts, strconv.Quote(kv.Key)+"="+strconv.Quote(kv.Value))
	}
	return strings.Join(parts, " ")
}
