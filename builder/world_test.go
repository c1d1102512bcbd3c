package builder_test

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/builder"
	"github.com/kiln-build/kiln/contexts"
	"github.com/kiln-build/kiln/isolation"
	"github.com/kiln-build/kiln/test/testworld"
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
	host, ref := testworld.BusyboxRegistry(t, nil,
		testworld.Entry{Name: "home/"},
		testworld.Entry{Name: "home/app/", UID: 1000, GID: 1000},
		testworld.Entry{Name: "var/"},
		testworld.Entry{Name: "var/lib/"},
		testworld.Entry{Name: "etc/passwd", Data: "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"},
		testworld.Entry{Name: "etc/group", Data: "root:x:0:\napp:x:1000:\nextra:x:2000:app\n"},
		testworld.Entry{Name: "var/lib/base.txt", Data: "from the base\n"},
	)
	return &world{registry: host, busybox: ref}
}

// buildCase builds a Dockerfile over a context of the given files.
type buildCase struct {
	dockerfile  string
	files       map[string]string
	args        map[string]*string
	target      string
	labels      map[string]string
	single      bool // --single-snapshot
	repro       bool // --reproducible
	insecure    bool // Workspace.AllowInsecure
	noNetwork   bool // Request.NoNetwork (docker build --network=none)
	ssh         builder.SSHAgents
	knownHosts  string // Workspace.SSHKnownHostsFile
	unconfined  bool   // Workspace.SeccompUnconfined
	limits      isolation.Limits
	workspace   func(*builder.Workspace) // edits the workspace before the build
	inputLimits builder.InputLimits
	phases      *builder.Phases // Request.Phases
	options     []builder.Option
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
	ws := builder.Workspace{Isolation: isolation.Chroot, StateDir: t.TempDir(), AllowInsecure: c.insecure, SSHKnownHostsFile: c.knownHosts, SeccompUnconfined: c.unconfined,
		InputLimits: c.inputLimits}
	if c.workspace != nil {
		c.workspace(&ws)
	}
	res, err := builder.Build(context.Background(), &builder.Request{
		Dockerfile:     []byte(df),
		Context:        bctx,
		BuildArgs:      c.args,
		Target:         c.target,
		Labels:         c.labels,
		SingleSnapshot: c.single,
		Reproducible:   c.repro,
		NoNetwork:      c.noNetwork,
		SSH:            c.ssh,
		Limits:         c.limits,
		Phases:         c.phases,
	},
		append([]builder.Option{
			builder.WithWorkspace(ws),
			builder.WithEvents(func(e builder.Event) { events = append(events, e) }),
		}, c.options...)...,
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
	if err := validate.Image(outputImage(t, res.Image)); err != nil {
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
