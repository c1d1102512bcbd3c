package isolation

import "fmt"

// Mode is how builds are isolated.
type Mode int

const (
	// Chroot gives each build root its own directory; RUN executes via chroot in new
	// mount and PID namespaces. Needs root (CAP_SYS_CHROOT, CAP_SYS_ADMIN), if only of
	// a user namespace (EnterUserNamespace).
	Chroot Mode = iota + 1
	// InPlace uses the container's own "/" as the build root (kaniko's model).
	InPlace
)

// ParseMode parses --isolation values "chroot" and "inplace". "auto" is resolved by
// the front door (see InContainer), not here.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "chroot":
		return Chroot, nil
	case "inplace", "in-place":
		return InPlace, nil
	}
	return 0, fmt.Errorf("unknown isolation %q (want chroot or inplace)", s)
}

// String returns the flag spelling of m.
func (m Mode) String() string {
	switch m {
	case Chroot:
		return "chroot"
	case InPlace:
		return "inplace"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}
