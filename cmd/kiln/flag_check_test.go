package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// badValues are values no flag of a given type takes (or, for strings, the empty
// value, which is what an unset variable in a script gives).
func badValues(typ string) []string {
	switch typ {
	case "int":
		return []string{"", "x", "1.5"}
	case "bool":
		return []string{"", "maybe"}
	case "duration":
		return []string{"", "soon"}
	}
	return []string{""}
}

// checkMessage fails when msg, an error kiln printed, says nothing: empty, a nil
// error or a bad format verb formatted into it, or a reason cut off after its colon.
func checkMessage(t *testing.T, what, msg string) {
	t.Helper()
	m := strings.TrimSpace(msg)
	switch {
	case m == "" || m == "error:":
		t.Errorf("%s: empty error message", what)
	case strings.Contains(m, "<nil>"):
		t.Errorf("%s: %q formats a nil error", what, m)
	case strings.Contains(m, "%!"):
		t.Errorf("%s: %q has a bad format verb", what, m)
	case strings.HasSuffix(m, ":") || strings.HasSuffix(m, `""`):
		t.Errorf("%s: %q ends without a reason", what, m)
	}
}

// errorLine returns the "error: ..." line kiln printed last.
func errorLine(stderr string) string {
	var last string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "error:") {
			last = l
		}
	}
	return last
}

// bogusContext is a context whose Dockerfile does not parse, so a build that gets
// past its flags stops there, having built nothing.
func bogusContext(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("BOGUS\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

const bogusDockerfileError = "unknown instruction: BOGUS"

// visitFlags calls fn with each flag (but --help) of the flags add registers.
func visitFlags(add func(fs *pflag.FlagSet), fn func(fl *pflag.Flag)) {
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	add(fs)
	fs.VisitAll(func(fl *pflag.Flag) {
		if fl.Name != "help" {
			fn(fl)
		}
	})
}

// TestBuildAndWarmFlagValuesSayWhatIsWrong gives every flag of kiln build and kiln
// warm an empty value and values of the wrong type. Each is either accepted (the
// build then stops at the Dockerfile, which does not parse) or refused with a message
// that names the flag and says what it takes.
func TestBuildAndWarmFlagValuesSayWhatIsWrong(t *testing.T) {
	t.Parallel()
	ctxDir := bogusContext(t)
	dockerfile := filepath.Join(ctxDir, "Dockerfile")
	commands := []struct {
		name string
		add  func(fs *pflag.FlagSet)
		base []string
	}{
		{"build", func(fs *pflag.FlagSet) { addBuildFlags(fs, &buildFlags{}) }, []string{"build", "-c", ctxDir, "--no-push", "--isolation=chroot"}},
		{"warm", func(fs *pflag.FlagSet) { addWarmFlags(fs, &warmFlags{}) }, []string{"warm", "--cache-dir", t.TempDir(), "--dockerfile", dockerfile}},
	}
	for _, c := range commands {
		visitFlags(c.add, func(fl *pflag.Flag) {
			for _, v := range badValues(fl.Value.Type()) {
				arg := "--" + fl.Name + "=" + v
				t.Run(c.name+" "+arg, func(t *testing.T) {
					t.Parallel()
					var stdout, stderr bytes.Buffer
					code := run(append(append([]string{}, c.base...), arg), &stdout, &stderr, fakeHost(t, false, nil))
					msg := errorLine(stderr.String())
					if code == 0 {
						t.Fatalf("exit code 0, want the Dockerfile refused; stderr:\n%s", stderr.String())
					}
					checkMessage(t, arg, msg)
					if !strings.Contains(msg, bogusDockerfileError) && !strings.Contains(msg, "--"+fl.Name) {
						t.Errorf("%s refused with %q, which does not name --%s", arg, msg, fl.Name)
					}
				})
			}
		})
	}
}

// TestServeFlagValuesSayWhatIsWrong does the same for kiln serve, up to the checked
// configuration (a server that accepts its flags would start listening).
func TestServeFlagValuesSayWhatIsWrong(t *testing.T) {
	t.Parallel()
	visitFlags(func(fs *pflag.FlagSet) { addServeFlags(fs, &serveFlags{}) }, func(fl *pflag.Flag) {
		for _, v := range badValues(fl.Value.Type()) {
			arg := "--" + fl.Name + "=" + v
			t.Run(arg, func(t *testing.T) {
				t.Parallel()
				err := checkServeFlags(t, "--isolation=chroot", "--state-dir", t.TempDir(), arg)
				if err == nil {
					return
				}
				checkMessage(t, arg, "error: "+err.Error())
				if !strings.Contains(err.Error(), "--"+fl.Name) {
					t.Errorf("%s refused with %q, which does not name --%s", arg, err, fl.Name)
				}
			})
		}
	})
}

// checkServeFlags checks args as kiln serve does before it listens: the command
// line, empty values, the logger and the configuration.
func checkServeFlags(t *testing.T, args ...string) error {
	t.Helper()
	f := &serveFlags{}
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addServeFlags(fs, f)
	if err := fs.Parse(args); err != nil {
		return flagError(nil, err)
	}
	if _, err := checkEmptyFlags(fs); err != nil {
		return err
	}
	if _, err := newLogger(io.Discard, f.verbosity, f.logFormat, f.logTimestamp); err != nil {
		return err
	}
	_, err := planServe(f, fakeHost(t, false, nil), nil)
	return err
}

// TestEmptyEntriesKanikoIgnores: an empty --insecure-registry, --ignore-path, ...
// matches nothing in kaniko, so kiln drops it, with a warning, rather than fail.
func TestEmptyEntriesKanikoIgnores(t *testing.T) {
	t.Parallel()
	f, fs := parseFlags(t, "--ignore-path", "", "--ignore-path", "/x", "--insecure-registry=", "--build-arg", " ", "--registry-mirror=")
	warnings, err := checkEmptyFlags(fs)
	if err != nil {
		t.Fatalf("checkEmptyFlags: %v", err)
	}
	if len(warnings) != 4 {
		t.Errorf("warnings %q, want one per flag", warnings)
	}
	for _, w := range warnings {
		checkMessage(t, "warning", w)
		if !strings.Contains(w, ": an empty value is ignored, as kaniko ignores it; give ") {
			t.Errorf("warning %q does not say what happened and what to give", w)
		}
	}
	if len(f.ignorePaths) != 1 || f.ignorePaths[0] != "/x" || len(f.insecureRegistries) != 0 || len(f.buildArgs) != 0 || len(f.registryMirrors) != 0 {
		t.Errorf("empty entries kept: ignore %q, insecure %q, build args %q, mirrors %q", f.ignorePaths, f.insecureRegistries, f.buildArgs, f.registryMirrors)
	}
	var stdout, stderr bytes.Buffer
	run([]string{"build", "-c", bogusContext(t), "--no-push", "--isolation=chroot", "--insecure-registry="}, &stdout, &stderr, fakeHost(t, false, nil))
	if !strings.Contains(stderr.String(), "--insecure-registry: an empty value is ignored") || !strings.Contains(stderr.String(), bogusDockerfileError) {
		t.Errorf("kiln build --insecure-registry= did not warn and go on; stderr:\n%s", stderr.String())
	}
}

// TestFlagMessages pins the messages for values users get wrong, the issue's
// `kiln serve --state-dir ”` first.
func TestFlagMessages(t *testing.T) {
	t.Parallel()
	ctxDir := bogusContext(t)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	build := func(args ...string) []string {
		return append([]string{"build", "-c", ctxDir, "--no-push", "--isolation=chroot"}, args...)
	}
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"serve", "--state-dir", ""}, "--state-dir: must not be empty; give a directory, such as /var/lib/kiln"},
		{[]string{"serve", "--state-dir", "   "}, "--state-dir: must not be empty"},
		{[]string{"serve", "-H", ""}, "--host: must not be empty; give unix:///path/kiln.sock or tcp://host:port"},
		{[]string{"serve", "--max-concurrent-builds", ""}, `--max-concurrent-builds "": want a whole number, such as 3`},
		{[]string{"serve", "--tlsverify=maybe"}, `--tlsverify "maybe": want true or false`},
		{[]string{"serve", "--context-memory-dir", ""}, "--context-memory-dir: must not be empty; give a tmpfs directory"},
		{[]string{"warm", "--cache-dir", "", "-i", "x"}, "--cache-dir: must not be empty; give a directory, such as /cache"},
		{[]string{"warm", "--cache-dir", file, "-i", "x"}, "--cache-dir " + file + ": not a directory"},
		{[]string{"warm", "--cache-dir", t.TempDir(), "-i", ""}, "--image: must not be empty; give an image reference"},
		{[]string{"warm", "--cache-dir", t.TempDir(), "-i", "x", "--custom-platform", "/"}, `--custom-platform "/": not a platform; give os/arch[/variant]`},
		{[]string{"warm", "--cache-dir", t.TempDir(), "-i", "x", "--build-arg", "=v"}, `--build-arg "=v": the name is empty`},
		{build("--context", ""), "--context: must not be empty; give a directory"},
		{build("--dockerfile", ""), "--dockerfile: must not be empty; give the Dockerfile's path"},
		{build("-f", ""), "--dockerfile: must not be empty"},
		{build("--snapshot-mode", ""), "--snapshot-mode: must not be empty; give redo, full or time"},
		{build("--compression", ""), "--compression: must not be empty; give gzip or zstd"},
		{build("--isolation", ""), "--isolation: must not be empty; give chroot, inplace or auto"},
		{build("--destination", ""), "--destination: must not be empty; give an image reference"},
		{build("--push-retry", "x"), `--push-retry "x": want a whole number, such as 3`},
		{build("--image-fs-extract-retry", "-1"), "--image-fs-extract-retry -1: must not be negative"},
		{build("--no-push=maybe"), `--no-push "maybe": want true or false`},
		{build("--cache-ttl", "soon"), `--cache-ttl "soon": want a duration, such as 30m or 6h`},
		{build("--custom-platform", "/"), `--custom-platform "/": not a platform`},
		{build("--custom-platform", "linux/"), `--custom-platform "linux/": not a platform`},
		{build("--build-arg", "=x"), `--build-arg "=x": the name is empty`},
		{build("--secret", ""), "--secret: must not be empty; give id=ID,src=PATH or id=ID,env=VARIABLE"},
		{build("--secret", "src="+file), `--secret "src=` + file + `": secret missing ID; give id=ID,src=PATH or id=ID,env=VARIABLE`},
		{build("--secret", "id=a,src=/nonexistent"), `--secret "id=a,src=/nonexistent": stat /nonexistent: no such file or directory`},
		{build("--ssh", ""), "--ssh: must not be empty; give default, default=/path/to/agent.sock or ID=/path/to/key"},
		{build("--ssh", "default"), `--ssh "default": no path given and SSH_AUTH_SOCK is not set; give default=/path/to/agent.sock`},
		{build("--git", "single-branch=maybe"), `--git "single-branch=maybe": single-branch="maybe": want true or false`},
		{build("--git", "branch="), `--git "branch=": the branch name is empty`},
		{build("--cache-dir", file), "--cache-dir " + file + ": not a directory"},
		{build("--kaniko-dir", "relative"), `--kaniko-dir "relative": must be an absolute path`},
		{build("--snapshotMode", ""), "--snapshotMode: must not be empty; give redo, full or time"},
		{build("--git", ","), `--git ",": an empty option; give key=value options`},
		{build("--tar-path", dir), "--tar-path " + dir + ": is a directory; give the path of a file to write, such as " + dir + "/image.tar"},
		{build("--digest-file", dir), "--digest-file " + dir + ": is a directory"},
		{build("--oci-layout-path", file), "--oci-layout-path " + file + ": not a directory"},
		{build("--registry-map", "=mirror.test"), `--registry-map "=mirror.test": want original=mirror`},
		{build("--registry-certificate", "=/ca.crt"), `--registry-certificate "=/ca.crt": want registry=/path/ca.crt`},
		{build("--registry-client-cert", "=/c.pem,/k.pem"), `--registry-client-cert "=/c.pem,/k.pem": want registry=`},
		{[]string{"serve", "--registry-map", "=mirror.test"}, `--registry-map "=mirror.test": want original=mirror`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			var err error
			var msg string
			if tt.args[0] == "serve" {
				// A serve that accepted its flags would listen: check them as it does.
				if err = checkServeFlags(t, append([]string{"--isolation=chroot"}, tt.args[1:]...)...); err != nil {
					msg = "error: " + err.Error()
				}
			} else {
				var stdout, stderr bytes.Buffer
				run(tt.args, &stdout, &stderr, fakeHost(t, false, nil))
				msg = errorLine(stderr.String())
			}
			if !strings.Contains(msg, tt.wantErr) {
				t.Fatalf("error %q, want one containing %q", msg, tt.wantErr)
			}
			checkMessage(t, strings.Join(tt.args, " "), msg)
		})
	}
}

// fuzzBuildFlags are the kiln build flags FuzzBuildFlagValue varies: those whose
// checking reads at most a file, never the network (--context, --bucket) and never
// creates anything (--state-dir, --kaniko-dir, --cache-dir, the output paths).
func fuzzBuildFlags() []string {
	return []string{
		"dockerfile", "build-arg", "label", "target", "custom-platform", "context-sub-path",
		"git", "max-context-size", "destination", "insecure-registry", "skip-tls-verify-registry",
		"push-retry", "image-download-retry", "image-fs-extract-retry", "registry-mirror",
		"registry-map", "registry-certificate", "registry-client-cert", "snapshot-mode",
		"compression", "compression-level", "ignore-path", "isolation", "verbosity", "log-format",
		"cache-ttl", "no-push", "reproducible", "force-build-metadata", "snapshotMode",
		"secret", "ssh",
	}
}

// FuzzBuildFlagValue plans a build with one flag set to an arbitrary value: the plan
// either succeeds or fails with a message that says something.
func FuzzBuildFlagValue(f *testing.F) {
	for i, v := range []string{"", " ", "=", "x=", "=x", "/", "linux/", "-1", "1e9", "branch=", ",", "a;b", "maybe", "\x00"} {
		f.Add(uint8(i), v)
	}
	ctxDir := f.TempDir()
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(testDockerfile), 0o644); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, which uint8, value string) {
		if strings.Contains(value, "%") || strings.Contains(value, "<nil>") {
			t.Skip("the value itself would look like a formatting fault")
		}
		names := fuzzBuildFlags()
		arg := "--" + names[int(which)%len(names)] + "=" + value
		fs := pflag.NewFlagSet("build", pflag.ContinueOnError)
		fs.SetOutput(io.Discard)
		bf := &buildFlags{}
		addBuildFlags(fs, bf)
		err := fs.Parse([]string{"-c", ctxDir, "--no-push", "--isolation=chroot", arg})
		if err != nil {
			err = flagError(nil, err)
		} else if _, err = checkEmptyFlags(fs); err == nil {
			if err = checkUnsupported(fs); err == nil {
				var p *buildPlan
				if p, err = planBuild(context.Background(), bf, fakeHost(t, false, nil)); err == nil {
					p.req.Context.Close()
				}
			}
		}
		if err != nil {
			checkMessage(t, arg, "error: "+err.Error())
		}
	})
}
