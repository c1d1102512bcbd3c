package atomicfile_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/kiln-build/kiln/atomicfile"
)

func TestWriteFile(t *testing.T) {
	t.Parallel()
	crash := errors.New("crash before rename")
	for _, tt := range []struct {
		name     string
		old      string // "" for no file
		perm     fs.FileMode
		opts     []atomicfile.Option
		want     string
		wantErr  error
		wantPerm fs.FileMode
	}{
		{name: "new file", perm: 0o644, want: "new", wantPerm: 0o644},
		{name: "replaces, with the given mode", old: "old", perm: 0o600, want: "new", wantPerm: 0o600},
		{name: "a crash before the rename leaves the old content", old: "old", perm: 0o644,
			opts: []atomicfile.Option{atomicfile.BeforeRename(func(string) error { return crash })},
			want: "old", wantErr: crash, wantPerm: 0o640},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			p := filepath.Join(dir, "index.json")
			if tt.old != "" {
				if err := os.WriteFile(p, []byte(tt.old), 0o640); err != nil {
					t.Fatal(err)
				}
			}
			err := atomicfile.WriteFile(p, []byte("new"), tt.perm, tt.opts...)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("WriteFile: err = %v, want %v", err, tt.wantErr)
			}
			got, err := os.ReadFile(p)
			if err != nil || string(got) != tt.want {
				t.Fatalf("content %q, %v; want %q", got, err, tt.want)
			}
			fi, err := os.Stat(p)
			if err != nil || fi.Mode().Perm() != tt.wantPerm {
				t.Errorf("mode %v, %v; want %v", fi.Mode().Perm(), err, tt.wantPerm)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("directory holds %d entries, want only index.json (no temporary file left)", len(entries))
			}
		})
	}
}

// A write into a missing directory fails and creates nothing.
func TestWriteFileMissingDir(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "missing", "f")
	if err := atomicfile.WriteFile(p, []byte("x"), 0o644); err == nil {
		t.Fatal("WriteFile into a missing directory succeeded")
	}
}
