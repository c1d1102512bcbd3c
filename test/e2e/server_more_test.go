package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-build/kiln/test/testworld"
)

// tarOf builds an uncompressed tar of the given files.
func tarOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(1700000000, 0)}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(data))
	}
	tw.Close()
	return buf.Bytes()
}

// TestServerCurlUploads posts tar and tar.gz contexts with curl, as CI scripts do.
func TestServerCurlUploads(t *testing.T) {
	reg := testworld.Registry(t)
	s := startServer(t)
	files := map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\nCOPY hello /hello\n", "hello": "hi\n"}
	plain := tarOf(t, files)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	tag := uniqueTag()
	for name, body := range map[string][]byte{"tar": plain, "tar.gz": gz.Bytes()} {
		path := filepath.Join(t.TempDir(), "ctx."+name)
		if err := os.WriteFile(path, body, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("curl", "-sS", "--unix-socket", s.socket, "-X", "POST",
			"-H", "Content-Type: application/x-tar", "--data-binary", "@"+path,
			"http://localhost/build?t=kiln-e2e/curl-"+tag+":"+strings.ReplaceAll(name, ".", "-")).CombinedOutput()
		if err != nil {
			t.Fatalf("curl: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), `"aux":{"ID":"sha256:`) || !strings.Contains(string(out), "Successfully tagged") {
			t.Errorf("curl %s upload: stream lacks aux ID and tag line:\n%s", name, out)
		}
	}
}

// TestServerClientKilledMidRun kills the docker CLI while a RUN sleeps: the RUN's
// process must be gone within seconds and the next build must succeed.
func TestServerClientKilledMidRun(t *testing.T) {
	reg := testworld.Registry(t)
	s := startServer(t)
	marker := strconv.Itoa(40000 + int(time.Now().UnixNano()%9999))
	ctx := writeContext(t, map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\nRUN sleep " + marker + "\n"})
	cmd := exec.Command("docker", "-H", s.host, "build", ctx)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for !sleeping(marker) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("RUN sleep never started:\n%s", out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	deadline = time.Now().Add(15 * time.Second)
	for sleeping(marker) {
		if time.Now().After(deadline) {
			t.Fatal("the RUN process survived its client by 15s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	ctx = writeContext(t, map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\nRUN true\n"})
	s.mustDocker(t, "build", ctx)
}

// sleeping reports whether a "sleep <marker>" process exists.
func sleeping(marker string) bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err == nil && string(bytes.ReplaceAll(data, []byte{0}, []byte{' '})) == "sleep "+marker+" " {
			return true
		}
	}
	return false
}

// TestServerInUnprivilegedContainer runs `kiln serve` as kiln's own image in an
// unprivileged container (in-place isolation) and builds through it with docker.
func TestServerInUnprivilegedContainer(t *testing.T) {
	testworld.RequireRoot(t)
	reg := testworld.Registry(t)
	dockerCLI := testworld.Docker(t)
	image := kilnImage(t, dockerCLI)
	port := freePort(t)
	id := strings.TrimSpace(run(t, dockerCLI, "run", "-d", "--network", "host", "--entrypoint", "/kiln/kiln", image,
		"serve", "-H", "tcp://127.0.0.1:"+port))
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := tryRun(dockerCLI, "logs", id)
			t.Logf("server container log:\n%s", tail(logs, 4000))
		}
		tryRun(dockerCLI, "rm", "-f", id)
	})
	host := "tcp://127.0.0.1:" + port
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, code := tryRun("docker", "-H", host, "version"); code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("kiln serve in its container never answered")
		}
		time.Sleep(300 * time.Millisecond)
	}
	ctx := writeContext(t, map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\nRUN echo in-container > /x\nCMD [\"cat\", \"/x\"]\n"})
	ref := reg + "/kiln-e2e/served:" + uniqueTag()
	if out, code := tryRun("docker", "-H", host, "build", "-t", ref, ctx); code != 0 {
		t.Fatalf("docker build against the containerised server: exit %d\n%s", code, out)
	}
	if out, code := tryRun("docker", "-H", host, "push", ref); code != 0 {
		t.Fatalf("docker push: exit %d\n%s", code, out)
	}
	removeImage(t, dockerCLI, ref)
	run(t, dockerCLI, "pull", "-q", ref)
	if got := run(t, dockerCLI, "run", "--rm", "--network", "none", ref); got != "in-container\n" {
		t.Errorf("image built by the containerised server printed %q", got)
	}

	// The step cache in place: the same build again comes from the cache, and a step
	// added after the cached ones runs on a root that holds their files.
	if out, code := tryRun("docker", "-H", host, "build", ctx); code != 0 || strings.Count(out, " ---> Using cache") != 2 {
		t.Errorf("rebuild in place: exit %d, want 2 cached steps\n%s", code, out)
	}
	more := writeContext(t, map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\nRUN echo in-container > /x\nCMD [\"cat\", \"/x\"]\nRUN cat /x\n"})
	if out, code := tryRun("docker", "-H", host, "build", more); code != 0 || strings.Count(out, " ---> Using cache") != 2 || !strings.Contains(out, "\nin-container\n") {
		t.Errorf("a step after cached ones, in place: exit %d, want 2 cached steps and the RUN to see /x\n%s", code, out)
	}

	// Five clients at once: in place there is one root, so the builds must take turns.
	// Each RUN fails if it finds another build's marker in the root.
	var wg sync.WaitGroup
	errs := make([]string, 5)
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := writeContext(t, map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\n" +
				"RUN test ! -e /busy && touch /busy && sleep 1 && test ! -e /other && rm /busy && echo " + strconv.Itoa(i) + " > /mine\n"})
			if out, code := tryRun("docker", "-H", host, "build", ctx); code != 0 {
				errs[i] = out
			}
		}()
	}
	wg.Wait()
	for i, e := range errs {
		if e != "" {
			t.Errorf("concurrent in-place client %d failed:\n%s", i, e)
		}
	}
}
