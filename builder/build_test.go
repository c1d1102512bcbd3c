package builder_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/contexts"
	"github.com/kiln-build/kiln/isolation"
)

func TestMain(m *testing.M) {
	isolation.Init()
	os.Exit(m.Run())
}

// world is a registry holding a busybox base image, for builds in tests.
type world struct {
	registry string // host:port
	busybox  string // reference of the base image
}

// newWorld starts an in-process registry and pushes a busybox image made from the
// host's static busybox. Tests using it need root (chroot isolation).
func newWorld(t *testing.T) *world {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("chroot builds need root")
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs a static /bin/busybox (Debian busybox-static)")
	}
	srv := httptest.NewServer(registry.New(registry.Logger(nilLogger())))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	w := &world{registry: host, busybox: host + "/busybox:test"}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(busyboxTar(t))), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cf.Config.Cmd = []string{"sh"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(w.busybox)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	return w
}

var busyboxApplets = []string{"sh", "echo", "cat", "ls", "mkdir", "touch", "rm", "id", "true", "false", "chmod", "ln", "printf", "env", "sleep", "test"}

func busyboxTar(t *testing.T) []byte {
	t.Helper()
	bin, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mod := time.Unix(1700000000, 0)
	dir := func(n string, mode int64) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: n, Mode: mode, ModTime: mod})
	}
	file := func(n string, mode int64, data []byte, uid int) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: mode, Size: int64(len(data)), ModTime: mod, Uid: uid, Gid: uid})
		tw.Write(data)
	}
	for _, d := range []string{"bin/", "etc/", "tmp/", "root/", "home/", "var/", "var/lib/"} {
		dir(d, 0o755)
	}
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "home/app/", Mode: 0o755, ModTime: mod, Uid: 1000, Gid: 1000})
	file("bin/busybox", 0o755, bin, 0)
	for _, a := range busyboxApplets {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, ModTime: mod})
	}
	file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"), 0)
	file("etc/group", 0o644, []byte("root:x:0:\napp:x:1000:\nextra:x:2000:app\n"), 0)
	file("var/lib/base.txt", 0o644, []byte("from the base\n"), 0)
	tw.Close()
	return buf.Bytes()
}

// buildCase builds a Dockerfile over a context of the given files.
type buildCase struct {
	dockerfile string
	files      map[string]string
	args       map[string]*string
	target     string
	labels     map[string]string
	single     bool // --single-snapshot
	repro      bool // --reproducible
}

func (w *world) build(t *testing.T, c buildCase) (*builder.Result, []builder.Event, error) {
	t.Helper()
	ctxDir := t.TempDir()
	for p, data := range c.files {
		full := filepath.Join(ctxDir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bctx, err := contexts.FromDir(ctxDir)
	if err != nil {
		t.Fatal(err)
	}
	df := strings.ReplaceAll(c.dockerfile, "BUSYBOX", w.busybox)
	var events []builder.Event
	res, err := builder.Build(context.Background(), &builder.Request{
		Dockerfile:     []byte(df),
		Context:        bctx,
		BuildArgs:      c.args,
		Target:         c.target,
		Labels:         c.labels,
		SingleSnapshot: c.single,
		Reproducible:   c.repro,
	},
		builder.WithWorkspace(builder.Workspace{Isolation: isolation.Chroot, StateDir: t.TempDir()}),
		builder.WithEvents(func(e builder.Event) { events = append(events, e) }),
	)
	return res, events, err
}

// files flattens an image into path -> description ("f 0644 0:0 <content>", "d 0755 0:0",
// "l -> target").
func files(t *testing.T, img v1.Image) map[string]string {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	out := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := "/" + strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		switch h.Typeflag {
		case tar.TypeDir:
			out[p] = sprintf("d %04o %d:%d", h.Mode&0o7777, h.Uid, h.Gid)
		case tar.TypeSymlink:
			out[p] = "l -> " + h.Linkname
		case tar.TypeLink:
			out[p] = "h -> " + h.Linkname
		default:
			data, _ := io.ReadAll(tr)
			if len(data) > 200 {
				data = []byte("<large>")
			}
			out[p] = sprintf("f %04o %d:%d %s", h.Mode&0o7777, h.Uid, h.Gid, data)
		}
	}
	return out
}

func layerCount(t *testing.T, img v1.Image) int {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	return len(ls)
}

func config(t *testing.T, img v1.Image) v1.Config {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf.Config
}

func mustBuild(t *testing.T, w *world, c buildCase) (v1.Image, []builder.Event) {
	t.Helper()
	res, events, err := w.build(t, c)
	if err != nil {
		t.Fatalf("build failed: %v", err)
	}
	if err := validate.Image(res.Image); err != nil {
		t.Fatalf("invalid image: %v", err)
	}
	return res.Image, events
}

func str(s string) *string { return &s }

func wantFiles(t *testing.T, got map[string]string, want map[string]string) {
	t.Helper()
	for p, w := range want {
		g, ok := got[p]
		switch {
		case w == "" && ok:
			t.Errorf("%s exists (%s), want it gone", p, g)
		case w != "" && !ok:
			t.Errorf("%s missing, want %s", p, w)
		case w != "" && g != w:
			t.Errorf("%s:\n got %s\nwant %s", p, g, w)
		}
	}
}

func TestConfigInstructions(t *testing.T) {
	w := newWorld(t)
	img, _ := mustBuild(t, w, buildCase{dockerfile: `FROM BUSYBOX
ENV A=1 B="two words"
ENV A=${A}1
LABEL l1=v1 "l 2"="v 2"
EXPOSE 80 53/udp 1000-1001
VOLUME ["/data", "/logs"]
USER app:extra
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --retries=2 CMD ["true"]
SHELL ["/bin/sh", "-ec"]
ENTRYPOINT echo hi
ONBUILD RUN echo triggered
MAINTAINER someone
`, labels: map[string]string{"from-cli": "yes"}})
	got := config(t, img)
	want := v1.Config{
		Env:          []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "A=11", "B=two words"},
		Labels:       map[string]string{"l1": "v1", "l 2": "v 2", "from-cli": "yes"},
		ExposedPorts: map[string]struct{}{"80/tcp": {}, "53/udp": {}, "1000/tcp": {}, "1001/tcp": {}},
		Volumes:      map[string]struct{}{"/data": {}, "/logs": {}},
		User:         "app:extra",
		StopSignal:   "SIGTERM",
		Healthcheck:  &v1.HealthConfig{Test: []string{"CMD", "true"}, Interval: 5 * time.Second, Retries: 2},
		Shell:        []string{"/bin/sh", "-ec"},
		Entrypoint:   []string{"/bin/sh", "-ec", "echo hi"},
		OnBuild:      []string{"RUN echo triggered"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("config (-want +got):\n%s", d)
	}
	if n := layerCount(t, img); n != 1 {
		t.Errorf("metadata-only build has %d layers, want the base's 1", n)
	}
	cf, _ := img.ConfigFile()
	if cf.Author != "someone" {
		t.Errorf("author %q", cf.Author)
	}
}

func TestRunLayers(t *testing.T) {
	w := newWorld(t)
	img, events := mustBuild(t, w, buildCase{dockerfile: `FROM BUSYBOX
RUN echo hello > /hello && mkdir -p /a/b && echo x > /a/b/c
RUN true
RUN rm /var/lib/base.txt && echo out && echo err >&2
RUN chmod 4755 /hello && ln -s /hello /link
`})
	fs := files(t, img)
	wantFiles(t, fs, map[string]string{
		"/hello":            "f 4755 0:0 hello\n",
		"/a/b/c":            "f 0644 0:0 x\n",
		"/var/lib/base.txt": "",
		"/link":             "l -> /hello",
	})
	// base + 3 RUNs that changed something; "RUN true" adds none.
	if n := layerCount(t, img); n != 4 {
		t.Errorf("layers = %d, want 4", n)
	}
	var stdout, stderr string
	for _, e := range events {
		if o, ok := e.(builder.Output); ok {
			if o.Stderr {
				stderr += string(o.Data)
			} else {
				stdout += string(o.Data)
			}
		}
	}
	if !strings.Contains(stdout, "out\n") || !strings.Contains(stderr, "err\n") {
		t.Errorf("RUN output not streamed: stdout %q stderr %q", stdout, stderr)
	}
}

func TestRunEnvAndUser(t *testing.T) {
	w := newWorld(t)
	img, _ := mustBuild(t, w, buildCase{
		dockerfile: `FROM BUSYBOX
ARG GREETING=hello
ARG FROMCLI
ENV WHO=world
USER app
WORKDIR /home/app/work
WORKDIR ..
RUN echo "$GREETING $WHO $FROMCLI $HOME" > out && id -u > uid && id -G > groups && pwd > pwd
`,
		args: map[string]*string{"FROMCLI": str("cli")},
	})
	fs := files(t, img)
	wantFiles(t, fs, map[string]string{
		"/home/app/out":    "f 0644 1000:1000 hello world cli /home/app\n",
		"/home/app/uid":    "f 0644 1000:1000 1000\n",
		"/home/app/groups": "f 0644 1000:1000 1000 2000\n",
		"/home/app/pwd":    "f 0644 1000:1000 /home/app\n",
		// WORKDIR creates directories owned by root, whatever USER says (as Docker).
		"/home/app/work": "d 0755 0:0",
	})
}

func TestCopy(t *testing.T) {
	w := newWorld(t)
	img, _ := mustBuild(t, w, buildCase{
		dockerfile: `FROM BUSYBOX
COPY a.txt /dst/
COPY --chown=app:extra dir /owned
COPY *.md /docs/
`,
		files: map[string]string{"a.txt": "A", "dir/x": "X", "dir/sub/y": "Y", "one.md": "1", "two.md": "2", "skip.txt": "s", ".dockerignore": "skip.txt\n"},
	})
	fs := files(t, img)
	wantFiles(t, fs, map[string]string{
		"/dst/a.txt":     "f 0644 0:0 A",
		"/owned/x":       "f 0644 1000:2000 X",
		"/owned/sub/y":   "f 0644 1000:2000 Y",
		"/docs/one.md":   "f 0644 0:0 1",
		"/docs/two.md":   "f 0644 0:0 2",
		"/docs/skip.txt": "",
	})
	if n := layerCount(t, img); n != 4 {
		t.Errorf("layers = %d, want 4", n)
	}
}

func TestMultiStage(t *testing.T) {
	w := newWorld(t)
	c := buildCase{dockerfile: `ARG BASE=BUSYBOX
FROM ${BASE} AS build
RUN echo built > /artifact
FROM scratch AS unused
COPY --from=build /artifact /never
FROM BUSYBOX
COPY --from=build /artifact /from-name
COPY --from=0 /artifact /from-index
FROM build AS child
RUN cat /artifact > /copy
`}
	img, events := mustBuild(t, w, c)
	wantFiles(t, files(t, img), map[string]string{"/copy": "f 0644 0:0 built\n", "/artifact": "f 0644 0:0 built\n"})
	var steps int
	for _, e := range events {
		if s, ok := e.(builder.StepStarted); ok {
			steps++
			if s.Total != 9 {
				t.Errorf("step %d total = %d, want 9", s.Step, s.Total)
			}
		}
	}
	if steps != 9 {
		t.Errorf("%d steps, want 9", steps)
	}

	c.target = "unused"
	img, _ = mustBuild(t, w, c)
	wantFiles(t, files(t, img), map[string]string{"/never": "f 0644 0:0 built\n"})
	if cfg := config(t, img); len(cfg.Env) != 1 || cfg.Env[0] != "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" {
		t.Errorf("FROM scratch env = %v, want Docker's default PATH", cfg.Env)
	}
}

func TestOnBuild(t *testing.T) {
	w := newWorld(t)
	img, _ := mustBuild(t, w, buildCase{dockerfile: `FROM BUSYBOX AS base
ONBUILD RUN echo fired > /trigger
FROM base
RUN cat /trigger
`})
	wantFiles(t, files(t, img), map[string]string{"/trigger": "f 0644 0:0 fired\n"})
	if cfg := config(t, img); len(cfg.OnBuild) != 0 {
		t.Errorf("OnBuild = %v, want the triggers consumed", cfg.OnBuild)
	}
}

func TestUnusedBuildArgWarning(t *testing.T) {
	w := newWorld(t)
	_, events := mustBuild(t, w, buildCase{dockerfile: "FROM BUSYBOX\nARG USED\n", args: map[string]*string{"USED": str("1"), "UNUSED": str("2"), "HTTP_PROXY": str("p")}})
	var warnings []string
	for _, e := range events {
		if wn, ok := e.(builder.Warning); ok {
			warnings = append(warnings, wn.Message)
		}
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "[UNUSED]") {
		t.Errorf("warnings = %q, want one naming only UNUSED", warnings)
	}
}

func TestFailures(t *testing.T) {
	w := newWorld(t)
	for _, tc := range []struct {
		name, dockerfile string
		line             int
		code             int
		contains         string
	}{
		{"failing RUN", "FROM BUSYBOX\nRUN true\nRUN exit 3\n", 3, 3, "returned a non-zero code: 3"},
		{"RUN --mount", "FROM BUSYBOX\nRUN --mount=type=cache,target=/c true\n", 2, 0, "not supported"},
		{"COPY --link", "FROM BUSYBOX\nCOPY --link a /a\n", 2, 0, "not supported"},
		{"heredoc", "FROM BUSYBOX\nRUN <<EOF\necho hi\nEOF\n", 2, 0, "not supported"},
		{"missing source", "FROM BUSYBOX\nCOPY nothere /x\n", 2, 0, "nothere"},
		{"unknown user", "FROM BUSYBOX\nUSER nobody-here\nRUN true\n", 3, 0, "nobody-here"},
		{"syntax", "FROM BUSYBOX\nFOO bar\n", 2, 0, "unknown instruction"},
		{"missing target", "FROM BUSYBOX\n", 0, 0, "failed to reach build target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := buildCase{dockerfile: tc.dockerfile, files: map[string]string{"a": "a"}}
			if tc.name == "missing target" {
				c.target = "nope"
			}
			_, _, err := w.build(t, c)
			if err == nil {
				t.Fatal("build succeeded")
			}
			if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.contains)) {
				t.Errorf("error %q does not contain %q", err, tc.contains)
			}
			var ie *builder.InstructionError
			if tc.line > 0 && (!errors.As(err, &ie) || ie.Line != tc.line) {
				t.Errorf("error %q does not name line %d", err, tc.line)
			}
			var re *builder.RunError
			if tc.code > 0 && (!errors.As(err, &re) || re.Code != tc.code) {
				t.Errorf("error %q does not carry exit code %d", err, tc.code)
			}
		})
	}
}

func TestSingleSnapshotAndReproducible(t *testing.T) {
	w := newWorld(t)
	c := buildCase{
		dockerfile: "FROM BUSYBOX\nRUN echo one > /one\nCOPY a /a\nWORKDIR /w\nRUN rm /var/lib/base.txt\n",
		files:      map[string]string{"a": "A"},
		single:     true,
		repro:      true,
	}
	img, _ := mustBuild(t, w, c)
	if n := layerCount(t, img); n != 2 {
		t.Errorf("single snapshot: %d layers, want the base's and one more", n)
	}
	wantFiles(t, files(t, img), map[string]string{"/one": "f 0644 0:0 one\n", "/a": "f 0644 0:0 A", "/w": "d 0755 0:0", "/var/lib/base.txt": ""})

	// Reproducible: the same build twice gives the same image, byte for byte.
	again, _ := mustBuild(t, w, c)
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("reproducible builds differ: %s vs %s", d1, d2)
	}
	cf, _ := img.ConfigFile()
	if !cf.Created.Time.Equal(time.Unix(0, 0)) {
		t.Errorf("reproducible image created at %v, want the epoch", cf.Created.Time)
	}
}

// VOLUME as the classic builder runs it: mount points appear at the next RUN, and what
// a RUN writes below a volume never reaches the image; COPY into a volume does.
func TestVolumes(t *testing.T) {
	w := newWorld(t)
	img, _ := mustBuild(t, w, buildCase{
		dockerfile: `FROM BUSYBOX
VOLUME /data
RUN echo lost > /data/file && mkdir /kept
COPY a /data/copied
VOLUME /late
RUN echo lost > /data/other
`,
		files: map[string]string{"a": "A"},
	})
	wantFiles(t, files(t, img), map[string]string{
		"/data":        "d 0755 0:0",
		"/data/file":   "",
		"/kept":        "d 0755 0:0",
		"/data/copied": "f 0644 0:0 A",
		"/late":        "d 0755 0:0",
		"/data/other":  "",
	})
	// base, RUN (mount point /data and /kept), COPY, RUN (mount point /late): the last
	// RUN's write into the existing volume /data adds nothing of its own.
	if n := layerCount(t, img); n != 4 {
		t.Errorf("layers = %d, want 4", n)
	}
}

// HEALTHCHECK fields left at zero keep the previous healthcheck's, as with the classic
// builder; RUN sees $HOSTNAME as a 12-character container ID.
func TestHealthcheckInheritsAndHostname(t *testing.T) {
	w := newWorld(t)
	img, _ := mustBuild(t, w, buildCase{dockerfile: `FROM BUSYBOX AS parent
HEALTHCHECK --interval=5s --retries=3 CMD true
FROM parent
HEALTHCHECK NONE
RUN printf %s "$HOSTNAME" > /hostname && hostname > /uts
`})
	hc := config(t, img).Healthcheck
	if hc == nil || len(hc.Test) != 1 || hc.Test[0] != "NONE" || hc.Interval != 5*time.Second || hc.Retries != 3 {
		t.Errorf("healthcheck = %+v, want NONE with the parent's 5s interval and 3 retries", hc)
	}
	fs := files(t, img)
	host := strings.TrimPrefix(fs["/hostname"], "f 0644 0:0 ")
	if len(host) != 12 || fs["/uts"] != "f 0644 0:0 "+host+"\n" {
		t.Errorf("HOSTNAME %q, hostname %q: want the same 12-character ID", host, fs["/uts"])
	}
}
