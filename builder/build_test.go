package builder_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/builder"
)

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
		endLine          int // the last line of a multi-line instruction
	}{
		{"failing RUN", "FROM BUSYBOX\nRUN true\nRUN exit 3\n", 3, 3, "returned a non-zero code: 3", 0},
		{"RUN --mount of an unknown type", "FROM BUSYBOX\nRUN --mount=type=weird,target=/c true\n", 2, 0, "weird", 0},
		{"COPY --link by name", "FROM BUSYBOX\nCOPY --link --chown=root a /a\n", 2, 0, "can't be resolved when used with --link", 0},
		{"failing heredoc", "FROM BUSYBOX\nRUN <<EOF\nexit 5\nEOF\n", 2, 5, "returned a non-zero code: 5", 4},
		{"missing source", "FROM BUSYBOX\nCOPY nothere /x\n", 2, 0, "nothere", 0},
		{"unknown user", "FROM BUSYBOX\nUSER nobody-here\nRUN true\n", 3, 0, "nobody-here", 0},
		{"syntax", "FROM BUSYBOX\nFOO bar\n", 2, 0, "unknown instruction", 0},
		{"missing target", "FROM BUSYBOX\n", 0, 0, "failed to reach build target", 0},
		{"failing RUN on two lines", "FROM BUSYBOX\nRUN true && \\\n  exit 4\n", 2, 4, "returned a non-zero code: 4", 3},
		{"syntax on two lines", "FROM BUSYBOX\nCOPY \\\n  onlyone\n", 2, 0, "requires at least two arguments", 3},
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
			if tc.line > 0 && (!errors.As(err, &ie) || ie.Line != tc.line || ie.EndLine != tc.endLine) {
				t.Errorf("error %q (%+v) does not name lines %d-%d", err, ie, tc.line, tc.endLine)
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

// The ID announced after the last step is the built image's ID.
func TestLastStepIDIsImageID(t *testing.T) {
	w := newWorld(t)
	res, events, err := w.build(t, buildCase{dockerfile: "FROM BUSYBOX\nENV A=1\nRUN echo x > /x\n"})
	if err != nil {
		t.Fatal(err)
	}
	var last v1.Hash
	for _, e := range events {
		if d, ok := e.(builder.StepDone); ok {
			last = d.ImageID
		}
	}
	if last != res.ID {
		t.Errorf("last step ID %s, built image ID %s", last, res.ID)
	}
}
