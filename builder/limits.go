package builder

import (
	"fmt"
	"strings"
	"time"

	"github.com/kiln-build/kiln/isolation"
)

// Limits are a build's resource limits (see isolation.Limits); the alias lets front
// doors fill Request.Limits without importing isolation.
type Limits = isolation.Limits

// Ulimit is one --ulimit (see isolation.Ulimit).
type Ulimit = isolation.Ulimit

// ParseUlimit parses docker's --ulimit spelling, "name=soft[:hard]".
func ParseUlimit(s string) (Ulimit, error) { return isolation.ParseUlimit(s) }

// minMemory is dockerd's smallest memory limit (daemon/daemon_unix.go).
const minMemory = 6 << 20

// effectiveLimits checks the request's resource limits as dockerd checks a container's,
// puts them under the workspace's caps, and refuses what the workspace cannot apply.
func effectiveLimits(l isolation.Limits, ws Workspace) (isolation.Limits, error) {
	switch {
	case l.Memory < 0 || l.Pids < 0 || l.CPUShares < 0 || l.CPUQuota < 0 || l.CPUPeriod < 0 || l.ShmSize < 0:
		return l, fmt.Errorf("resource limits must not be negative (memory %d, cpushares %d, cpuquota %d, cpuperiod %d, shmsize %d)",
			l.Memory, l.CPUShares, l.CPUQuota, l.CPUPeriod, l.ShmSize)
	case l.Memory > 0 && l.Memory < minMemory:
		return l, fmt.Errorf("memory: Minimum memory limit allowed is 6MB")
	case l.MemorySwap > 0 && l.Memory == 0:
		return l, fmt.Errorf("memswap: You should always set the Memory limit when using Memoryswap limit, see usage")
	case l.MemorySwap > 0 && l.MemorySwap < l.Memory:
		return l, fmt.Errorf("memswap: Minimum memoryswap limit should be larger than memory limit, see usage")
	case l.CPUPeriod != 0 && (l.CPUPeriod < 1000 || l.CPUPeriod > 1000000):
		return l, fmt.Errorf("cpuperiod: CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
	case l.CPUQuota != 0 && l.CPUQuota < 1000:
		return l, fmt.Errorf("cpuquota: CPU cfs quota can not be less than 1ms (i.e. 1000)")
	}
	for _, u := range l.Ulimits {
		if err := u.Check(); err != nil {
			return l, fmt.Errorf("ulimits: %w", err)
		}
	}
	if ws.MaxMemory > 0 {
		if l.Memory == 0 || l.Memory > ws.MaxMemory {
			l.Memory = ws.MaxMemory
		}
		// Memory plus swap stays under the cap too: the cap is what the host can give.
		total := l.MemorySwap
		if total == 0 {
			total = 2 * l.Memory
		}
		if total < 0 || total > ws.MaxMemory {
			total = ws.MaxMemory
		}
		l.MemorySwap = max(total, l.Memory)
	}
	if ws.MaxPids > 0 && (l.Pids == 0 || l.Pids > ws.MaxPids) {
		l.Pids = ws.MaxPids
	}
	cg := l.NeedsCgroup()
	switch {
	case ws.Isolation == isolation.InPlace && (len(cg) > 0 || len(l.Ulimits) > 0 || l.ShmSize > 0):
		names := cg
		if len(l.Ulimits) > 0 {
			names = append(names, "ulimits")
		}
		if l.ShmSize > 0 {
			names = append(names, "shmsize")
		}
		return l, fmt.Errorf("%s: resource limits need chroot isolation; in-place builds run under the server's own limits", strings.Join(names, ", "))
	case len(cg) > 0 && ws.Cgroups == nil:
		return l, fmt.Errorf("%s: resource limits need a writable cgroup, and this kiln has none (see docs/security.md, \"Resource limits\")", strings.Join(cg, ", "))
	}
	return l, nil
}

// TimeoutError is how a build cancelled by the workspace's Timeout ends.
type TimeoutError struct {
	Timeout time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("the build was cancelled: it ran longer than the server's build timeout (--build-timeout %s)", e.Timeout)
}
