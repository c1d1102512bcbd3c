package isolation

import (
	"bytes"
	"io"
	"testing"
)

func TestExitErrorMessage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  ExitError
		want string
	}{
		{ExitError{Code: 3}, "exit code 3"},
		{ExitError{Code: 137, Signal: "SIGKILL"}, "exit code 137 (killed by SIGKILL)"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%+v.Error() = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// uncomparable is a writer whose dynamic type cannot be compared with ==.
type uncomparable []string

func (u uncomparable) Write(p []byte) (int, error) { return len(p), nil }

func TestSameWriter(t *testing.T) {
	t.Parallel()
	var a, b bytes.Buffer
	for _, tc := range []struct {
		name string
		x, y io.Writer
		want bool
	}{
		{"same buffer", &a, &a, true},
		{"different buffers", &a, &b, false},
		{"uncomparable", uncomparable{"x"}, uncomparable{"x"}, false},
	} {
		if got := sameWriter(tc.x, tc.y); got != tc.want {
			t.Errorf("%s: sameWriter = %v, want %v", tc.name, got, tc.want)
		}
	}
}
