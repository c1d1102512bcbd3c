package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/builder/output"
	"github.com/kiln-build/kiln/store"
	"github.com/kiln-build/kiln/test/testworld"
)

// crashPoint is a moment of a build or push at which TestServerCrashRecovery kills the
// server: when a line of the client's output, or a file in the state directory, says
// that moment has come.
type crashPoint struct {
	name string
	push bool // the kill happens during `docker push`, after a finished build
	// line and glob trigger the kill: an output line containing line, or a path
	// matching one of glob under the state directory.
	line string
	glob []string
}

// TestServerCrashRecovery kills `kiln serve` with SIGKILL during a build, a layer
// write, the store commit, a step-cache write and a push, then restarts it on the same
// state directory: the store opens and holds only whole images, the locks are free,
// the build directories and temporaries are gone, and the same build (from the step
// cache where it got that far) succeeds and pushes an image that validates.
func TestServerCrashRecovery(t *testing.T) {
	reg := testworld.Registry(t)
	s := startServer(t)
	points := []crashPoint{
		{name: "during RUN", line: "Running in"},
		{name: "layer write", glob: []string{"builds/*/state/blobs/.layer-*.tmp"}},
		{name: "store commit", glob: []string{"store/tmp/*"}},
		{name: "cache write", glob: []string{"cache/build/blobs/*.tmp-*", "cache/build/steps/*", "cache/build/steps/*/*"}},
		{name: "push", push: true, line: "The push refers to"},
	}
	for i, p := range points {
		tag := fmt.Sprintf("%s/kiln-e2e/crash-%s:%d", reg, uniqueTag(), i)
		ctxDir := writeContext(t, map[string]string{
			"Dockerfile": "FROM " + reg + "/busybox:1.35\n" +
				// Random data: the layer compresses slowly enough to be caught mid-write.
				fmt.Sprintf("RUN echo %q > /point && dd if=/dev/urandom of=/big bs=1M count=8 2>/dev/null && sleep 0.3\n", p.name) +
				"COPY f /f\nRUN cat /point /f > /both\n",
			"f": p.name + "\n",
		})
		var hit bool
		if p.push {
			s.mustDocker(t, "build", "-t", tag, ctxDir)
			hit = s.killWhen(t, p, "push", tag)
		} else {
			hit = s.killWhen(t, p, "build", "-t", tag, ctxDir)
		}
		t.Logf("%s: killed %s", p.name, map[bool]string{true: "at the point", false: "after the command ended (point not seen)"}[hit])

		checkAfterCrash(t, s.state)
		s.launch(t)
		for _, sub := range []string{"builds/api-build-*", "builds/bk-build-*", "store/tmp/*", "cache/build/blobs/*.tmp-*"} {
			if m, _ := filepath.Glob(filepath.Join(s.state, sub)); len(m) > 0 {
				t.Errorf("%s: leftovers after the restart: %v", p.name, m)
			}
		}
		// The same build again (the step cache serves what it kept), then a push.
		s.mustDocker(t, "build", "-t", tag, ctxDir)
		s.mustDocker(t, "push", tag)
		ref, err := name.ParseReference(tag)
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(ref)
		if err != nil {
			t.Fatalf("%s: the rebuilt image's push: %v", p.name, err)
		}
		if err := validate.Image(img); err != nil {
			t.Errorf("%s: the rebuilt image does not validate: %v", p.name, err)
		}
	}
}

// killWhen runs the docker CLI with args and kills the server with SIGKILL when p's
// moment comes; it reports whether it came before the command ended (when it did not,
// the server is killed after).
func (s *server) killWhen(t *testing.T, p crashPoint, args ...string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Only paths that appear after the command starts count: the state directory
	// keeps the earlier points' files.
	before := map[string]bool{}
	for _, g := range p.glob {
		m, _ := filepath.Glob(filepath.Join(s.state, g))
		for _, f := range m {
			before[f] = true
		}
	}
	cmd := exec.CommandContext(ctx, "docker", append([]string{"-H", s.host}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var fired atomic.Bool
	ended := make(chan struct{})
	fire := func() {
		if fired.CompareAndSwap(false, true) {
			_ = s.cmd.Process.Signal(unix.SIGKILL)
		}
	}
	go func() {
		defer close(ended)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if p.line != "" && strings.Contains(sc.Text(), p.line) {
				fire()
			}
		}
	}()
	if len(p.glob) > 0 {
	poll:
		for {
			for _, g := range p.glob {
				m, _ := filepath.Glob(filepath.Join(s.state, g))
				for _, f := range m {
					if !before[f] {
						fire()
						break poll
					}
				}
			}
			select {
			case <-ended:
				break poll
			case <-time.After(time.Millisecond):
			}
		}
	}
	<-ended
	_ = cmd.Wait()
	hit := fired.Load()
	s.kill9(t)
	return hit
}

// checkAfterCrash looks at a killed server's state directory: the locks are free, the
// store opens, and every image it lists is whole.
func checkAfterCrash(t *testing.T, state string) {
	t.Helper()
	checkLocksFree(t, state)
	checkStoreWhole(t, state)
}

// checkLocksFree checks that nothing holds the state directory's locks.
func checkLocksFree(t *testing.T, state string) {
	t.Helper()
	for _, lock := range []string{"serve.lock", "builds/build.lock"} {
		f, err := os.OpenFile(filepath.Join(state, lock), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			t.Errorf("%s is still locked after the server was killed: %v", lock, err)
		}
		f.Close()
	}
}

// validateStored validates an image of the store, whose layers are the plain tars the
// build wrote (compressed only when the image leaves kiln): compressed into a memo of
// its own first, as an output would, since ggcr's validate reads gzip. A layer cut
// short no longer matches its diff ID there.
func validateStored(t *testing.T, img v1.Image) error {
	t.Helper()
	comp, err := output.NewCompressor(t.TempDir(), output.Gzip, 0)
	if err != nil {
		t.Fatal(err)
	}
	out, err := comp.CompressImage(context.Background(), img)
	if err != nil {
		return err
	}
	return validate.Image(out)
}

// checkStoreWhole checks that the store opens and every image it lists is whole.
func checkStoreWhole(t *testing.T, state string) {
	t.Helper()
	st, err := store.Open(filepath.Join(state, "store"))
	if err != nil {
		t.Fatalf("the store does not open after a crash: %v", err)
	}
	images, err := st.List()
	if err != nil {
		t.Fatalf("listing the store after a crash: %v", err)
	}
	for _, im := range images {
		img, _, err := st.Resolve(im.ID.String())
		if err != nil {
			t.Errorf("image %s is listed but does not resolve: %v", im.ID, err)
			continue
		}
		if err := validateStored(t, img); err != nil {
			t.Errorf("image %s %v is half stored: %v", im.ID, im.RepoTags, err)
		}
	}
}
