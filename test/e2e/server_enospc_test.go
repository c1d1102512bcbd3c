package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/test/testworld"
)

// TestServerDiskFull runs kiln serve with its state directory on a 16 MiB tmpfs.
// Builds that fill it (a RUN that writes 64 MiB; a RUN whose 12 MiB file makes a layer
// that no longer fits; a COPY of a 24 MiB context) fail with "no space left on device"
// and what was being written; kiln removes their files, the store still holds only
// whole images, and a small build on the same server succeeds after each.
func TestServerDiskFull(t *testing.T) {
	reg := testworld.Registry(t)
	testworld.RequireRoot(t)
	s := startServerOn(t, func(state string) {
		if err := os.MkdirAll(state, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", state, "tmpfs", 0, "size=16m,mode=0700"); err != nil {
			t.Skipf("cannot mount a tmpfs: %v", err)
		}
		t.Cleanup(func() {
			if err := unix.Unmount(state, unix.MNT_DETACH); err != nil {
				t.Errorf("unmounting the test tmpfs: %v", err)
			}
		})
	}, "--context-memory", "0")
	small := writeContext(t, map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\nRUN echo small > /small\n"})
	s.mustDocker(t, "build", "-t", "kiln-e2e/enospc-small:warm", small)

	big := strings.Repeat("0123456789abcdef", 24<<20/16)
	tests := []struct {
		name  string
		files map[string]string
		// want are the parts of the error, all of them lower case.
		want []string
	}{
		{
			name:  "RUN writes 64 MiB",
			files: map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\nRUN dd if=/dev/zero of=/fill bs=1M count=64\n"},
			want:  []string{"no space left on device", "/fill"},
		},
		{
			name:  "the layer of a RUN",
			files: map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\nRUN head -c 12000000 /dev/urandom > /rand\n"},
			want:  []string{"no space left on device", "layer"},
		},
		{
			name:  "COPY of a large context",
			files: map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\nCOPY big /big\n", "big": big},
			want:  []string{"no space left on device", "big"},
		},
		{
			// The context fits; its copy into the build's root does not.
			name:  "COPY into the root",
			files: map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\nCOPY mid /mid\n", "mid": big[:7<<20]},
			want:  []string{"no space left on device", "copy", "mid"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := s.docker(t, nil, "", "build", "-t", "kiln-e2e/enospc-fail:x", writeContext(t, tt.files))
			if code == 0 {
				t.Fatalf("the build that fills the disk succeeded:\n%s", out)
			}
			t.Logf("the build failed as it should:\n%s", tail(out, 400))
			for _, w := range tt.want {
				if !strings.Contains(strings.ToLower(out), w) {
					t.Errorf("the error does not say %q:\n%s", w, tail(out, 2000))
				}
			}
			checkStoreWhole(t, s.state)
			for _, g := range []string{"builds/api-build-*", "store/tmp/*", "cache/build/blobs/*.tmp-*"} {
				if m, _ := filepath.Glob(filepath.Join(s.state, g)); len(m) > 0 {
					t.Errorf("the failed build left %v", m)
				}
			}
			tag := "kiln-e2e/enospc-small:" + uniqueTag()
			s.mustDocker(t, "build", "--no-cache", "-t", tag, small)
			if got := s.mustDocker(t, "images", "-q", tag); strings.TrimSpace(got) == "" {
				t.Errorf("the small build after a full disk stored no image")
			}
		})
	}
}
