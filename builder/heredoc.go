package builder

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Here-documents (BuildKit syntax; dockerd's classic builder refuses them), with
// BuildKit v0.34's semantics:
//
//   - RUN whose command is one here-document alone runs its body (tabs stripped for
//     <<-) as the shell's script; a body starting with "#!" is written to a read-only
//     file /dev/pipes/<NAME> (mode 0755) and the shell runs that path instead. The
//     delimiter's quoting changes nothing: BuildKit never expands the body, the shell
//     does when it runs the script.
//   - Any other RUN with here-documents hands the shell the command line followed by
//     each body and its delimiter, so the shell itself reads the here-documents
//     (expansion, <<- and quoting are then the shell's).
//   - COPY/ADD <<NAME writes a file named NAME (mode 0644 before --chmod) with the body,
//     its variables expanded from the build args and ENV unless the delimiter is quoted.

// heredocPipes is where BuildKit mounts a RUN's "#!" here-document.
const heredocPipes = "/dev/pipes/"

// inlineScript is a RUN here-document run as a program of its own.
type inlineScript struct {
	name string // the delimiter: the file's name below /dev/pipes
	data string
}

// runArgs returns the process arguments of a RUN, and the script file a lone "#!"
// here-document becomes (nil otherwise).
func (s *stage) runArgs(c *instructions.RunCommand) ([]string, *inlineScript, error) {
	if len(c.Files) == 0 {
		return s.withShell(c.ShellDependantCmdLine), nil, nil
	}
	if len(c.CmdLine) != 1 || !c.PrependShell {
		return nil, nil, fmt.Errorf("parsing produced an invalid run command: %v", c.CmdLine)
	}
	if parser.MustParseHeredoc(c.CmdLine[0]) != nil {
		f := c.Files[0]
		data := f.Data
		if f.Chomp {
			data = parser.ChompHeredocContent(data)
		}
		if strings.HasPrefix(data, "#!") {
			return append(s.shell(), heredocPipes+f.Name), &inlineScript{name: f.Name, data: data}, nil
		}
		return append(s.shell(), data), nil, nil
	}
	var b strings.Builder
	b.WriteString(c.CmdLine[0])
	for _, f := range c.Files {
		b.WriteByte('\n')
		b.WriteString(f.Data)
		b.WriteString(f.Name)
	}
	return append(s.shell(), b.String()), nil, nil
}

// write puts the script in a new file below dir for the RUN to mount.
func (sc *inlineScript) write(dir string) (string, error) {
	tmp, err := os.MkdirTemp(dir, "heredoc-")
	if err != nil {
		return "", err
	}
	p := filepath.Join(tmp, "script")
	if err := os.WriteFile(p, []byte(sc.data), 0o755); err != nil {
		return "", err
	}
	// WriteFile's mode is subject to the umask.
	if err := os.Chmod(p, 0o755); err != nil {
		return "", err
	}
	return p, nil
}

// historyArgs are the build args BuildKit writes into a RUN's history: every ARG of the
// stage in declaration order, with the value the RUN sees (an ENV of the same name wins,
// an ARG without a value is empty).
func (a *buildArgs) historyArgs(imageEnv []string) []string {
	out := make([]string, 0, len(a.declared))
	seen := map[string]bool{}
	for _, k := range a.declared {
		if seen[k] {
			continue
		}
		seen[k] = true
		v, ok := getEnv(imageEnv, k)
		if !ok && a.values[k] != nil {
			v = *a.values[k]
		}
		out = append(out, k+"="+v)
	}
	return out
}

// heredocRunHistory is BuildKit's history text for a RUN with here-documents: the
// build args in scope (in the order of their ARGs), then the process arguments, marked as BuildKit marks its steps.
func heredocRunHistory(args, buildArgs []string) string {
	parts := []string{"RUN"}
	if len(buildArgs) > 0 {
		parts = append(parts, fmt.Sprintf("|%d", len(buildArgs)))
		parts = append(parts, buildArgs...)
	}
	parts = append(parts, args...)
	return strings.Join(parts, " ") + " # buildkit"
}

// expandHeredocs expands the variables in the bodies of a COPY/ADD's unquoted
// here-documents as BuildKit does: quotes and backslashes other than escapes of "$"
// are kept, whatever the Dockerfile's escape character. report, when not nil, gets
// the variables each body uses that env does not define.
func expandHeredocs(cmd instructions.Command, env shell.EnvGetter, report func(map[string]struct{})) error {
	e, ok := cmd.(instructions.SupportsSingleWordExpansionRaw)
	if !ok {
		return nil
	}
	lex := shell.NewLex('\\')
	lex.SkipProcessQuotes = true
	return e.ExpandRaw(func(word string) (string, error) {
		out, unmatched, err := lex.ProcessWord(word, env)
		if report != nil && err == nil {
			report(unmatched)
		}
		return out, err
	})
}

// writeHeredocFiles writes each here-document source of a COPY/ADD as a file named
// after its delimiter (mode 0644) in a new directory below dir, and returns the
// directory and the names.
func writeHeredocFiles(dir string, contents []instructions.SourceContent) (string, []string, error) {
	tmp, err := os.MkdirTemp(dir, "heredoc-")
	if err != nil {
		return "", nil, err
	}
	names := make([]string, 0, len(contents))
	for _, c := range contents {
		name := path.Base(path.Clean("/" + c.Path))
		if name == "/" || name == "." {
			return "", nil, fmt.Errorf("here-document name %q is not a file name", c.Path)
		}
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, []byte(c.Data), 0o644); err != nil {
			return "", nil, err
		}
		if err := os.Chmod(p, 0o644); err != nil {
			return "", nil, err
		}
		names = append(names, name)
	}
	return tmp, names, nil
}

// heredocCopyHistory is BuildKit's history text for a COPY or ADD with here-documents.
func heredocCopyHistory(cmd, chown, chmod string, sources []string, contents []instructions.SourceContent, dest string) string {
	parts := []string{cmd}
	if chown != "" {
		parts = append(parts, "--chown="+chown)
	}
	if chmod != "" {
		parts = append(parts, "--chmod="+chmod)
	}
	parts = append(parts, sources...)
	for _, c := range contents {
		parts = append(parts, "<<"+c.Path)
	}
	parts = append(parts, dest)
	return strings.Join(parts, " ") + " # buildkit"
}
