package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/kiln-build/kiln/isolation"
)

func TestMain(m *testing.M) {
	// Builds in these tests run RUN through the chroot runner, which re-executes the
	// test binary.
	isolation.Init()
	os.Exit(m.Run())
}

func TestExitCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want int
	}{
		{errors.New("plain"), 1},
		{&isolation.ExitError{Code: 3}, 3},
		{fmt.Errorf("Dockerfile:4: RUN false: %w", &isolation.ExitError{Code: 42}), 42},
		{fmt.Errorf("step: %w", &isolation.ExitError{Code: 137, Signal: "SIGKILL"}), 137},
		{&isolation.ExitError{Code: 0}, 1},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestRunFailsBeforeBuilding(t *testing.T) {
	t.Parallel()
	ctxDir := testContext(t)
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "unsupported flag", args: []string{"build", "-c", ctxDir, "--no-push", "--force-build-metadata"}, wantErr: "--force-build-metadata=true: not supported: kiln adds no layer for an instruction that changes no files"},
		{name: "cache without a repository", args: []string{"build", "-c", ctxDir, "--no-push", "--cache"}, wantErr: "specify cache repo with --cache-repo"},
		{name: "missing destination", args: []string{"build", "-c", ctxDir}, wantErr: "you must provide --destination, or use --no-push"},
		{name: "in place outside a container", args: []string{"build", "-c", ctxDir, "--no-push", "--isolation=inplace"}, wantErr: "--force"},
		{name: "unknown flag", args: []string{"build", "--no-such-flag"}, wantErr: "unknown flag"},
		{name: "bad verbosity", args: []string{"build", "--no-push", "-v", "loud"}, wantErr: "--verbosity"},
		{name: "bad log format", args: []string{"build", "--no-push", "--log-format", "xml"}, wantErr: "--log-format"},
		{name: "positional argument", args: []string{"build", "."}, wantErr: "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr, fakeHost(t, false, nil))
			if code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tt.wantErr)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"version"}, &stdout, &stderr, fakeHost(t, false, nil)); code != 0 {
		t.Fatalf("kiln version exited %d: %s", code, stderr.String())
	}
	if got, want := stdout.String(), "kiln "+version+"\n"; got != want {
		t.Errorf("kiln version printed %q, want %q", got, want)
	}
}

func TestBuildHelpDocumentsEveryFlag(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"build", "--help"}, &stdout, &stderr, fakeHost(t, false, nil)); code != 0 {
		t.Fatalf("kiln build --help exited %d: %s", code, stderr.String())
	}
	help := stdout.String()
	fs := pflag.NewFlagSet("build", pflag.ContinueOnError)
	addBuildFlags(fs, &buildFlags{})
	n := 0
	fs.VisitAll(func(fl *pflag.Flag) {
		n++
		if fl.Deprecated != "" {
			return // kaniko's old spellings: hidden, and named in the help's text
		}
		if !strings.Contains(help, "--"+fl.Name+" ") && !strings.Contains(help, "--"+fl.Name+"\n") {
			t.Errorf("help does not mention --%s", fl.Name)
		}
		if fl.Usage == "" {
			t.Errorf("--%s has no usage text", fl.Name)
		}
	})
	if n < 50 {
		t.Errorf("only %d flags registered", n)
	}
}
