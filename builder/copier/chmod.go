package copier

import (
	"fmt"
	"os"
	"strconv"
)

// ParseChmod parses a --chmod value: an octal mode of up to four digits, setuid,
// setgid and sticky bits included.
func ParseChmod(s string) (os.FileMode, error) {
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o7777 {
		return 0, fmt.Errorf("invalid --chmod value %q: want an octal mode such as 0755", s)
	}
	return fromUnixMode(uint32(m)), nil
}

// fromUnixMode converts st_mode permission bits to an os.FileMode.
func fromUnixMode(m uint32) os.FileMode {
	mode := os.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= os.ModeSticky
	}
	return mode
}
