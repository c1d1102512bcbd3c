package snapshot

import "fmt"

// Mode selects how a walk decides that a path changed.
type Mode int

const (
	// ModeRedo (the default, kaniko's "redo") compares stat metadata: type, mode,
	// owner, size, mtime, ctime, inode (with its birth time), link count and link
	// target: one statx per path, no file content read. The ctime also covers
	// xattrs such as security.capability, since setting one changes it.
	ModeRedo Mode = iota
	// ModeFull (kaniko's "full") also compares the content hash of regular files, for
	// filesystems whose timestamps are too coarse for metadata alone.
	ModeFull
	// ModeTime (kaniko's "time") compares only type, mtime and size.
	ModeTime
)

// ParseMode parses kaniko's --snapshot-mode values: "redo", "full", "time" ("" = redo).
func ParseMode(s string) (Mode, error) {
	switch s {
	case "", "redo":
		return ModeRedo, nil
	case "full":
		return ModeFull, nil
	case "time":
		return ModeTime, nil
	}
	return 0, fmt.Errorf("unknown snapshot mode %q (want full, redo or time)", s)
}

// String returns the flag spelling of m.
func (m Mode) String() string {
	switch m {
	case ModeFull:
		return "full"
	case ModeTime:
		return "time"
	}
	return "redo"
}
