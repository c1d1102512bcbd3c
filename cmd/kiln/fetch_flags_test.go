package main

import (
	"context"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/credentials"
)

// TestFetchPolicyFlags: kiln serve is strict by default and hands the same policy
// to both of its doors; kiln build is open unless --fetch-policy=strict; --fetch-allow
// widens the strict policy and is refused with the open one.
func TestFetchPolicyFlags(t *testing.T) {
	t.Parallel()
	h := fakeHost(t, false, nil)
	tests := []struct {
		name    string
		serve   bool
		args    []string
		allowed []string // resolved addresses a fetch may reach
		refused []string // and may not
		errPart string
	}{
		{name: "serve default", serve: true, allowed: []string{"93.184.216.34:80"}, refused: []string{"127.0.0.1:80", "169.254.169.254:80", "10.0.0.1:443"}},
		{name: "serve allow", serve: true, args: []string{"--fetch-allow", "127.0.0.1", "--fetch-allow=10.0.0.0/8"},
			allowed: []string{"127.0.0.1:80", "10.9.9.9:443"}, refused: []string{"127.0.0.2:80", "169.254.169.254:80"}},
		{name: "serve open", serve: true, args: []string{"--fetch-policy=open"}, allowed: []string{"127.0.0.1:80", "169.254.169.254:80"}},
		{name: "serve open with allow", serve: true, args: []string{"--fetch-policy=open", "--fetch-allow", "10.0.0.0/8"}, errPart: "the fetch policy is open"},
		{name: "serve bad rule", serve: true, args: []string{"--fetch-allow", "10.0.0.0/40"}, errPart: `--fetch-allow "10.0.0.0/40"`},
		{name: "build default", allowed: []string{"127.0.0.1:80", "169.254.169.254:80"}},
		{name: "build strict", args: []string{"--fetch-policy=strict"}, refused: []string{"127.0.0.1:80", "169.254.169.254:80"}},
		{name: "build allow without strict", args: []string{"--fetch-allow", "127.0.0.1"}, errPart: "--fetch-policy=strict"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var check []func(address, resolved string) error
			var err error
			if tt.serve {
				cfg, perr := planServe(parseServeFlags(t, append([]string{"-H", "tcp://127.0.0.1:2375", "--isolation=chroot"}, tt.args...)...), h, credentials.Chain())
				err = perr
				if perr == nil {
					bk := buildkitConfig(cfg.build, nil, nil)
					for _, g := range []any{cfg.build.Workspace.Fetch, bk.Workspace.Fetch} {
						check = append(check, guardCheck(g))
					}
				}
			} else {
				bf, _ := parseFlags(t, append([]string{"--context", testContext(t), "--no-push", "--isolation=chroot", "--state-dir", t.TempDir()}, tt.args...)...)
				p, perr := planBuild(context.Background(), bf, h)
				err = perr
				if perr == nil {
					check = append(check, guardCheck(p.workspace.Fetch))
				}
			}
			if tt.errPart != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errPart) {
					t.Fatalf("err = %v, want one containing %q", err, tt.errPart)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range check {
				for _, a := range tt.allowed {
					if err := c("host:80", a); err != nil {
						t.Errorf("%s refused: %v", a, err)
					}
				}
				for _, a := range tt.refused {
					if err := c("host:80", a); err == nil || !strings.Contains(err.Error(), "--fetch-allow") {
						t.Errorf("%s: %v, want a refusal naming --fetch-allow", a, err)
					}
				}
			}
		})
	}
}

// guardCheck is g's CheckDial, or one allowing everything when g is nil (open).
func guardCheck(g any) func(address, resolved string) error {
	type guard interface {
		CheckDial(address, resolved string) error
	}
	if gg, ok := g.(guard); ok {
		return gg.CheckDial
	}
	return func(string, string) error { return nil }
}
