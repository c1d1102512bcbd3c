package builder

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

func sp(s string) *string { return &s }

// TestBuildArgScoping follows Docker's ARG rules: build args override defaults, ARGs are
// scoped to their stage, an ARG without value re-imports the global one, ENV shadows an
// ARG of the same name, and proxy args need no ARG but stay out of history.
func TestBuildArgScoping(t *testing.T) {
	t.Parallel()
	a := newBuildArgs(map[string]*string{"GIVEN": sp("cli"), "GLOBAL": sp("g-cli"), "HTTP_PROXY": sp("http://proxy"), "NOTUSED": sp("x")})
	a.declareGlobal("GLOBAL", sp("g-default"))
	a.declareGlobal("VERSION", sp("1.0"))
	if d := cmp.Diff([]string{"GLOBAL=g-cli", "VERSION=1.0"}, a.globalEnv()); d != "" {
		t.Errorf("global env (-want +got):\n%s", d)
	}

	a.resetStage()
	a.declare("VERSION", nil) // re-imports the global value
	a.declare("GIVEN", sp("default"))
	a.declare("EMPTY", nil)
	a.declare("SHADOWED", sp("arg"))
	imageEnv := []string{"PATH=/bin", "SHADOWED=env"}
	if d := cmp.Diff([]string{"VERSION=1.0", "GIVEN=cli"}, a.stageArgs(imageEnv, true)); d != "" {
		t.Errorf("history args (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"VERSION=1.0", "GIVEN=cli", "HTTP_PROXY=http://proxy"}, a.stageArgs(imageEnv, false)); d != "" {
		t.Errorf("RUN args (-want +got):\n%s", d)
	}
	env := a.expansionEnv(imageEnv)
	for k, want := range map[string]string{"SHADOWED": "env", "GIVEN": "cli", "VERSION": "1.0", "PATH": "/bin"} {
		if got, _ := env.Get(k); got != want {
			t.Errorf("expansion of %s = %q, want %q", k, got, want)
		}
	}
	if _, ok := env.Get("GLOBAL"); ok {
		t.Error("a global ARG not redeclared in the stage is visible in it")
	}

	a.resetStage()
	if got := a.stageArgs(nil, true); len(got) != 0 {
		t.Errorf("a new stage starts with args %v", got)
	}
	if d := cmp.Diff([]string{"NOTUSED"}, a.unused()); d != "" {
		t.Errorf("unused (-want +got):\n%s", d)
	}
}

func TestParsePortSpec(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{in: "80", want: []string{"80/tcp"}},
		{in: "53/UDP", want: []string{"53/udp"}},
		{in: "8000-8002/sctp", want: []string{"8000/sctp", "8001/sctp", "8002/sctp"}},
		{in: "127.0.0.1:8080:80", want: []string{"80/tcp"}},
		{in: "80/http", wantErr: true},
		{in: "99999", wantErr: true},
		{in: "9-1", wantErr: true},
	} {
		got, err := parsePortSpec(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: error %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", tc.in, d)
		}
	}
}

func TestResolveWorkdir(t *testing.T) {
	t.Parallel()
	for _, tc := range [][3]string{
		{"", "app", "/app"},
		{"/a", "b/../c", "/a/c"},
		{"/a", "/x/", "/x"},
		{"/a/b", "..", "/a"},
	} {
		if got := resolveWorkdir(tc[0], tc[1]); got != tc[2] {
			t.Errorf("WORKDIR %q from %q = %q, want %q", tc[1], tc[0], got, tc[2])
		}
	}
}

// Docker's classic builder reads `["a"] # comment` as exec form (kaniko/cmd in the corpus).
func TestLenientJSON(t *testing.T) {
	t.Parallel()
	df, err := parseDockerfile(&Request{Dockerfile: []byte("FROM scratch\nENTRYPOINT [\"myentrypoint\"] # clears CMD\nCMD [\"a\", \"b\"]\nRUN echo [x]\n")}, InputLimits{})
	if err != nil {
		t.Fatal(err)
	}
	cmds := df.stages[0].Commands
	ep := cmds[0].(*instructions.EntrypointCommand)
	if ep.PrependShell || !cmp.Equal(ep.CmdLine, []string{"myentrypoint"}) {
		t.Errorf("ENTRYPOINT = %q (shell %v), want exec form [myentrypoint]", ep.CmdLine, ep.PrependShell)
	}
	if run := cmds[2].(*instructions.RunCommand); !run.PrependShell {
		t.Errorf("RUN echo [x] lost its shell form: %q", run.CmdLine)
	}
}
