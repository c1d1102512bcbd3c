package buildkitapi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	bkclient "github.com/moby/buildkit/client"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	gatewaypb "github.com/moby/buildkit/frontend/gateway/pb"
	"github.com/moby/buildkit/solver/errdefs"
	"github.com/moby/buildkit/util/grpcerrors"
	"github.com/tonistiigi/fsutil"
	"google.golang.org/grpc/codes"

	"github.com/kiln-build/kiln/builder"
)

// TestSolveError checks the text, exit code and source solveError gives the builder's
// errors.
func TestSolveError(t *testing.T) {
	t.Parallel()
	df := []byte("FROM busybox\nRUN exit 3\n")
	run := &builder.RunError{Args: []string{"/bin/sh", "-c", `echo "a b"; exit 3`}, Code: 3}
	tests := []struct {
		name      string
		err       error
		wantMsg   string
		wantCode  int // the typed exit code; -1 for none
		wantLines [2]int
	}{
		{"failed RUN on line 2",
			&builder.InstructionError{File: "Dockerfile", Line: 2, Instruction: "RUN exit 3", Err: run},
			`process "/bin/sh -c echo \"a b\"; exit 3" did not complete successfully: exit code: 3`, 3, [2]int{2, 2}},
		{"RUN that could not start",
			&builder.InstructionError{File: "Dockerfile", Line: 2, EndLine: 3, Err: &builder.RunError{Args: []string{"/nope"}, Code: 127, Reason: "no such file"}},
			`process "/nope" did not complete successfully: exit code: 127: no such file`, 127, [2]int{2, 3}},
		{"parse error",
			&builder.InstructionError{File: "Dockerfile", Line: 3, Err: errors.New("unknown instruction: FOO")},
			"dockerfile parse error on line 3: unknown instruction: FOO", -1, [2]int{3, 3}},
		{"other error on a line keeps the builder's text",
			&builder.InstructionError{File: "Dockerfile", Line: 2, Instruction: "COPY a /a", Err: errors.New("no such file")},
			"Dockerfile:2: COPY a /a: no such file", -1, [2]int{2, 2}},
		{"no line", errors.New("pull failed"), "pull failed", -1, [2]int{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := solveError(fmt.Errorf("stage 0: %w", tt.err), df, "Dockerfile")
			if got := err.Error(); !strings.HasSuffix(got, tt.wantMsg) {
				t.Errorf("message %q, want it to end with %q", got, tt.wantMsg)
			}
			var ee *gatewaypb.ExitError
			switch {
			case tt.wantCode < 0 && errors.As(err, &ee):
				t.Errorf("exit error %d on a non-RUN error", ee.ExitCode)
			case tt.wantCode >= 0 && (!errors.As(err, &ee) || int(ee.ExitCode) != tt.wantCode):
				t.Errorf("exit error %v, want code %d", ee, tt.wantCode)
			}
			checkSource(t, err, tt.wantLines)
		})
	}
	if err := solveError(fmt.Errorf("x: %w", context.Canceled), df, "Dockerfile"); grpcerrors.Code(err) != codes.Canceled {
		t.Errorf("cancelled build: %v, want Canceled", err)
	}
}

// checkSource checks that err carries one Dockerfile source spanning lines, or none
// when lines is zero.
func checkSource(t *testing.T, err error, lines [2]int) {
	t.Helper()
	srcs := errdefs.Sources(err)
	if lines[0] == 0 {
		if len(srcs) != 0 {
			t.Errorf("sources %v on an error without a line", srcs)
		}
		return
	}
	if len(srcs) != 1 || srcs[0].Info == nil || len(srcs[0].Ranges) != 1 {
		t.Fatalf("sources %v, want one with one range", srcs)
	}
	s := srcs[0]
	if s.Info.Filename != "Dockerfile" || s.Info.Language != "Dockerfile" || !strings.HasPrefix(string(s.Info.Data), "FROM ") {
		t.Errorf("source info %q %q %q", s.Info.Filename, s.Info.Language, s.Info.Data)
	}
	if got := [2]int{int(s.Ranges[0].Start.Line), int(s.Ranges[0].End.Line)}; got != lines {
		t.Errorf("source lines %v, want %v", got, lines)
	}
}

// TestSolveErrorsThroughClient builds failing Dockerfiles through BuildKit's client:
// the error that reaches it has BuildKit's text, the RUN's exit code and the source
// line, as buildx and buildctl print them, and ends with the failure's class.
func TestSolveErrorsThroughClient(t *testing.T) {
	ts := newTestServer(t)
	from := "FROM " + ts.busybox + "\n"
	tests := []struct {
		name       string
		dockerfile string
		wantMsg    string
		wantCode   int
		wantLines  [2]int
	}{
		{"RUN exit 3", from + "RUN exit 3\n",
			`process "/bin/sh -c exit 3" did not complete successfully: exit code: 3 [RUN failed (exit code 3)]`, 3, [2]int{2, 2}},
		{"RUN over two lines", from + "RUN true && \\\n  exit 4\n",
			`process "/bin/sh -c true &&   exit 4" did not complete successfully: exit code: 4 [RUN failed (exit code 4)]`, 4, [2]int{2, 3}},
		{"unknown instruction on line 3", from + "ENV A=1\nFOO bar\n",
			"dockerfile parse error on line 3: unknown instruction: FOO (did you mean FROM?) [user error (dockerfile or context)]", -1, [2]int{3, 3}},
		{"syntax error on line 3", from + "ENV A=1\nCOPY onlyone\n",
			"dockerfile parse error on line 3: COPY requires at least two arguments, but only one was provided. Destination could not be determined [user error (dockerfile or context)]", -1, [2]int{3, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"Dockerfile": tt.dockerfile})
			_, _, err := ts.solve(t, dir, nil)
			if err == nil {
				t.Fatal("the build succeeded")
			}
			if !strings.HasSuffix(err.Error(), tt.wantMsg) {
				t.Errorf("error %q, want it to end with %q", err, tt.wantMsg)
			}
			var ee *gatewaypb.ExitError
			switch {
			case tt.wantCode < 0 && errors.As(err, &ee):
				t.Errorf("exit error %d on a parse error", ee.ExitCode)
			case tt.wantCode >= 0 && (!errors.As(err, &ee) || int(ee.ExitCode) != tt.wantCode):
				t.Errorf("exit error %v, want code %d", ee, tt.wantCode)
			}
			checkSource(t, err, tt.wantLines)
		})
	}
}

// TestSolveErrorThroughGateway checks that a failed RUN keeps its text, exit code and
// source on buildx's way: a gateway client's LLBBridge.Solve fails, the client returns
// that error with LLBBridge.Return and Control.Solve answers with it.
func TestSolveErrorThroughGateway(t *testing.T) {
	ts := newTestServer(t)
	dir := writeFiles(t, map[string]string{"Dockerfile": "FROM " + ts.busybox + "\nRUN exit 5\n"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := ts.client(t, ctx)
	fs, err := fsutil.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Build(ctx, bkclient.SolveOpt{LocalMounts: map[string]fsutil.FS{"context": fs, "dockerfile": fs}}, "kiln-test",
		func(ctx context.Context, gc gateway.Client) (*gateway.Result, error) {
			return gc.Solve(ctx, gateway.SolveRequest{Frontend: "dockerfile.v0"})
		}, nil)
	if err == nil {
		t.Fatal("the build succeeded")
	}
	// buildx prints "ERROR: failed to build: " before it.
	// The classification (builder.Classify) ends the message. The buildkit client
	// wraps it with "failed to solve" (Control.Solve's answer) or "failed to run Build
	// function" (the gateway client's own error): both goroutines end on the same
	// failure and its errgroup keeps whichever returns first, so either is right.
	const msg = `process "/bin/sh -c exit 5" did not complete successfully: exit code: 5 [RUN failed (exit code 5)]`
	if got := err.Error(); got != "failed to solve: "+msg && got != "failed to run Build function: "+msg {
		t.Errorf("error %q, want %q after the client's wrapper", got, msg)
	}
	var ee *gatewaypb.ExitError
	if !errors.As(err, &ee) || ee.ExitCode != 5 {
		t.Errorf("exit error %v, want code 5", ee)
	}
	checkSource(t, err, [2]int{2, 2})
}
