package isolation

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// dockerCapabilities is Docker's default capability set for containers. A RUN as root
// gets exactly these, so that it can neither reconfigure the host (mount, load modules,
// set the clock) nor behave differently from `docker build`.
func dockerCapabilities() map[int]bool {
	return map[int]bool{
		unix.CAP_CHOWN:            true,
		unix.CAP_DAC_OVERRIDE:     true,
		unix.CAP_FSETID:           true,
		unix.CAP_FOWNER:           true,
		unix.CAP_MKNOD:            true,
		unix.CAP_NET_RAW:          true,
		unix.CAP_SETGID:           true,
		unix.CAP_SETUID:           true,
		unix.CAP_SETFCAP:          true,
		unix.CAP_SETPCAP:          true,
		unix.CAP_NET_BIND_SERVICE: true,
		unix.CAP_SYS_CHROOT:       true,
		unix.CAP_KILL:             true,
		unix.CAP_AUDIT_WRITE:      true,
	}
}

// dropCapabilities removes every other capability from this thread's bounding set.
// Root's capabilities after exec are its bounding set, and a non-root user has none,
// so this alone fixes what the command may do.
func dropCapabilities() error {
	last := unix.CAP_LAST_CAP
	if data, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
			last = n
		}
	}
	keep := dockerCapabilities()
	for c := 0; c <= last; c++ {
		if keep[c] {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("drop capability %d: %w", c, err)
		}
	}
	return nil
}
