package builder

import (
	"errors"
	"fmt"
)

// InstructionError is an error that happened while building one Dockerfile
// instruction. Its message names the Dockerfile and line, so a user can find it.
type InstructionError struct {
	File        string // Dockerfile name as given to the build
	Line        int    // 1-based; 0 when unknown
	EndLine     int    // the instruction's last line when it spans several; else 0
	Instruction string // the instruction as written, e.g. "RUN make"
	Err         error
}

func (e *InstructionError) Error() string {
	where := e.File
	if where == "" {
		where = "Dockerfile"
	}
	if e.Line > 0 {
		where = fmt.Sprintf("%s:%d", where, e.Line)
	}
	if e.Instruction == "" {
		return fmt.Sprintf("%s: %v", where, e.Err)
	}
	return fmt.Sprintf("%s: %s: %v", where, truncate(e.Instruction, 120), e.Err)
}

func (e *InstructionError) Unwrap() error { return e.Err }

// ErrUnsupported marks Dockerfile features the parser accepts but kiln does not
// implement yet. Such instructions fail the build; they are never silently ignored.
var ErrUnsupported = errors.New("not supported by kiln yet")

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
