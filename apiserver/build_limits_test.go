package apiserver

import (
	"archive/tar"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/compression/compressiontest"
	"github.com/kiln-build/kiln/isolation"
)

// TestBuildLimitsOverHTTP: a decompression bomb body is answered 413 naming
// --max-decompression-ratio, a Dockerfile past --max-instructions is refused (400, as
// dockerd answers a parse error) with the line, and the server goes on serving the next build.
func TestBuildLimitsOverHTTP(t *testing.T) {
	w := newBuildWorld(t, nil)
	ts := newBuildServer(t, BuildConfig{
		Workspace:       builder.Workspace{Isolation: isolation.Chroot, StateDir: t.TempDir(), InputLimits: builder.InputLimits{MaxInstructions: 2}},
		MaxContextRatio: 100,
	})
	var head bytes.Buffer
	tar.NewWriter(&head).WriteHeader(&tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4 << 30})
	bomb, err := io.ReadAll(compressiontest.Bomb("zstd", head.Bytes(), 4<<30)) // ~200 KiB
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		body       []byte
		wantStatus int
		wantText   string
	}{
		{"zstd bomb", bomb, http.StatusRequestEntityTooLarge, "the build context expands more than 100 times"},
		{"too many instructions", contextTar(t, map[string]string{"Dockerfile": "FROM " + w.busybox + "\nENV A=1\nENV B=2\n"}),
			http.StatusBadRequest, "dockerfile parse error line 3: build limit exceeded: more than 2 instructions (--max-instructions)"},
		{"the next build", contextTar(t, map[string]string{"Dockerfile": "FROM " + w.busybox + "\nRUN echo still serving\n"}),
			http.StatusOK, "still serving"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := postBuild(t, ts.URL, "", tt.body, nil)
			got := resp.body
			if resp.status == http.StatusOK {
				got = resp.text()
				if d := resp.last().ErrorDetail; d != nil {
					got += d.Message
				}
			}
			if resp.status != tt.wantStatus || !strings.Contains(got, tt.wantText) {
				t.Fatalf("HTTP %d %s, want %d with %q", resp.status, got, tt.wantStatus, tt.wantText)
			}
		})
	}
}
