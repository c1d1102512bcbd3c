package builder_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/compression"
	"github.com/kiln-build/kiln/compression/compressiontest"
)

// TestBuildLimits: every limit on what the client controls stops the build with an
// error naming the limit's flag and, where there is one, the Dockerfile line.
func TestBuildInputLimits(t *testing.T) {
	w := newWorld(t)
	copies := func(n int) string {
		var b strings.Builder
		b.WriteString("FROM scratch\n")
		for i := range n {
			fmt.Fprintf(&b, "COPY f /f%d\n", i)
		}
		return b.String()
	}
	var head bytes.Buffer
	tar.NewWriter(&head).WriteHeader(&tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1 << 30})
	bomb, err := io.ReadAll(compressiontest.Bomb("gzip", head.Bytes(), 1<<30))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		c     buildCase
		want  string // "" : the build succeeds
		isErr error
	}{
		{"dockerfile size", buildCase{dockerfile: "FROM scratch\n" + strings.Repeat("# padding\n", 20), inputLimits: builder.InputLimits{MaxDockerfileBytes: 64}},
			"Dockerfile is 213 bytes, more than the 64 allowed (--max-dockerfile-size)", builder.ErrLimit},
		{"instructions", buildCase{dockerfile: copies(5), files: map[string]string{"f": "x"}, inputLimits: builder.InputLimits{MaxInstructions: 3}},
			"Dockerfile:4: build limit exceeded: more than 3 instructions (--max-instructions)", builder.ErrLimit},
		{"instructions unlimited", buildCase{dockerfile: "FROM scratch\n" + strings.Repeat("ENV A=b\n", 20), inputLimits: builder.InputLimits{MaxInstructions: -1}}, "", nil},
		{"layers of the base", buildCase{dockerfile: "FROM BUSYBOX\nENV A=b\n", inputLimits: builder.InputLimits{MaxLayers: -1}}, "", nil},
		{"layers", buildCase{dockerfile: "FROM BUSYBOX\nCOPY f /a\nENV A=b\nCOPY f /b\n", files: map[string]string{"f": "x"}, inputLimits: builder.InputLimits{MaxLayers: 2}},
			"Dockerfile:4: COPY f /b: build limit exceeded: max depth exceeded: the image would have 3 layers, more than the 2 allowed (--max-layers)", builder.ErrLimit},
		{"layers with --single-snapshot", buildCase{dockerfile: "FROM BUSYBOX\nCOPY f /a\n", files: map[string]string{"f": "x"}, single: true, inputLimits: builder.InputLimits{MaxLayers: 1}},
			"Dockerfile:1: FROM ", builder.ErrLimit},
		// dockerd: busybox (1 layer) + 124 COPY builds; the 125th COPY fails with "max depth exceeded".
		{"dockerd's 125 layers", buildCase{dockerfile: copies(126), files: map[string]string{"f": "x"}},
			"Dockerfile:127: COPY f /f125: build limit exceeded: max depth exceeded: the image would have 126 layers, more than the 125 allowed", builder.ErrLimit},
		{"ADD zip bomb", buildCase{dockerfile: "FROM scratch\nADD bomb /x/\n", files: map[string]string{"bomb": string(bomb)}},
			"Dockerfile:2: ADD bomb /x/: failed to copy files: extracting bomb to /x: ", compression.ErrBomb},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := w.build(t, tt.c)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("build failed: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, tt.isErr) {
				t.Fatalf("error %v, want %v with %q", err, tt.isErr, tt.want)
			}
		})
	}
}
