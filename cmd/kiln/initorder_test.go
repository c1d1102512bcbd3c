package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The chroot child runs from the isolation package's init (isolation/child.go), so a
// RUN does not wait for the package inits of the rest of kiln. That holds only while
// isolation is initialized before kiln's heavy dependencies: this test re-runs its own
// binary with GODEBUG=inittrace=1 and checks the order. An import that drags such a
// dependency into isolation breaks it.
func TestChildInitsBeforeHeavyPackages(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	order := map[string]int{}
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "init" {
			n++
			order[f[1]] = n
		}
	}
	iso, ok := order["github.com/kiln-build/kiln/isolation"]
	if !ok {
		t.Fatalf("no init of the isolation package in the trace:\n%s", out)
	}
	seen := 0
	for _, heavy := range []string{
		"github.com/distribution/reference",
		"google.golang.org/grpc",
		"github.com/prometheus/client_golang/prometheus",
		"github.com/moby/buildkit/frontend/gateway/pb",
		"github.com/kiln-build/kiln/builder",
	} {
		h, ok := order[heavy]
		if ok {
			seen++
		}
		if ok && h < iso {
			t.Errorf("%s is initialized (#%d) before isolation (#%d): the chroot child pays for it on every RUN", heavy, h, iso)
		}
	}
	if seen < 3 {
		t.Errorf("only %d of the heavy packages in the trace: the test no longer checks anything", seen)
	}
}
