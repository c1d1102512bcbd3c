package apiserver

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

func TestBuildFailures(t *testing.T) {
	t.Parallel()
	w := newBuildWorld(t, nil)
	ts := newBuildServer(t, BuildConfig{})
	runFail := "The command '/bin/sh -c echo failing; exit 3' returned a non-zero code: 3"
	tests := []struct {
		name   string
		query  string
		body   []byte
		status int
		msg    string // the HTTP error's message, or the in-stream error's
		code   int
	}{{
		name:   "RUN exits 3 (build-fail-run)",
		body:   contextTar(t, map[string]string{"Dockerfile": "FROM " + w.busybox + "\nRUN echo failing; exit 3\nRUN echo never\n"}),
		status: 200, msg: runFail, code: 3,
	}, {
		name: "parse error (build-syntax-error)",
		body: contextTar(t, map[string]string{"Dockerfile": "FROM " + w.busybox + "\nRUNN echo typo\n"}),
		// dockerd 20.10 says no more; buildkit's parser adds its suggestion.
		status: 400, msg: "dockerfile parse error line 2: unknown instruction: RUNN (did you mean RUN?)",
	}, {
		name:   "a missing base image: no code",
		body:   contextTar(t, map[string]string{"Dockerfile": "FROM " + w.registry + "/nothere:1\n"}),
		status: 200,
	}, {
		name:   "COPY of a missing file names the line",
		body:   contextTar(t, map[string]string{"Dockerfile": "FROM " + w.busybox + "\nCOPY nothere /\n"}),
		status: 200, msg: "Dockerfile:2",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := postBuild(t, ts.URL, tt.query, tt.body, nil)
			if resp.status != tt.status {
				t.Fatalf("HTTP %d %s, want %d", resp.status, resp.body, tt.status)
			}
			if tt.status != http.StatusOK {
				if want := mustJSON(map[string]string{"message": tt.msg}); resp.body != want {
					t.Errorf("body %q, want %q", resp.body, want)
				}
				return
			}
			last := resp.last()
			if last.ErrorDetail == nil || last.Error == "" {
				t.Fatalf("last message %+v, want an error with errorDetail", last)
			}
			if last.ErrorDetail.Code != tt.code || !strings.Contains(last.Error, tt.msg) || last.ErrorDetail.Message != last.Error {
				t.Errorf("error %+v %q, want code %d and %q", last.ErrorDetail, last.Error, tt.code, tt.msg)
			}
		})
	}
}

func mustJSON(v any) string {
	raw, _ := json.Marshal(v)
	return string(raw) + "\n"
}

// TestBuildRequestErrors covers the answers given before a build starts; they need
// no root.
func TestBuildRequestErrors(t *testing.T) {
	t.Parallel()
	ts := newBuildServer(t, BuildConfig{})
	tarWith := func(files map[string]string) []byte { return contextTar(t, files) }
	tests := []struct {
		name   string
		query  string
		body   []byte
		status int
		msg    string
	}{
		{"bad build args (curl-build-badquery)", "buildargs=notjson", tarWith(map[string]string{"Dockerfile": "FROM x\n"}), 400,
			"error reading build args: invalid character 'o' in literal null (expecting 'u')"},
		{"no Dockerfile (curl-build-nodockerfile)", "t=apicap-nodf", tarWith(map[string]string{"hello.txt": "hello\n"}), 500,
			"Cannot locate specified Dockerfile: Dockerfile"},
		{"a named Dockerfile that is missing", "dockerfile=sub/Dockerfile", tarWith(map[string]string{"Dockerfile": "FROM x\n"}), 500,
			"Cannot locate specified Dockerfile: sub/Dockerfile"},
		{"a Dockerfile outside the context", "dockerfile=../Dockerfile", tarWith(map[string]string{"Dockerfile": "FROM x\n"}), 500,
			"forbidden path outside the build context: ../Dockerfile"},
		{"an empty Dockerfile", "", tarWith(map[string]string{"Dockerfile": ""}), 500,
			"the Dockerfile (Dockerfile) cannot be empty"},
		{"not a tar (curl-build-notar)", "t=apicap-notar", []byte("this is not a tar"), 500, "unexpected EOF"},
		{"an escaping entry", "", tarWith(map[string]string{"../evil": "x"}), 500,
			`build context entry "../evil": path escapes the context`},
		{"BuildKit", "version=2", tarWith(map[string]string{"Dockerfile": "FROM x\n"}), 400,
			"BuildKit (version=2) is not supported by kiln: use the classic builder (DOCKER_BUILDKIT=0 docker build, or a docker CLI without buildx)"},
		{"unreachable git remote", "remote=git://127.0.0.1:1/x.git", nil, 500,
			"git context git://127.0.0.1:1/x.git: dial tcp 127.0.0.1:1: connect: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := postBuild(t, ts.URL, tt.query, tt.body, nil)
			if resp.status != tt.status || resp.body != mustJSON(map[string]string{"message": tt.msg}) {
				t.Errorf("HTTP %d %q, want %d %q", resp.status, resp.body, tt.status, tt.msg)
			}
		})
	}
	t.Run("no store", func(t *testing.T) {
		t.Parallel()
		l := logrus.New()
		l.SetOutput(io.Discard)
		s := httptestServer(t, New(WithLogger(l)).Handler())
		resp := postBuild(t, s.URL, "", tarWith(map[string]string{"Dockerfile": "FROM x\n"}), nil)
		if resp.status != 500 || resp.body != mustJSON(map[string]string{"message": "no image store"}) {
			t.Errorf("HTTP %d %q", resp.status, resp.body)
		}
	})
}
