package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func TestKanikoArgs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		argv0 string
		args  []string
		want  []string
	}{
		{"/kaniko/executor", []string{"--context=dir:///w", "--no-push"}, []string{"build", "--context=dir:///w", "--no-push"}},
		{"executor", nil, []string{"build"}},
		{"/kaniko/executor", []string{"version"}, []string{"version"}},
		{"/kaniko/warmer", []string{"--image=busybox"}, []string{"warm", "--image=busybox"}},
		{"/kiln/kiln", []string{"build", "--no-push"}, []string{"build", "--no-push"}},
		{"kiln", []string{"serve"}, []string{"serve"}},
		{"/usr/local/bin/executor-wrapper", []string{"x"}, []string{"x"}},
	}
	for _, tt := range tests {
		if got := kanikoArgs(tt.argv0, tt.args); !slices.Equal(got, tt.want) {
			t.Errorf("kanikoArgs(%q, %q) = %q, want %q", tt.argv0, tt.args, got, tt.want)
		}
	}
}

// TestKanikoPathsReachCommands runs the mapped command lines through kiln's command
// tree: /kaniko/executor --help is kiln build's help, /kaniko/warmer --help kiln warm's.
func TestKanikoPathsReachCommands(t *testing.T) {
	t.Parallel()
	for argv0, want := range map[string]string{
		"/kaniko/executor": "kiln build [flags]",
		"/kaniko/warmer":   "kiln warm [flags]",
	} {
		var out, errb bytes.Buffer
		if code := run(kanikoArgs(argv0, []string{"--help"}), &out, &errb, fakeHost(t, true, nil)); code != 0 {
			t.Fatalf("%s --help: exit %d: %s", argv0, code, errb.String())
		}
		if !strings.Contains(out.String(), want) {
			t.Errorf("%s --help does not show %q:\n%s", argv0, want, out.String())
		}
	}
}
