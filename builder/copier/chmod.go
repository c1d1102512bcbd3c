package copier

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	mode "github.com/tonistiigi/dchapes-mode"
)

// Chmod is a parsed --chmod value: an octal mode that replaces every copied path's
// permissions, or a symbolic one (u+x, go-w, a=rX, ...) applied to each path's own mode.
type Chmod struct {
	octal    os.FileMode
	symbolic *mode.Set
}

// OctalChmod is the --chmod value that sets every copied path's permissions to m.
func OctalChmod(m os.FileMode) *Chmod { return &Chmod{octal: m} }

// ParseChmod parses a --chmod value as BuildKit does: an octal mode of up to four
// digits (setuid, setgid and sticky bits included), or else a symbolic mode in
// chmod(1)'s syntax, applied without a umask. A numeric value out of range gets
// BuildKit's octal message.
func ParseChmod(s string) (*Chmod, error) {
	m, err := strconv.ParseUint(s, 8, 32)
	nonOctal := fmt.Errorf("invalid chmod parameter: '%v'. it should be octal string and between 0 and 07777", s)
	if err == nil {
		if m > 0o7777 {
			return nil, nonOctal
		}
		return &Chmod{octal: fromUnixMode(uint32(m))}, nil
	}
	set, err := mode.ParseWithUmask(s, 0)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) {
			return nil, nonOctal
		}
		return nil, fmt.Errorf("invalid --chmod value %q: %w", s, err)
	}
	return &Chmod{symbolic: &set}, nil
}

// apply returns the permission bits (setuid, setgid and sticky included) a path whose
// source mode is old gets.
func (c *Chmod) apply(old os.FileMode) os.FileMode {
	const bits = os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky
	if c.symbolic == nil {
		return c.octal
	}
	return c.symbolic.Apply(old) & bits
}

// dirMode is the mode of a directory the copy creates without a source directory
// behind it: the octal mode, or 0755 for a symbolic one (BuildKit creates such
// directories 0755 and applies a symbolic mode only to copied paths).
func (c *Chmod) dirMode() os.FileMode {
	if c.symbolic == nil {
		return c.octal
	}
	return 0o755
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
