package isolation

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/test/testworld"
)

// An executable for another architecture, with no emulator registered in binfmt_misc,
// does not start: both runners report a *StartError that carries ENOEXEC, so the
// builder can say why, and exit code 126.
func TestForeignExecutable(t *testing.T) {
	_, elf := testworld.ForeignExecutable(t)
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, path string) error
	}{
		{name: "chroot", run: func(t *testing.T, _ string) error {
			requireRoot(t)
			root := busyboxRoot(t)
			if err := os.WriteFile(filepath.Join(root, "bin/foreign"), elf, 0o755); err != nil {
				t.Fatal(err)
			}
			_, _, err := runChroot(t, root, Process{Args: []string{"/bin/foreign"}})
			return err
		}},
		{name: "in place", run: func(t *testing.T, path string) error {
			return NewInPlace().Run(context.Background(), asSelf(t, Process{Args: []string{path}, Env: []string{}}))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "foreign")
			if err := os.WriteFile(path, elf, 0o755); err != nil {
				t.Fatal(err)
			}
			err := tc.run(t, path)
			checkErr(t, err, codeNotExecutable, "", "exec format error")
			var se *StartError
			if !errors.As(err, &se) || !errors.Is(err, unix.ENOEXEC) {
				t.Errorf("error %#v: want a *StartError that is ENOEXEC", err)
			}
		})
	}
}

// Errors before the exec carry no errno; a missing program is ENOENT.
func TestStartErrorErrno(t *testing.T) {
	t.Parallel()
	err := NewInPlace().Run(context.Background(), asSelf(t, Process{Args: []string{"/nonexistent/kiln-test"}, Env: []string{}}))
	checkErr(t, err, codeNotFound, "", "no such file or directory")
	if errors.Is(err, unix.ENOEXEC) || !errors.Is(err, unix.ENOENT) {
		t.Errorf("error %v: want ENOENT, not ENOEXEC", err)
	}
}
