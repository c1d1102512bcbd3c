package main

import (
	"fmt"
	"strings"
)

// refError says why the image reference or registry value given to flag is refused,
// wrapping go-containerregistry's err with its offending part quoted (quoteBadPart).
func refError(flag, value string, err error) error {
	return fmt.Errorf("%s %q: %w", flag, value, quoteBadPart(err))
}

// quoteBadPart rewrites go-containerregistry's "reason: part" message when the part,
// left bare, would make it end as if the reason were missing: at a colon (an empty part,
// as "reg:5000/" has no repository, or one such as "#:") or at a pair of quotes. Such a
// part is dropped (every caller quotes the whole value first) and an empty one named
// as empty. Other messages stay as they are.
func quoteBadPart(err error) error {
	reason, part, ok := strings.Cut(err.Error(), ": ")
	part = strings.TrimSpace(part)
	switch {
	case !ok:
		return err
	case part == "":
		return &badPartError{msg: reason + " (that part is empty)", err: err}
	case strings.HasSuffix(part, ":") || strings.HasSuffix(part, `"`):
		return &badPartError{msg: reason, err: err}
	}
	return err
}

// badPartError is quoteBadPart's message over the original error.
type badPartError struct {
	msg string
	err error
}

func (e *badPartError) Error() string { return e.msg }
func (e *badPartError) Unwrap() error { return e.err }
