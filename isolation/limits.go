package isolation

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Limits are the resource limits of one RUN's process tree. Zero values mean "no
// limit". Everything but ShmSize and Ulimits is enforced through a cgroup of the RUN's
// own (see Cgroups); a runner without one refuses such limits, naming them.
type Limits struct {
	// Memory is the memory limit in bytes (docker build --memory).
	Memory int64
	// MemorySwap is memory plus swap in bytes (--memory-swap); -1 is unlimited swap,
	// 0 Docker's default of as much swap as memory.
	MemorySwap int64
	// Pids is the maximum number of processes and threads (--build-pids).
	Pids int64
	// CPUShares is the relative CPU weight (--cpu-shares, 2 to 262144; 1024 is even).
	CPUShares int64
	// CPUQuota and CPUPeriod are microseconds of CPU time per period (--cpu-quota,
	// --cpu-period; period 0 means 100ms).
	CPUQuota, CPUPeriod int64
	// CPUSetCPUs restricts RUN to these CPUs, as in "0-2,4" (--cpuset-cpus).
	CPUSetCPUs string
	// CPUSetMems restricts RUN to these NUMA memory nodes (--cpuset-mems).
	CPUSetMems string
	// ShmSize is the size of RUN's /dev/shm tmpfs in bytes (0: 64MiB, Docker's default).
	ShmSize int64
	// Ulimits are set with setrlimit in RUN's process before it execs (--ulimit).
	Ulimits []Ulimit
}

// Ulimit is one resource limit for setrlimit, named as docker's --ulimit names it.
type Ulimit struct {
	Name       string
	Soft, Hard int64
}

// rlimitResources maps docker's --ulimit names to setrlimit resources.
func rlimitResources() map[string]int {
	return map[string]int{
		"core": unix.RLIMIT_CORE, "cpu": unix.RLIMIT_CPU, "data": unix.RLIMIT_DATA,
		"fsize": unix.RLIMIT_FSIZE, "locks": unix.RLIMIT_LOCKS, "memlock": unix.RLIMIT_MEMLOCK,
		"msgqueue": unix.RLIMIT_MSGQUEUE, "nice": unix.RLIMIT_NICE, "nofile": unix.RLIMIT_NOFILE,
		"nproc": unix.RLIMIT_NPROC, "rss": unix.RLIMIT_RSS, "rtprio": unix.RLIMIT_RTPRIO,
		"rttime": unix.RLIMIT_RTTIME, "sigpending": unix.RLIMIT_SIGPENDING, "stack": unix.RLIMIT_STACK,
	}
}

// Check validates u: a known name and 0 <= soft <= hard (-1 is unlimited).
func (u Ulimit) Check() error {
	if _, ok := rlimitResources()[u.Name]; !ok {
		names := make([]string, 0, 16)
		for n := range rlimitResources() {
			names = append(names, n)
		}
		sort.Strings(names)
		return fmt.Errorf("ulimit %q: unknown name (want one of %s)", u.Name, strings.Join(names, ", "))
	}
	if u.Soft < -1 || u.Hard < -1 || (u.Hard != -1 && (u.Soft == -1 || u.Soft > u.Hard)) {
		return fmt.Errorf("ulimit %s: soft limit %d must not exceed hard limit %d", u.Name, u.Soft, u.Hard)
	}
	return nil
}

// ParseUlimit parses docker's --ulimit spelling, "name=soft[:hard]".
func ParseUlimit(s string) (Ulimit, error) {
	name, val, ok := strings.Cut(s, "=")
	if !ok {
		return Ulimit{}, fmt.Errorf("ulimit %q: want name=soft[:hard]", s)
	}
	softS, hardS, hasHard := strings.Cut(val, ":")
	soft, err := strconv.ParseInt(softS, 10, 64)
	if err != nil {
		return Ulimit{}, fmt.Errorf("ulimit %q: bad soft limit: %w", s, err)
	}
	hard := soft
	if hasHard {
		if hard, err = strconv.ParseInt(hardS, 10, 64); err != nil {
			return Ulimit{}, fmt.Errorf("ulimit %q: bad hard limit: %w", s, err)
		}
	}
	u := Ulimit{Name: name, Soft: soft, Hard: hard}
	return u, u.Check()
}

// NeedsCgroup lists the limits of l that only a cgroup can enforce, by the name of
// their /build parameter (pids: kiln serve --build-pids).
func (l Limits) NeedsCgroup() []string {
	var names []string
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"memory", l.Memory > 0}, {"memswap", l.MemorySwap > 0}, {"pids", l.Pids > 0},
		{"cpushares", l.CPUShares > 0}, {"cpuquota", l.CPUQuota > 0}, {"cpuperiod", l.CPUPeriod > 0},
		{"cpusetcpus", l.CPUSetCPUs != ""}, {"cpusetmems", l.CPUSetMems != ""},
	} {
		if f.set {
			names = append(names, f.name)
		}
	}
	return names
}

// rlimit is one setrlimit call of the chroot child.
type rlimit struct {
	Resource   int
	Soft, Hard uint64
}

func (l Limits) rlimits() []rlimit {
	out := make([]rlimit, 0, len(l.Ulimits))
	for _, u := range l.Ulimits {
		out = append(out, rlimit{Resource: rlimitResources()[u.Name], Soft: rlimValue(u.Soft), Hard: rlimValue(u.Hard)})
	}
	return out
}

func rlimValue(v int64) uint64 {
	if v < 0 {
		return unix.RLIM_INFINITY
	}
	return uint64(v)
}

// LimitError says a RUN was stopped by one of the build's resource limits.
type LimitError struct {
	// Limit names the limit: "memory" or "pids".
	Limit string
	// Value is the limit as set.
	Value int64
}

func (e *LimitError) Error() string {
	switch e.Limit {
	case "memory":
		return fmt.Sprintf("RUN was killed: the build's memory limit (%s) was reached", FormatBytes(e.Value))
	case "pids":
		return fmt.Sprintf("RUN reached the build's process limit (%d processes): a fork failed", e.Value)
	}
	return fmt.Sprintf("RUN reached the build's %s limit (%d)", e.Limit, e.Value)
}

// FormatBytes writes n in the largest binary unit that divides it ("512MiB").
func FormatBytes(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}
