package isolation

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// runCgroup is the cgroup of one RUN: one directory on cgroup v2, one per controller
// on v1. It is created with the limits, receives the RUN's first process before that
// process execs the command, and is emptied and removed after the RUN.
type runCgroup struct {
	v2     bool
	dirs   map[string]string // controller ("" on v2) → directory
	limits Limits
}

// newRunCgroup creates a RUN cgroup with l's limits. A limit whose controller is
// missing is refused, named by its parameter.
func (c *Cgroups) newRunCgroup(l Limits) (rc *runCgroup, err error) {
	for _, p := range l.NeedsCgroup() {
		if !c.supports(p) {
			return nil, fmt.Errorf("%s: the cgroup controller for this limit is not available to kiln (%s)", p, c)
		}
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "kiln-run-" + hex.EncodeToString(b[:])
	rc = &runCgroup{v2: c.v2 != "", dirs: map[string]string{}, limits: l}
	if rc.v2 {
		rc.dirs[""] = filepath.Join(c.v2, name)
	} else {
		for ctl, parent := range c.v1 {
			rc.dirs[ctl] = filepath.Join(parent, name)
		}
	}
	defer func() {
		if err != nil {
			rc.remove()
		}
	}()
	for _, dir := range rc.dirs {
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create RUN cgroup: %w", err)
		}
	}
	if rc.v2 {
		err = rc.setV2()
	} else {
		err = rc.setV1(c)
	}
	return rc, err
}

func (rc *runCgroup) write(ctl, file, value string) error {
	p := filepath.Join(rc.dirs[ctl], file)
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return fmt.Errorf("set %s to %s: %w", p, value, err)
	}
	return nil
}

func (rc *runCgroup) exists(ctl, file string) bool {
	_, err := os.Stat(filepath.Join(rc.dirs[ctl], file))
	return err == nil
}

func (rc *runCgroup) setV1(c *Cgroups) error {
	l := rc.limits
	var sets []struct{ ctl, file, value string }
	add := func(ctl, file, value string) {
		sets = append(sets, struct{ ctl, file, value string }{ctl, file, value})
	}
	if l.Memory > 0 {
		add("memory", "memory.limit_in_bytes", strconv.FormatInt(l.Memory, 10))
		if sw := memSwapTotal(l); sw > 0 && rc.exists("memory", "memory.memsw.limit_in_bytes") {
			add("memory", "memory.memsw.limit_in_bytes", strconv.FormatInt(sw, 10))
		} else if l.MemorySwap > 0 {
			return errors.New("memswap: this host's cgroup v1 has no swap accounting (memory.memsw.limit_in_bytes)")
		}
	}
	if l.Pids > 0 {
		add("pids", "pids.max", strconv.FormatInt(l.Pids, 10))
	}
	if l.CPUShares > 0 {
		add("cpu", "cpu.shares", strconv.FormatInt(l.CPUShares, 10))
	}
	if l.CPUPeriod > 0 {
		add("cpu", "cpu.cfs_period_us", strconv.FormatInt(l.CPUPeriod, 10))
	}
	if l.CPUQuota > 0 {
		add("cpu", "cpu.cfs_quota_us", strconv.FormatInt(l.CPUQuota, 10))
	}
	if _, ok := rc.dirs["cpuset"]; ok {
		// A v1 cpuset cgroup takes no process until both sets are filled in.
		cpus := l.CPUSetCPUs
		if cpus == "" {
			cpus = strings.TrimSpace(string(readFile(filepath.Join(c.v1["cpuset"], "cpuset.cpus"))))
		}
		mems := l.CPUSetMems
		if mems == "" {
			mems = strings.TrimSpace(string(readFile(filepath.Join(c.v1["cpuset"], "cpuset.mems"))))
		}
		add("cpuset", "cpuset.cpus", cpus)
		add("cpuset", "cpuset.mems", mems)
	}
	for _, s := range sets {
		if err := rc.write(s.ctl, s.file, s.value); err != nil {
			return err
		}
	}
	return nil
}

func (rc *runCgroup) setV2() error {
	l := rc.limits
	if l.Memory > 0 {
		if err := rc.write("", "memory.max", strconv.FormatInt(l.Memory, 10)); err != nil {
			return err
		}
		if rc.exists("", "memory.swap.max") {
			swap := "max"
			if sw := memSwapTotal(l); sw > 0 {
				swap = strconv.FormatInt(sw-l.Memory, 10)
			}
			if err := rc.write("", "memory.swap.max", swap); err != nil {
				return err
			}
		}
		// One process killed for memory takes the whole RUN with it, as a build
		// step cannot go on without a part of itself.
		_ = rc.write("", "memory.oom.group", "1")
	}
	if l.Pids > 0 {
		if err := rc.write("", "pids.max", strconv.FormatInt(l.Pids, 10)); err != nil {
			return err
		}
	}
	if l.CPUShares > 0 {
		// The conversion runc and Docker use: shares 2..262144 onto weight 1..10000.
		weight := 1 + ((l.CPUShares-2)*9999)/262142
		if err := rc.write("", "cpu.weight", strconv.FormatInt(weight, 10)); err != nil {
			return err
		}
	}
	if l.CPUQuota > 0 || l.CPUPeriod > 0 {
		quota, period := "max", l.CPUPeriod
		if l.CPUQuota > 0 {
			quota = strconv.FormatInt(l.CPUQuota, 10)
		}
		if period == 0 {
			period = 100000
		}
		if err := rc.write("", "cpu.max", quota+" "+strconv.FormatInt(period, 10)); err != nil {
			return err
		}
	}
	if l.CPUSetCPUs != "" {
		if err := rc.write("", "cpuset.cpus", l.CPUSetCPUs); err != nil {
			return err
		}
	}
	if l.CPUSetMems != "" {
		if err := rc.write("", "cpuset.mems", l.CPUSetMems); err != nil {
			return err
		}
	}
	return nil
}

// memSwapTotal is memory plus swap as Docker computes it: -1 unlimited (0 here),
// unset twice the memory.
func memSwapTotal(l Limits) int64 {
	switch {
	case l.MemorySwap > 0:
		return l.MemorySwap
	case l.MemorySwap < 0:
		return 0
	}
	return 2 * l.Memory
}

// add moves process pid (and its threads) into the cgroup.
func (rc *runCgroup) add(pid int) error {
	for _, dir := range rc.dirs {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("move the RUN into its cgroup %s: %w", dir, err)
		}
	}
	return nil
}

// limitHit returns the limit that stopped the RUN, if one did: a process killed by
// the kernel for memory, or a fork refused by the pids limit.
func (rc *runCgroup) limitHit() *LimitError {
	if rc.limits.Memory > 0 {
		var kills int64
		if rc.v2 {
			kills = readKeyed(filepath.Join(rc.dirs[""], "memory.events"), "oom_kill")
		} else {
			kills = readKeyed(filepath.Join(rc.dirs["memory"], "memory.oom_control"), "oom_kill")
		}
		if kills > 0 {
			return &LimitError{Limit: "memory", Value: rc.limits.Memory}
		}
	}
	if rc.limits.Pids > 0 {
		dir := rc.dirs["pids"]
		if rc.v2 {
			dir = rc.dirs[""]
		}
		if readKeyed(filepath.Join(dir, "pids.events"), "max") > 0 {
			return &LimitError{Limit: "pids", Value: rc.limits.Pids}
		}
	}
	return nil
}

// remove kills whatever is left in the cgroup and removes it. The RUN's first process
// is PID 1 of its namespace, so its end has killed the rest already; this is for the
// stragglers the kernel has not reaped yet.
func (rc *runCgroup) remove() error {
	var errs []error
	for _, dir := range rc.dirs {
		if rc.v2 {
			_ = os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0o644)
		}
		var err error
		for i := 0; i < 200; i++ {
			for _, pid := range strings.Fields(string(readFile(filepath.Join(dir, "cgroup.procs")))) {
				if n, perr := strconv.Atoi(pid); perr == nil && n > 0 {
					_ = unix.Kill(n, unix.SIGKILL)
				}
			}
			if err = unix.Rmdir(dir); err == nil || errors.Is(err, unix.ENOENT) {
				err = nil
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove RUN cgroup %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}
