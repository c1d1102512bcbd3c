package isolation

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// defaultPath is used when a process environment has no PATH: Docker's daemon adds
// the same default to every container, so `RUN foo` finds /usr/bin/foo regardless.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Exit codes for a command that never started, as Docker (and POSIX shells) report them.
const (
	codeNotExecutable = 126
	codeNotFound      = 127
)

// startError is a command that could not be started; it becomes a *StartError, which
// wraps an *ExitError so the builder reports it like a failed RUN, with runc's wording.
type startError struct {
	Message string
	Code    int
	// Errno is execve's error number, 0 when the failure came before the exec.
	Errno unix.Errno `json:",omitempty"`
}

func (e *startError) err() error {
	return &StartError{Message: e.Message, Code: e.Code, Errno: e.Errno}
}

// StartError is a RUN command that never ran: its program was not found, could not be
// executed, or is not a format this kernel runs (ENOEXEC: another architecture with no
// emulator registered in binfmt_misc). errors.As finds the *ExitError with Docker's
// code (127 not found, 126 otherwise) and errors.Is the errno.
type StartError struct {
	// Message says what failed, in runc's words: `exec: "/bin/sh": exec format error`.
	Message string
	// Code is the exit code reported for it.
	Code int
	// Errno is execve's error number, 0 when the failure came before the exec.
	Errno unix.Errno
}

func (e *StartError) Error() string {
	return fmt.Sprintf("%s: exit code %d", e.Message, e.Code)
}

// Unwrap gives the exit code and the errno to errors.As and errors.Is.
func (e *StartError) Unwrap() []error {
	errs := []error{&ExitError{Code: e.Code}}
	if e.Errno != 0 {
		errs = append(errs, e.Errno)
	}
	return errs
}

// pathFromEnv returns the PATH of env; the last assignment wins, as in os/exec.
func pathFromEnv(env []string) string {
	path, found := "", false
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path, found = v, true
		}
	}
	if !found {
		return defaultPath
	}
	return path
}

// lookPath resolves file as execve would after a PATH search by a shell: a name with a
// slash is used as is, otherwise each PATH entry is tried in order (an empty entry
// meaning "."). Relative results are joined with dir, the process's working directory.
// It runs in the process's own view of the filesystem: inside the chroot child, or on
// "/" for in-place builds.
func lookPath(file, pathEnv, dir string) (string, *startError) {
	if file == "" {
		return "", &startError{Message: `exec: "": executable file not found in $PATH`, Code: codeNotFound}
	}
	if strings.Contains(file, "/") {
		return inDir(file, dir), nil
	}
	denied := ""
	for _, d := range filepath.SplitList(pathEnv) {
		if d == "" {
			d = "."
		}
		candidate := inDir(filepath.Join(d, file), dir)
		switch err := executable(candidate); {
		case err == nil:
			return candidate, nil
		case errors.Is(err, fs.ErrPermission) && denied == "":
			denied = candidate
		}
	}
	if denied != "" {
		// Like bash: a match without execute permission is reported as such (126)
		// rather than as missing.
		return "", &startError{Message: fmt.Sprintf("exec: %q: permission denied", denied), Code: codeNotExecutable}
	}
	return "", &startError{Message: fmt.Sprintf("exec: %q: executable file not found in $PATH", file), Code: codeNotFound}
}

func inDir(p, dir string) string {
	if filepath.IsAbs(p) || dir == "" {
		return p
	}
	return filepath.Join(dir, p)
}

// executable reports nil when p is a regular file the caller may execute, judged with
// the effective IDs (AT_EACCESS) as execve does.
func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fs.ErrPermission
	}
	if err := unix.Faccessat(unix.AT_FDCWD, p, unix.X_OK, unix.AT_EACCESS); err != nil {
		return fs.ErrPermission
	}
	return nil
}

// execFailure maps an execve error for path to a startError with Docker's exit code.
func execFailure(path string, err error) *startError {
	code := codeNotExecutable
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		code = codeNotFound
	}
	var errno unix.Errno
	msg := err.Error()
	if errors.As(err, &errno) {
		msg = errno.Error()
	}
	return &startError{Message: fmt.Sprintf("exec: %q: %s", path, msg), Code: code, Errno: errno}
}
