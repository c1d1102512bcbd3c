package contexts_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/contexts"
)

func TestReadDockerfile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	host := filepath.Join(t.TempDir(), "host")
	for name, body := range map[string]string{"Dockerfile": "FROM a\n", "sub/Dockerfile": "FROM b\n", "etc/shadow": "FROM inside\n"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(host, []byte("FROM host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"abs": host, "up": "../../../../../../.." + host, "shadow": "/etc/shadow"} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	big := bytes.Repeat([]byte("#\n"), contexts.MaxDockerfileBytes/2+1)
	if err := os.WriteFile(filepath.Join(dir, "big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		rel, want string
		wantErr   error
		errText   string
	}{
		{rel: "Dockerfile", want: "FROM a\n"},
		{rel: "./sub/Dockerfile", want: "FROM b\n"},
		{rel: "sub/../Dockerfile", want: "FROM a\n"},
		{rel: "shadow", want: "FROM inside\n"}, // an absolute link resolves inside the context
		{rel: "../Dockerfile", wantErr: contexts.ErrOutsideContext},
		{rel: "sub/../../x", wantErr: contexts.ErrOutsideContext},
		{rel: "/etc/passwd", wantErr: contexts.ErrOutsideContext},
		{rel: "abs", wantErr: fs.ErrNotExist}, // the host file is never read
		{rel: "up", wantErr: fs.ErrNotExist},
		{rel: "sub", wantErr: fs.ErrNotExist}, // a directory
		{rel: "missing", wantErr: fs.ErrNotExist},
		{rel: "big", errText: "larger than the 16 MiB limit"},
	} {
		got, err := contexts.ReadDockerfile(dir, tt.rel)
		switch {
		case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
			t.Errorf("ReadDockerfile(%q): err = %v, want %v", tt.rel, err, tt.wantErr)
		case tt.errText != "" && (err == nil || !strings.Contains(err.Error(), tt.errText)):
			t.Errorf("ReadDockerfile(%q): err = %v, want one containing %q", tt.rel, err, tt.errText)
		case tt.wantErr == nil && tt.errText == "" && (err != nil || string(got) != tt.want):
			t.Errorf("ReadDockerfile(%q) = %q, %v; want %q", tt.rel, got, err, tt.want)
		}
	}
	if _, err := contexts.ReadHostDockerfile(filepath.Join(dir, "big")); err == nil || !strings.Contains(err.Error(), "16 MiB") {
		t.Errorf("ReadHostDockerfile(big): err = %v, want the size limit", err)
	}
	if got, err := contexts.ReadHostDockerfile(host); err != nil || string(got) != "FROM host\n" {
		t.Errorf("ReadHostDockerfile(host) = %q, %v", got, err)
	}
}
