package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

func TestContextSpecBucket(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{args: nil, want: "/workspace/"},
		{args: []string{"-c", "/src"}, want: "/src"},
		{args: []string{"--bucket", "my-bucket"}, want: "gs://my-bucket"},
		{args: []string{"-c", "/src", "-b", "my-bucket"}, want: "gs://my-bucket"}, // kaniko: the bucket wins
		{args: []string{"-b", "s3://bucket/ctx.tar.gz"}, want: "s3://bucket/ctx.tar.gz"},
	}
	for _, tt := range tests {
		f, _ := parseFlags(t, tt.args...)
		if got := contextSpec(f); got != tt.want {
			t.Errorf("%q: context %q, want %q", tt.args, got, tt.want)
		}
	}
}

func TestKanikoEnv(t *testing.T) {
	t.Parallel()
	ctxDir := testContext(t)
	kdir, envDir := t.TempDir(), t.TempDir()
	tests := []struct {
		name          string
		args          []string
		env           map[string]string
		inPlace       bool
		wantErr       string
		wantPush      bool
		wantStateIn   string // the state directory's parent
		wantIgnore    string // a path the in-place ignore set holds
		wantExtractRt int
	}{
		{name: "KANIKO_NO_PUSH=true is --no-push", env: map[string]string{"KANIKO_NO_PUSH": "true"}},
		{name: "KANIKO_NO_PUSH=false leaves the flag", args: []string{"--no-push"}, env: map[string]string{"KANIKO_NO_PUSH": "false"}},
		{name: "KANIKO_NO_PUSH=false pushes", args: []string{"-d", "registry.test/app:1"}, env: map[string]string{"KANIKO_NO_PUSH": "false"}, wantPush: true},
		{name: "KANIKO_NO_PUSH not a boolean", env: map[string]string{"KANIKO_NO_PUSH": "maybe"}, wantErr: `KANIKO_NO_PUSH="maybe": want true or false`},
		{name: "--kaniko-dir holds the state", args: []string{"--no-push", "--kaniko-dir", kdir}, wantStateIn: filepath.Join(kdir, "state")},
		{name: "KANIKO_DIR holds the state", args: []string{"--no-push"}, env: map[string]string{"KANIKO_DIR": envDir}, wantStateIn: filepath.Join(envDir, "state")},
		{name: "--kaniko-dir wins over KANIKO_DIR", args: []string{"--no-push", "--kaniko-dir", kdir}, env: map[string]string{"KANIKO_DIR": envDir}, wantStateIn: filepath.Join(kdir, "state")},
		{name: "in place, the kaniko dir is left alone", args: []string{"--no-push", "--isolation=inplace", "--kaniko-dir", kdir}, inPlace: true, wantStateIn: filepath.Join(kdir, "state"), wantIgnore: kdir},
		{name: "KANIKO_DIR empty", args: []string{"--no-push"}, env: map[string]string{"KANIKO_DIR": ""}, wantErr: "KANIKO_DIR is set but empty"},
		{name: "--image-fs-extract-retry reaches the request", args: []string{"--no-push", "--image-fs-extract-retry", "3"}, wantExtractRt: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, _ := parseFlags(t, append([]string{"-c", ctxDir, "--skip-push-permission-check"}, tt.args...)...)
			p, err := planBuild(context.Background(), f, fakeHost(t, tt.inPlace, tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("planBuild: err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("planBuild: %v", err)
			}
			defer p.req.Context.Close()
			if p.outputs.push != tt.wantPush {
				t.Errorf("push = %v, want %v", p.outputs.push, tt.wantPush)
			}
			if tt.wantStateIn != "" {
				if got := filepath.Dir(p.workspace.StateDir); got != tt.wantStateIn || !p.ownStateDir {
					t.Errorf("state directory %s (own %v), want a new one in %s", p.workspace.StateDir, p.ownStateDir, tt.wantStateIn)
				}
			}
			if tt.wantIgnore != "" && !slices.Contains(p.workspace.Ignore.Paths(), tt.wantIgnore) {
				t.Errorf("ignore set %q lacks %s", p.workspace.Ignore.Paths(), tt.wantIgnore)
			}
			if p.req.ExtractRetries != tt.wantExtractRt {
				t.Errorf("ExtractRetries = %d, want %d", p.req.ExtractRetries, tt.wantExtractRt)
			}
		})
	}
}

func TestKanikoEnvNotices(t *testing.T) {
	t.Parallel()
	env := map[string]string{"BENCHMARK_FILE": "/tmp/b.json", "UPSTREAM_CLIENT_TYPE": "", "KANIKO_NO_PUSH": "true"}
	got := kanikoEnvNotices(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if len(got) != 1 || !strings.HasPrefix(got[0], "BENCHMARK_FILE is set, but kiln does not read it: ") {
		t.Errorf("notices %q, want one for BENCHMARK_FILE", got)
	}
}

func TestUseNewRunIsANoOpWithOneLine(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	run([]string{"build", "-c", bogusContext(t), "--no-push", "--isolation=chroot", "--use-new-run"}, &stdout, &stderr, fakeHost(t, false, nil))
	if n := strings.Count(stderr.String(), "--use-new-run changes nothing"); n != 1 {
		t.Errorf("%d info lines about --use-new-run, want 1; stderr:\n%s", n, stderr.String())
	}
	if !strings.Contains(stderr.String(), bogusDockerfileError) {
		t.Errorf("the build did not go on to the Dockerfile; stderr:\n%s", stderr.String())
	}
}

func TestWriteBuilderOutput(t *testing.T) {
	t.Parallel()
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	var tags []name.Tag
	for _, s := range []string{"registry.test/app:1", "registry.test/app:latest"} {
		tag, err := name.NewTag(s)
		if err != nil {
			t.Fatal(err)
		}
		tags = append(tags, tag)
	}
	dir := t.TempDir()
	if err := writeBuilderOutput(dir, img, tags); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"registry.test/app:1","digest":"` + d.String() + `"}` + "\n" +
		`{"name":"registry.test/app:latest","digest":"` + d.String() + `"}` + "\n"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("images file (-want +got):\n%s", diff)
	}
	if err := writeBuilderOutput("", img, tags); err != nil {
		t.Errorf("no BUILDER_OUTPUT: %v", err)
	}
}
