package main

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// nobodyCred returns user nobody's credentials for running kiln as it.
func nobodyCred(t *testing.T) (*user.User, *syscall.Credential) {
	t.Helper()
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	return nobody, &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
}

// TestRootlessServe runs `kiln serve --isolation=chroot` as user nobody: the server
// runs in its user namespace, answers on its socket and, on SIGTERM to the kiln that
// was started, the one in the namespace shuts down cleanly and removes its socket.
func TestRootlessServe(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("newuidmap"); err != nil {
		t.Skip("newuidmap is not installed")
	}
	_, cred := nobodyCred(t)
	dir, bin := rootlessKiln(t, "kiln-rootless-")
	work := filepath.Join(dir, "serve")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(work, int(cred.Uid), int(cred.Gid)); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(work, "kiln.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var log strings.Builder
	cmd := exec.CommandContext(ctx, bin, "serve", "--isolation=chroot", "--state-dir", filepath.Join(work, "state"), "-H", "unix://"+sock)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + work}
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var info string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := unixClient(sock).Get("http://kiln/info")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		info = string(b)
		break
	}
	if !strings.Contains(info, "chroot") {
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("/info of the rootless server: %q\n%s", info, log.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("kiln serve ended with %v\n%s", err, log.String())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("kiln serve did not end on SIGTERM\n%s", log.String())
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
	if !strings.Contains(log.String(), "Rootless: chroot isolation in a user namespace") {
		t.Errorf("no rootless note:\n%s", log.String())
	}
}

// rootlessKiln builds this kiln into a new directory every user may read (removed
// when the test ends), for running it as another user, and returns both.
func rootlessKiln(t *testing.T, prefix string) (dir, bin string) {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(dir, "kiln")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir, bin
}

// checkLayerFiles checks the files of the image tarball's layers after the base
// (layerFiles): name → "uid:gid:content".
func checkLayerFiles(t *testing.T, path string, want map[string]string) {
	t.Helper()
	files := layerFiles(t, path)
	for name, w := range want {
		hdr, ok := files[name]
		if !ok {
			t.Errorf("%s missing from the image's layers", name)
			continue
		}
		if got := strconv.Itoa(hdr.Uid) + ":" + strconv.Itoa(hdr.Gid) + ":" + hdr.Linkname; got != w {
			t.Errorf("%s: got %q, want %q", name, got, w)
		}
	}
}

// layerFiles reads every file of the image tarball's layers after the first (the
// base): name → header and content, the last layer winning.
func layerFiles(t *testing.T, path string) map[string]*tar.Header {
	t.Helper()
	img, err := tarball.ImageFromPath(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]*tar.Header{}
	for _, l := range layers[1:] {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			hdr, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(tr)
			hdr.Linkname = string(b) // the content, for the checks below
			files[strings.TrimPrefix(hdr.Name, "./")] = hdr
		}
		rc.Close()
	}
	return files
}

// TestRootlessChrootBuild runs the real kiln binary as user nobody with
// --isolation=chroot: it enters a user namespace of its own and builds with per-build
// roots. With a /etc/subuid range, RUN runs as root of the namespace and
// COPY --chown=1000:1000 keeps its owner; with none (a single-uid mapping) RUN still
// works, files are owned by 0, and the chown fails with an error saying why.
func TestRootlessChrootBuild(t *testing.T) {
	needRoot(t) // to run kiln as nobody and to set up /etc/subuid
	reg := os.Getenv("KILN_TEST_REGISTRY")
	if reg == "" {
		t.Skip("KILN_TEST_REGISTRY is not set (scripts/world.sh up)")
	}
	if _, err := exec.LookPath("newuidmap"); err != nil {
		t.Skip("newuidmap is not installed")
	}
	nobody, cred := nobodyCred(t)
	uid, gid := int(cred.Uid), int(cred.Gid)
	dir, bin := rootlessKiln(t, "kiln-rootless-")

	withChown := "FROM " + reg + "/busybox:1.35\nRUN echo hi > /made && id -u > /id\nCOPY --chown=1000:1000 f /f\n"
	tests := []struct {
		name      string
		subids    bool
		df        string
		wantErr   string
		wantCode  int               // the exit code, with wantErr
		wantFiles map[string]string // name → "uid:gid:content"
	}{
		{name: "subuid range", subids: true, df: withChown,
			wantFiles: map[string]string{"made": "0:0:hi\n", "id": "0:0:0\n", "f": "1000:1000:x\n"}},
		{name: "single uid", df: "FROM " + reg + "/busybox:1.35\nRUN echo hi > /made && id -u > /id\n",
			wantFiles: map[string]string{"made": "0:0:hi\n", "id": "0:0:0\n"}},
		{name: "single uid refuses chown", df: withChown,
			wantErr: "Dockerfile:3: COPY --chown=1000:1000 f /f: --chown=1000:1000: uid 1000/gid 1000 does not exist here: kiln runs rootless in a user namespace that maps only uid and gid 0"},
		{name: "RUN's exit code passes through", df: "FROM " + reg + "/busybox:1.35\nRUN exit 7\n",
			wantErr: "Dockerfile:2: RUN exit 7", wantCode: 7},
		{name: "single uid refuses USER", df: "FROM " + reg + "/busybox:1.35\nUSER 1000\nRUN true\n",
			wantErr: "Dockerfile:3: RUN true: USER 1000: uid 1000/gid 0 does not exist here"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.subids {
				addSubIDs(t, nobody.Username)
			}
			work := filepath.Join(dir, strconv.Itoa(i))
			ctxDir := filepath.Join(work, "ctx")
			if err := os.MkdirAll(ctxDir, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, data := range map[string]string{"Dockerfile": tt.df, "f": "x\n"} {
				if err := os.WriteFile(filepath.Join(ctxDir, name), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chown(work, uid, gid); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(work, "image.tar")
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "build", "--isolation=chroot", "--context", ctxDir,
				"--state-dir", filepath.Join(work, "state"), "--no-push", "--insecure-pull",
				"--tar-path", out, "--destination", "rootless/test:1")
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + work}
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
			log, err := cmd.CombinedOutput()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(string(log), tt.wantErr) {
					t.Fatalf("err %v, want output containing %q:\n%s", err, tt.wantErr, log)
				}
				if code := cmd.ProcessState.ExitCode(); tt.wantCode != 0 && code != tt.wantCode {
					t.Errorf("exit code %d, want %d", code, tt.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("kiln build as nobody: %v\n%s", err, log)
			}
			if !strings.Contains(string(log), "Rootless: chroot isolation in a user namespace") {
				t.Errorf("no rootless note in the output:\n%s", log)
			}
			checkLayerFiles(t, out, tt.wantFiles)
		})
	}
}

// addSubIDs gives name a range in /etc/subuid and /etc/subgid for the test and puts
// the files back afterwards.
func addSubIDs(t *testing.T, name string) {
	t.Helper()
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		old, err := os.ReadFile(f)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		existed := err == nil
		t.Cleanup(func() {
			if !existed {
				os.Remove(f)
				return
			}
			if err := os.WriteFile(f, old, 0o644); err != nil {
				t.Errorf("restore %s: %v", f, err)
			}
		})
		data := string(old)
		if data != "" && !strings.HasSuffix(data, "\n") {
			data += "\n"
		}
		if err := os.WriteFile(f, []byte(data+name+":300000:65536\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
