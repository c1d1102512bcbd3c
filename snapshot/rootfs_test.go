package snapshot

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCleanEntryName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{"usr/bin/x", "usr/bin/x", false},
		{"./usr/bin/", "usr/bin", false},
		{"/etc/passwd", "etc/passwd", false},
		{"./", ".", false},
		{"a/./b//c", "a/b/c", false},
		{"a/../b", "b", false},
		{"..", "", true},
		{"../x", "", true},
		{"a/../../x", "", true},
		{"/../x", "", true},
	}
	for _, tt := range tests {
		got, err := cleanEntryName(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("cleanEntryName(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// TestRootFSSlash checks path arithmetic for an in-place build, whose root is
// the machine's "/". It only resolves paths; nothing is written.
func TestRootFSSlash(t *testing.T) {
	t.Parallel()
	r, err := newRootFS("/")
	mustDo(t, err)
	tmp := t.TempDir()
	host, err := r.dir(tmp, false)
	mustDo(t, err)
	want, err := filepath.EvalSymlinks(tmp)
	mustDo(t, err)
	if host != want {
		t.Errorf("dir(%q) = %q, want %q", tmp, host, want)
	}
	if got := r.imagePath(joinHost(host, "x")); got != want+"/x" {
		t.Errorf("imagePath = %q, want %q", got, want+"/x")
	}
	if got := joinHost("/", "etc"); got != "/etc" {
		t.Errorf(`joinHost("/", "etc") = %q`, got)
	}
	if _, err := r.dir("/nonexistent-kiln-test-dir", false); !os.IsNotExist(err) {
		t.Errorf("dir of a missing path: %v, want not-exist", err)
	}
}
