package main

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/contexts"
)

func TestParseGitFlag(t *testing.T) {
	t.Parallel()
	tests := []struct {
		spec    string
		want    contexts.GitOptions
		wantErr string
	}{
		{spec: ""},
		{spec: "branch=main", want: contexts.GitOptions{Branch: "main"}},
		{
			spec: "branch=dev,single-branch=true,recurse-submodules=true,insecure-skip-tls=true",
			want: contexts.GitOptions{Branch: "dev", SingleBranch: true, RecurseSubmodules: true, InsecureSkipTLS: true},
		},
		{spec: "single-branch=false", want: contexts.GitOptions{}},
		{spec: "branch", wantErr: "not key=value"},
		{spec: "single-branch=maybe", wantErr: "single-branch"},
		{spec: "depth=1", wantErr: "unknown option"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			t.Parallel()
			got, err := parseGitFlag(tt.spec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseGitFlag(%q) = %v, want an error naming %q", tt.spec, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseGitFlag(%q) (-want +got):\n%s", tt.spec, diff)
			}
		})
	}
}

// TestPlanTarStdinContext plans a build whose context is a tar on standard input,
// narrowed by --context-sub-path, and checks its temporary directory goes on Close.
// TestGitPullMethod: kaniko's GIT_PULL_METHOD picks http only when it says so;
// unset, https and any other value are https, as in kaniko.
func TestGitPullMethod(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env  map[string]string
		want string
	}{
		{env: nil, want: "https"},
		{env: map[string]string{"GIT_PULL_METHOD": "http"}, want: "http"},
		{env: map[string]string{"GIT_PULL_METHOD": "https"}, want: "https"},
		{env: map[string]string{"GIT_PULL_METHOD": ""}, want: "https"},
		{env: map[string]string{"GIT_PULL_METHOD": "HTTP"}, want: "https"},
		{env: map[string]string{"GIT_PULL_METHOD": "ssh"}, want: "https"},
	}
	for _, tt := range tests {
		lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
		if got := gitPullMethod(lookup); got != tt.want {
			t.Errorf("gitPullMethod(%v) = %q, want %q", tt.env, got, tt.want)
		}
	}
}

func TestPlanTarStdinContext(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	const dockerfile = "FROM scratch\n"
	for _, e := range []struct{ name, body string }{{"app/Dockerfile", dockerfile}, {"Dockerfile", "FROM wrong\n"}} {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	f, _ := parseFlags(t, "--no-push", "--context", "tar://stdin", "--context-sub-path", "app")
	h := fakeHost(t, false, nil)
	h.stdin = &b
	p, err := planBuild(context.Background(), f, h)
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(p.workspace.StateDir)
	if got := string(p.req.Dockerfile); got != dockerfile {
		t.Errorf("Dockerfile = %q, want %q (the sub-path's)", got, dockerfile)
	}
	root := p.req.Context.TempRoot()
	if root == "" {
		t.Fatal("a tar context owns no temporary directory")
	}
	if err := p.req.Context.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Errorf("Close left %s: %v", root, err)
	}
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{in: "1024", want: 1024},
		{in: "512MiB", want: 512 << 20},
		{in: "32GiB", want: 32 << 30},
		{in: "4g", want: 4 << 30},
		{in: "0", wantErr: "must be positive"},
		{in: "lots", wantErr: "not a size"},
		{in: "", wantErr: "not a size"},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseSize(%q) = %d, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestCloudOptionsFromEnv(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"S3_ENDPOINT":               "http://127.0.0.1:9000",
		"S3_FORCE_PATH_STYLE":       "true",
		"AZURE_STORAGE_ACCESS_KEY":  "a2V5",
		"KILN_AZURE_BLOB_ENDPOINTS": " http://127.0.0.1:10000/devstoreaccount1 ,,http://127.0.0.1:10001/other",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	got, err := cloudOptions(lookup)
	if err != nil {
		t.Fatal(err)
	}
	want := contexts.CloudOptions{
		S3Endpoint:         "http://127.0.0.1:9000",
		S3ForcePathStyle:   true,
		AzureAccessKey:     "a2V5",
		AzureBlobEndpoints: []string{"http://127.0.0.1:10000/devstoreaccount1", "http://127.0.0.1:10001/other"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("cloudOptions (-want +got):\n%s", d)
	}
	env["S3_FORCE_PATH_STYLE"] = "sideways"
	if _, err := cloudOptions(lookup); err == nil || !strings.Contains(err.Error(), "S3_FORCE_PATH_STYLE") {
		t.Errorf("bad S3_FORCE_PATH_STYLE: err = %v, want one naming the variable", err)
	}
}
