package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// This file checks the CI recipes in deploy/examples: every kiln command line in them
// (kiln build/serve/warm, /kaniko/executor, /kaniko/warmer, a container running kiln's
// image with command and args) must parse with kiln's own flag sets, so a renamed or
// removed flag fails here instead of in someone's pipeline.

// invocation is one kiln command line found in a recipe.
type invocation struct {
	where string   // file and what found it, for messages
	sub   string   // build, serve or warm
	args  []string // after the subcommand
}

// kilnImage matches kiln's image in a recipe.
var kilnImage = regexp.MustCompile(`(^|/)kiln-build/kiln(:|@|$)`)

// placeholder matches an argument a CI system fills in: $VAR, ${VAR}, $(params.X).
var placeholder = regexp.MustCompile(`^(\$[A-Za-z_][A-Za-z0-9_]*|\$\{[^}]+\}|\$\([^)]+\))$`)

// kilnSub returns the subcommand a program token followed by next runs, "" if none:
// kiln, .../kiln/kiln or kiln's image followed by build/serve/warm, or kaniko's paths.
func kilnSub(tok, next string) (sub string, skip int) {
	switch tok {
	case "/kaniko/executor":
		return "build", 1
	case "/kaniko/warmer":
		return "warm", 1
	}
	if tok == "kiln" || strings.HasSuffix(tok, "/kiln/kiln") || kilnImage.MatchString(tok) {
		switch next {
		case "build", "serve", "warm":
			return next, 2
		}
	}
	return "", 0
}

// shellInvocations finds kiln command lines in shell text: continuation lines joined,
// comments dropped, commands split at ; && || | and newlines, words split as a shell
// splits them (quotes removed; variables left as they are).
func shellInvocations(where, text string) []invocation {
	text = strings.ReplaceAll(text, "\\\n", " ")
	var out []invocation
	for _, line := range strings.Split(text, "\n") {
		if t := strings.TrimSpace(line); strings.HasPrefix(t, "#") || strings.HasPrefix(t, "//") {
			continue
		}
		words := shellWords(line)
		start := 0
		for i := 0; i <= len(words); i++ {
			if i < len(words) && !isOperator(words[i]) {
				continue
			}
			out = append(out, commandInvocations(where, words[start:i])...)
			start = i + 1
		}
	}
	return out
}

// commandInvocations finds a kiln invocation in one simple command's words; its
// arguments end at the first redirection.
func commandInvocations(where string, words []string) []invocation {
	for i := range words {
		next := ""
		if i+1 < len(words) {
			next = words[i+1]
		}
		sub, skip := kilnSub(words[i], next)
		if sub == "" {
			continue
		}
		var args []string
		for _, w := range words[i+skip:] {
			if strings.HasPrefix(w, ">") || strings.HasPrefix(w, "2>") || strings.HasPrefix(w, "<") {
				break
			}
			args = append(args, w)
		}
		return []invocation{{where: where, sub: sub, args: args}}
	}
	return nil
}

func isOperator(w string) bool {
	switch w {
	case ";", "&&", "||", "|", "&":
		return true
	}
	return false
}

// shellWords splits a line into words: whitespace separates, quotes group and are
// removed, operators (; | & && ||) outside quotes are words of their own. $( ... ) is
// kept in its word with whatever it holds.
func shellWords(line string) []string {
	var words []string
	var cur strings.Builder
	in := false // a word has started
	flush := func() {
		if in {
			words = append(words, cur.String())
		}
		cur.Reset()
		in = false
	}
	var quote rune
	depth := 0 // inside $( ... )
	rs := []rune(line)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
				continue
			}
			cur.WriteRune(r)
		case depth > 0:
			cur.WriteRune(r)
			if r == '(' {
				depth++
			} else if r == ')' {
				depth--
			}
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == '$' && i+1 < len(rs) && rs[i+1] == '(':
			cur.WriteString("$(")
			i++
			depth, in = 1, true
		case r == ' ' || r == '\t':
			flush()
		case r == ';' || r == '|' || r == '&':
			flush()
			op := string(r)
			if i+1 < len(rs) && rs[i+1] == r && r != ';' {
				op += string(r)
				i++
			}
			words = append(words, op)
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	flush()
	return words
}

// yamlInvocations finds kiln invocations in a YAML document: containers and services
// that run kiln's image with an argv (command/entrypoint and args), and every string
// as shell text (scripts, run:, commands).
func yamlInvocations(where string, n *yaml.Node) []invocation {
	var out []invocation
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			out = append(out, yamlInvocations(where, c)...)
		}
	case yaml.ScalarNode:
		out = append(out, shellInvocations(where, n.Value)...)
	case yaml.MappingNode:
		fields := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i].Value, n.Content[i+1]
			fields[key] = val
			if prose[key] && val.Kind == yaml.ScalarNode {
				continue // "Start kiln serve" names a step, it runs nothing
			}
			out = append(out, yamlInvocations(where, val)...)
		}
		if inv, ok := containerInvocation(where, fields); ok {
			out = append(out, inv)
		}
	}
	return out
}

// prose are keys whose text describes rather than runs.
var prose = map[string]bool{"name": true, "label": true, "description": true}

// containerInvocation reads a Kubernetes container, Tekton step or GitLab service that
// runs kiln's image with an argv: command (or entrypoint) then args (or GitLab's
// command). Shell lines in command (agent-stack-k8s) are left to the string scan.
func containerInvocation(where string, f map[string]*yaml.Node) (invocation, bool) {
	img := f["image"]
	if img == nil {
		img = f["name"] // a GitLab service
	}
	if img == nil || img.Kind != yaml.ScalarNode || !kilnImage.MatchString(img.Value) {
		return invocation{}, false
	}
	list := func(key string) []string {
		var s []string
		if n := f[key]; n != nil && n.Kind == yaml.SequenceNode {
			for _, c := range n.Content {
				s = append(s, c.Value)
			}
		}
		return s
	}
	entry, rest := list("command"), list("args")
	if f["entrypoint"] != nil {
		entry, rest = list("entrypoint"), list("command")
	}
	if len(entry) > 0 && strings.ContainsAny(entry[0], " \t") {
		return invocation{}, false
	}
	argv := append(entry, rest...)
	if len(entry) == 0 {
		if f["args"] == nil {
			return invocation{}, false // a script step, or the image's default
		}
		// the image's own entrypoint, /kiln/kiln build
		argv = append([]string{"/kiln/kiln", "build"}, rest...)
	}
	if len(argv) < 2 {
		return invocation{}, false
	}
	sub, skip := kilnSub(argv[0], argv[1])
	if sub == "" {
		return invocation{}, false
	}
	return invocation{where: where + " (container " + img.Value + ")", sub: sub, args: argv[skip:]}, true
}

// recipeInvocations reads one recipe file.
func recipeInvocations(t *testing.T, path string) []invocation {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	name := filepath.ToSlash(path)
	switch {
	case filepath.Base(path) == "Jenkinsfile":
		// the pod template's YAML, then the sh steps' scripts
		m := regexp.MustCompile(`(?s)podTemplate\(yaml: '''(.*?)'''`).FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("%s: no podTemplate(yaml: '''...''')", name)
		}
		var out []invocation
		out = append(out, yamlDocInvocations(t, name+" pod template", m[1])...)
		for _, sh := range regexp.MustCompile(`(?s)\bsh\s+(?:'''(.*?)'''|'([^']*)')`).FindAllStringSubmatch(text, -1) {
			out = append(out, shellInvocations(name+" sh step", sh[1]+sh[2])...)
		}
		return out
	case strings.HasSuffix(path, ".yml") || strings.HasSuffix(path, ".yaml"):
		return yamlDocInvocations(t, name, text)
	}
	return shellInvocations(name, text)
}

func yamlDocInvocations(t *testing.T, where, text string) []invocation {
	t.Helper()
	dec := yaml.NewDecoder(strings.NewReader(text))
	var out []invocation
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		out = append(out, yamlInvocations(where, &n)...)
	}
}

// checkInvocation parses inv's arguments with the real subcommand's flags; arguments
// left over must be placeholders a CI system expands (a Tekton array parameter).
func checkInvocation(t *testing.T, inv invocation) error {
	t.Helper()
	root := newRootCommand(io.Discard, io.Discard, fakeHost(t, true, nil))
	cmd, _, err := root.Find([]string{inv.sub})
	if err != nil || cmd.Name() != inv.sub {
		return fmt.Errorf("kiln has no %s command (%v)", inv.sub, err)
	}
	if err := cmd.ParseFlags(inv.args); err != nil {
		return err
	}
	for _, a := range cmd.Flags().Args() {
		if !placeholder.MatchString(a) {
			return fmt.Errorf("argument %q: kiln %s takes flags only", a, inv.sub)
		}
	}
	return nil
}

// TestExamples checks every kiln command line in deploy/examples against kiln's flags,
// and that each recipe holds the invocations it is there to show.
func TestExamples(t *testing.T) {
	t.Parallel()
	want := map[string]map[string]int{ // file: subcommand: at least this many
		"gitlab/gitlab-ci.yml":        {"build": 2, "serve": 1},
		"jenkins/Jenkinsfile":         {"build": 1, "serve": 1},
		"buildkite/pipeline.yml":      {"build": 1, "warm": 1},
		"github/build.yml":            {"serve": 1},
		"tekton/task.yaml":            {"build": 1},
		"buildkite/hooks/pre-command": {},
	}
	dir := filepath.Join("..", "..", "deploy", "examples")
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasSuffix(p, ".md") {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range files {
		counts, known := want[rel]
		if !known {
			t.Errorf("deploy/examples/%s: not in TestExamples' list; add what it must contain", rel)
			continue
		}
		invs := recipeInvocations(t, filepath.Join(dir, rel))
		got := map[string]int{}
		for _, inv := range invs {
			got[inv.sub]++
			if err := checkInvocation(t, inv); err != nil {
				t.Errorf("%s: kiln %s %q: %v", inv.where, inv.sub, inv.args, err)
			}
		}
		for sub, n := range counts {
			if got[sub] < n {
				t.Errorf("deploy/examples/%s: %d kiln %s invocations found, want at least %d (found %v)", rel, got[sub], sub, n, invs)
			}
		}
	}
	if len(files) < len(want) {
		t.Errorf("deploy/examples holds %d recipes, want %d: %v", len(files), len(want), files)
	}
}

// TestExampleChecker shows the checker finds invocations in each form and rejects
// stale flags, a flag of the wrong command and stray arguments.
func TestExampleChecker(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, text string
		yaml       bool
		sub        string
		bad        bool
	}{
		{name: "kaniko path", text: `/kaniko/executor --context "$CI_PROJECT_DIR" --destination r/a:1 2>err`, sub: "build"},
		{name: "continued lines", text: "kiln build \\\n  --context . \\\n  --no-push && echo done", sub: "build"},
		{name: "docker run of the image", text: "docker run --name kiln --entrypoint /kiln/kiln ghcr.io/kiln-build/kiln:latest serve --host=tcp://0.0.0.0:2375", sub: "serve"},
		{name: "warmer", text: "/kaniko/warmer --image=busybox --cache-dir=/cache", sub: "warm"},
		{name: "stale flag", text: "kiln build --context . --snapshotMod=full", sub: "build", bad: true},
		{name: "another command's flag", text: "/kiln/kiln serve --destination=r/a:1", sub: "serve", bad: true},
		{name: "stray argument", text: "kiln build --context . extra", sub: "build", bad: true},
		{name: "bad value", text: "kiln build --push-retry=many", sub: "build", bad: true},
		{name: "container argv", yaml: true, text: "image: ghcr.io/kiln-build/kiln:v1\ncommand: [/kiln/kiln]\nargs: [serve, --no-such-flag]\n", sub: "serve", bad: true},
		{name: "container args to the entrypoint", yaml: true, text: "image: ghcr.io/kiln-build/kiln:v1\nargs: [--context=., --no-push]\n", sub: "build"},
		{name: "gitlab service", yaml: true, text: "services:\n  - name: ghcr.io/kiln-build/kiln:latest\n    entrypoint: [/kiln/kiln]\n    command: [serve, --tlsverify]\n", sub: "serve"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var invs []invocation
			if tt.yaml {
				invs = yamlDocInvocations(t, tt.name, tt.text)
			} else {
				invs = shellInvocations(tt.name, tt.text)
			}
			if len(invs) != 1 || invs[0].sub != tt.sub {
				t.Fatalf("found %+v, want one kiln %s", invs, tt.sub)
			}
			err := checkInvocation(t, invs[0])
			if (err != nil) != tt.bad {
				t.Errorf("check %q: %v, want error %v", invs[0].args, err, tt.bad)
			}
		})
	}
}
