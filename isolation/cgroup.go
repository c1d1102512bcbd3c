package isolation

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Cgroups is the cgroup subtree in which the chroot runner gives each RUN a cgroup of
// its own, carrying the build's limits (memory, pids, cpu). It is found once, at
// start-up, by OpenCgroups, and shared by every build of a front door.
//
// kiln writes the few cgroupfs files it needs itself rather than use a library such as
// containerd/cgroups: the work is a dozen file writes on either version, and the
// library brings systemd, D-Bus and eBPF dependencies kiln has no use for.
type Cgroups struct {
	// v2 is the directory of the delegated cgroup v2 subtree under which RUN cgroups
	// are created; empty on cgroup v1.
	v2 string
	// v1 maps a v1 controller (memory, pids, cpu, cpuset) to the directory, in its own
	// hierarchy, under which RUN cgroups are created.
	v1 map[string]string
}

// cgroupFS is where OpenCgroups looks: "/" for real, a fake tree in tests.
type cgroupFS struct {
	root string // prefix of every path read or written
	pid  int    // the process whose cgroups are used (the process itself for real)
}

func (f cgroupFS) path(p string) string { return filepath.Join(f.root, p) }

// serverCgroup is the leaf a delegated cgroup v2 moves kiln into, so that RUN cgroups
// can be its siblings: a cgroup v2 with processes of its own cannot hand controllers
// to children (the "no internal processes" rule).
const serverCgroup = "kiln-server"

// OpenCgroups finds the cgroup of this process in which kiln may create RUN cgroups:
// its own cgroup v2 (delegated, as a Kubernetes pod's or a systemd Delegate=yes
// unit's is; kiln moves itself into a leaf child first) or, on a cgroup v1 host, its
// own cgroups of the memory and pids hierarchies (cpu and cpuset when mounted). It
// fails when none is writable; the caller then warns and refuses cgroup limits.
func OpenCgroups() (*Cgroups, error) {
	return openCgroups(cgroupFS{root: "/", pid: os.Getpid()})
}

func openCgroups(fsys cgroupFS) (*Cgroups, error) {
	mounts := parseMountInfo(readFile(fsys.path("proc/self/mountinfo")))
	own := parseProcCgroup(readFile(fsys.path(fmt.Sprintf("proc/%d/cgroup", fsys.pid))))
	v1 := map[string]string{}
	var v2mount string
	for _, m := range mounts {
		switch m.fstype {
		case "cgroup2":
			if v2mount == "" {
				v2mount = m.point
			}
		case "cgroup":
			for _, ctl := range []string{"memory", "pids", "cpu", "cpuset"} {
				if !hasOption(m.options, ctl) || v1[ctl] != "" {
					continue
				}
				p, ok := own[ctl]
				if !ok {
					continue
				}
				// Inside a cgroup namespace the mount's root is our own cgroup already.
				v1[ctl] = filepath.Join(m.point, strings.TrimPrefix(p, m.root))
			}
		}
	}
	if v1["memory"] != "" || v1["pids"] != "" {
		// A hybrid host: the controllers live in the v1 hierarchies.
		for _, ctl := range []string{"memory", "pids"} {
			dir := v1[ctl]
			if dir == "" {
				return nil, fmt.Errorf("cgroup v1: no %s hierarchy is mounted", ctl)
			}
			if err := unix.Access(fsys.path(dir), unix.W_OK); err != nil {
				return nil, fmt.Errorf("cgroup v1: %s is not writable: %w", dir, err)
			}
		}
		c := &Cgroups{v1: map[string]string{}}
		for ctl, dir := range v1 {
			if unix.Access(fsys.path(dir), unix.W_OK) == nil {
				c.v1[ctl] = fsys.path(dir)
			}
		}
		return c, nil
	}
	p, ok := own[""]
	if v2mount == "" || !ok {
		return nil, errors.New("no cgroup v2 or v1 memory hierarchy is mounted")
	}
	// Opened before (by this process or a kiln before an exec), kiln sits in its leaf
	// already: the delegated cgroup is the leaf's parent.
	if filepath.Base(p) == serverCgroup {
		p = filepath.Dir(p)
	}
	dir := fsys.path(filepath.Join(v2mount, p))
	// The host's root cgroup may hold processes and still hand controllers down; its
	// processes (the whole machine's) are never moved.
	hostRoot := p == "/" && !inNewNamespace(hostView{root: fsys.root, only: "cgroup"})
	return delegateV2(dir, !hostRoot)
}

// delegateV2 prepares dir, this process's cgroup v2, for RUN cgroups: every process
// in it moves to the leaf kiln-server, and the controllers kiln needs are enabled for
// children.
func delegateV2(dir string, moveProcs bool) (*Cgroups, error) {
	avail := strings.Fields(string(readFile(filepath.Join(dir, "cgroup.controllers"))))
	for _, need := range []string{"memory", "pids"} {
		if !contains(avail, need) {
			return nil, fmt.Errorf("cgroup v2 %s: the %s controller is not delegated to it (cgroup.controllers: %q)", dir, need, strings.Join(avail, " "))
		}
	}
	if err := unix.Access(filepath.Join(dir, "cgroup.subtree_control"), unix.W_OK); err != nil {
		return nil, fmt.Errorf("cgroup v2 %s is not writable (not delegated to kiln's user): %w", dir, err)
	}
	procs := strings.Fields(string(readFile(filepath.Join(dir, "cgroup.procs"))))
	if len(procs) > 0 && moveProcs {
		leaf := filepath.Join(dir, serverCgroup)
		if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("cgroup v2: %w", err)
		}
		for _, pid := range procs {
			err := os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte(pid), 0o644)
			if err != nil && !errors.Is(err, unix.ESRCH) {
				return nil, fmt.Errorf("cgroup v2: move process %s into %s: %w", pid, leaf, err)
			}
		}
	}
	for _, ctl := range []string{"memory", "pids", "cpu", "cpuset"} {
		if !contains(avail, ctl) {
			continue
		}
		err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+"+ctl), 0o644)
		if err != nil && (ctl == "memory" || ctl == "pids") {
			return nil, fmt.Errorf("cgroup v2 %s: enable the %s controller for children: %w", dir, ctl, err)
		}
	}
	return &Cgroups{v2: dir}, nil
}

// String says where RUN cgroups are created, for the server's start-up log.
func (c *Cgroups) String() string {
	if c.v2 != "" {
		return "cgroup v2 " + c.v2
	}
	var parts []string
	for _, ctl := range []string{"memory", "pids", "cpu", "cpuset"} {
		if d := c.v1[ctl]; d != "" {
			parts = append(parts, d)
		}
	}
	return "cgroup v1 " + strings.Join(parts, ", ")
}

// supports reports whether the controller behind a limit parameter is available.
func (c *Cgroups) supports(param string) bool {
	ctl := map[string]string{
		"memory": "memory", "memswap": "memory", "pids": "pids",
		"cpushares": "cpu", "cpuquota": "cpu", "cpuperiod": "cpu", "cpusetcpus": "cpuset", "cpusetmems": "cpuset",
	}[param]
	if c.v2 != "" {
		return contains(strings.Fields(string(readFile(filepath.Join(c.v2, "cgroup.subtree_control")))), ctl)
	}
	return c.v1[ctl] != ""
}

// parseProcCgroup reads /proc/PID/cgroup: controller (or "" for v2) → path.
func parseProcCgroup(data []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			out[""] = parts[2]
			continue
		}
		for _, ctl := range strings.Split(parts[1], ",") {
			out[ctl] = parts[2]
		}
	}
	return out
}

func hasOption(options, name string) bool {
	return contains(strings.Split(options, ","), name)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func readFile(p string) []byte {
	data, _ := os.ReadFile(p)
	return data
}

// readKeyed reads a "key value" line's value from a cgroup file such as memory.events.
func readKeyed(p, key string) int64 {
	for _, line := range strings.Split(string(readFile(p)), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == key {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
