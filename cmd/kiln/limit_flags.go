package main

import (
	"fmt"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/isolation"
)

// limitFlags are the server-side caps on every build (docs/security.md, "Resource
// limits").
type limitFlags struct {
	memory  string
	pids    int64
	timeout time.Duration
}

func addLimitFlags(fs *pflag.FlagSet, f *limitFlags) {
	fs.StringVar(&f.memory, "build-memory", "", "Memory limit of every RUN, whatever the build asks (docker build --memory is lowered to it); RUN gets no swap beyond it. A RUN that exceeds it is killed and fails its build. Bytes or a size such as 2GiB. Needs chroot isolation and a writable cgroup.")
	fs.Int64Var(&f.pids, "build-pids", 0, "Most processes and threads a RUN may have at once (a fork bomb fails its build). 0 is no limit. Needs chroot isolation and a writable cgroup.")
	fs.DurationVar(&f.timeout, "build-timeout", 0, "Cancel a build that runs longer than this (e.g. 30m), with a message naming the limit. 0 is no limit.")
}

// plan checks the flags and sets the workspace's caps.
func (f limitFlags) plan(ws *builder.Workspace) error {
	if f.memory != "" && f.memory != "0" {
		n, err := parseSize(f.memory)
		if err != nil {
			return fmt.Errorf("--build-memory: %w", err)
		}
		if n < 6<<20 {
			return fmt.Errorf("--build-memory %s: must be at least 6MiB", f.memory)
		}
		ws.MaxMemory = n
	}
	if f.pids < 0 {
		return fmt.Errorf("--build-pids %d: must not be negative", f.pids)
	}
	ws.MaxPids = f.pids
	if f.timeout < 0 {
		return fmt.Errorf("--build-timeout %s: must not be negative", f.timeout)
	}
	ws.Timeout = f.timeout
	if ws.Isolation == isolation.InPlace && (ws.MaxMemory > 0 || ws.MaxPids > 0) {
		return fmt.Errorf("--build-memory and --build-pids need chroot isolation: in place, RUN runs in kiln's own cgroup (limit the container instead)")
	}
	return nil
}

// openCgroups gives chroot builds this process's cgroups for their RUNs' limits. With
// none writable, a server cap cannot be kept and is an error; otherwise a warning says
// that builds asking for limits will be refused.
func openCgroups(lg *logrus.Logger, ws *builder.Workspace) error {
	if ws.Isolation != isolation.Chroot {
		return nil
	}
	cg, err := isolation.OpenCgroups()
	if err != nil {
		if ws.MaxMemory > 0 || ws.MaxPids > 0 {
			return fmt.Errorf("--build-memory and --build-pids need a writable cgroup (see docs/security.md, \"Resource limits\"): %w", err)
		}
		lg.Warnf("No writable cgroup (%v): builds asking for memory, cpu or cpuset limits will be refused, "+
			"and RUN runs under kiln's own limits (see docs/security.md, \"Resource limits\")", err)
		return nil
	}
	lg.Infof("RUN resource limits through %s", cg)
	ws.Cgroups = cg
	return nil
}
