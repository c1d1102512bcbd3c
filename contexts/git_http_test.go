package contexts

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/test/testworld"
)

// TestFromGitHTTPS clones from the real `git http-backend` over TLS with a
// self-signed certificate, behind HTTP basic authentication.
func TestFromGitHTTPS(t *testing.T) {
	t.Parallel()
	work, repo := newGitRepo(t, func(string) {})
	srv := testworld.GitHTTP(t, work, testworld.WithGitUser("alice", "s3cret"), testworld.WithGitUser("tok123", ""))
	insecure := GitOptions{InsecureSkipTLS: true}
	withUser := func(g GitOptions, user, password string) GitOptions {
		g.Username, g.Password = user, password
		return g
	}
	withToken := func(g GitOptions, token string) GitOptions { g.Token = token; return g }

	tests := []struct {
		name    string
		spec    string
		g       GitOptions
		version string   // content of "version"; "" expects an error
		errPart []string // all in the error
	}{
		{name: "username and password", spec: srv.URL, g: withUser(insecure, "alice", "s3cret"), version: "two\n"},
		// kaniko sends GIT_TOKEN as the user name; a token wins over a user and password.
		{name: "token", spec: srv.URL, g: withToken(withUser(insecure, "alice", "wrong"), "tok123"), version: "two\n"},
		{name: "branch option", spec: srv.URL, g: func() GitOptions { g := withUser(insecure, "alice", "s3cret"); g.Branch = "feature"; return g }(), version: "feature\n"},
		{name: "branch fragment", spec: srv.URL + "#feature", g: withUser(insecure, "alice", "s3cret"), version: "feature\n"},
		{name: "commit fragment", spec: srv.URL + "#refs/heads/main#" + repo.first, g: withUser(insecure, "alice", "s3cret"), version: "one\n"},
		{name: "wrong password", spec: srv.URL, g: withUser(insecure, "alice", "hunter2"), errPart: []string{srv.URL, "authentication required"}},
		{name: "wrong token", spec: srv.URL, g: withToken(insecure, "hunter2"), errPart: []string{"authentication required"}},
		{name: "no credentials", spec: srv.URL, g: insecure, errPart: []string{"authentication required"}},
		{name: "self-signed certificate", spec: srv.URL, g: withUser(GitOptions{}, "alice", "s3cret"), errPart: []string{srv.URL, "certificate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "ctx")
			c, err := FromGit(context.Background(), tt.spec, dir, tt.g)
			if tt.version == "" {
				if err == nil {
					t.Fatal("FromGit succeeded")
				}
				for _, part := range tt.errPart {
					if !strings.Contains(err.Error(), part) {
						t.Errorf("error %q does not contain %q", err, part)
					}
				}
				if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error reveals a secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromGit(%s): %v", tt.spec, err)
			}
			got, err := os.ReadFile(filepath.Join(c.Dir, "version"))
			if err != nil || string(got) != tt.version {
				t.Errorf("version = %q, %v; want %q", got, err, tt.version)
			}
		})
	}
}

// TestFromGitLimits holds clones to the limits archive contexts get.
func TestFromGitLimits(t *testing.T) {
	t.Parallel()
	big := make([]byte, 2<<20)
	for i := range big {
		big[i] = byte(i*7919 + i>>8) // poorly compressible, so the packfile is large too
	}
	work, _ := newGitRepo(t, func(dir string) {
		if err := os.WriteFile(filepath.Join(dir, "big.bin"), big, 0o644); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "a"), "a\n", 0o644)
		writeFile(t, filepath.Join(dir, "b"), "b\n", 0o644)
	})
	url := testworld.GitDaemon(t, work)
	plain := testworld.GitHTTP(t, work, testworld.WithPlainHTTP()).URL

	tests := []struct {
		name    string
		spec    string
		limits  []ArchiveOption
		wantErr string // "" = the clone succeeds
	}{
		{name: "under the limits", spec: url, limits: []ArchiveOption{WithMaxBytes(8 << 20), WithMaxEntries(10)}},
		{name: "file larger than the byte limit", spec: url, limits: []ArchiveOption{WithMaxBytes(1 << 20)}, wantErr: "more than 1048576 bytes"},
		{name: "over http", spec: plain, limits: []ArchiveOption{WithMaxBytes(1 << 20)}, wantErr: "more than 1048576 bytes"},
		{name: "full history", spec: url + "#main#HEAD~1", limits: []ArchiveOption{WithMaxBytes(1 << 20)}, wantErr: "more than 1048576 bytes"},
		{name: "too many files", spec: url, limits: []ArchiveOption{WithMaxEntries(3)}, wantErr: "the checked-out files: more than 3 files"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "ctx")
			c, err := FromGit(context.Background(), tt.spec, dir, GitOptions{}, tt.limits...)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("FromGit: %v", err)
				}
				if fi, err := os.Stat(filepath.Join(c.Dir, "big.bin")); err != nil || fi.Size() != int64(len(big)) {
					t.Errorf("big.bin: %v %v", fi, err)
				}
				return
			}
			if !errors.Is(err, ErrLimitExceeded) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("FromGit error = %v, want ErrLimitExceeded with %q", err, tt.wantErr)
			}
		})
	}
}

// TestFromGitPullMethod fetches kaniko's git://HOST/path#ref form from the real git
// http-backend: GIT_PULL_METHOD (PullMethod) makes git:// mean https or http, and the
// credentials and TLS options then apply as to an https URL.
func TestFromGitPullMethod(t *testing.T) {
	t.Parallel()
	work, repo := newGitRepo(t, func(string) {})
	plain := testworld.GitHTTP(t, work, testworld.WithPlainHTTP())
	tlsSrv := testworld.GitHTTP(t, work, testworld.WithGitUser("alice", "s3cret"), testworld.WithGitUser("tok123", ""))
	gitForm := func(u string) string { return "git://" + u[strings.Index(u, "://")+3:] }

	tests := []struct {
		name    string
		spec    string
		g       GitOptions
		version string // content of "version"; "" expects an error
		errPart string
	}{
		{name: "http", spec: gitForm(plain.URL) + "#refs/heads/main", g: GitOptions{PullMethod: "http"}, version: "two\n"},
		{name: "http branch", spec: gitForm(plain.URL) + "#refs/heads/feature", g: GitOptions{PullMethod: "http"}, version: "feature\n"},
		{name: "http ref and commit", spec: gitForm(plain.URL) + "#refs/heads/main#" + repo.first, g: GitOptions{PullMethod: "http"}, version: "one\n"},
		{name: "https with a password", spec: gitForm(tlsSrv.URL) + "#refs/heads/main",
			g: GitOptions{PullMethod: "https", InsecureSkipTLS: true, Username: "alice", Password: "s3cret"}, version: "two\n"},
		{name: "https with a token", spec: gitForm(tlsSrv.URL), g: GitOptions{PullMethod: "https", InsecureSkipTLS: true, Token: "tok123"}, version: "two\n"},
		{name: "https checks the certificate", spec: gitForm(tlsSrv.URL), g: GitOptions{PullMethod: "https", Token: "tok123"}, errPart: "certificate"},
		// kaniko's --git branch= wins over the URL's ref.
		{name: "branch option over fragment", spec: gitForm(plain.URL) + "#refs/heads/main", g: GitOptions{PullMethod: "http", Branch: "feature"}, version: "feature\n"},
		{name: "https to an http server", spec: gitForm(plain.URL), g: GitOptions{PullMethod: "https"}, errPart: "https://127.0.0.1"},
		{name: "unknown method", spec: gitForm(plain.URL), g: GitOptions{PullMethod: "ftp"}, errPart: `pull method "ftp"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "ctx")
			c, err := FromGit(context.Background(), tt.spec, dir, tt.g)
			if tt.version == "" {
				if err == nil || !strings.Contains(err.Error(), tt.errPart) {
					t.Fatalf("FromGit(%s) = %v, want an error naming %q", tt.spec, err, tt.errPart)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromGit(%s): %v", tt.spec, err)
			}
			got, err := os.ReadFile(filepath.Join(c.Dir, "version"))
			if err != nil || string(got) != tt.version {
				t.Errorf("version = %q, %v; want %q", got, err, tt.version)
			}
		})
	}
}

// TestFromGitSubmodules clones a repository whose submodule lives on the same real
// git http-backend: --git recurse-submodules=true checks it out, and without it the
// submodule's directory stays empty, as with kaniko.
func TestFromGitSubmodules(t *testing.T) {
	t.Parallel()
	subWork, _ := newGitRepo(t, func(string) {})
	srv := testworld.GitHTTP(t, subWork, testworld.WithPlainHTTP())
	parent := t.TempDir()
	runGit(t, parent, "init", "-q", "-b", "main")
	writeFile(t, filepath.Join(parent, "Dockerfile"), "FROM scratch\n", 0o644)
	runGit(t, parent, "-c", "protocol.allow=always", "submodule", "add", "-q", srv.URL, "lib")
	runGit(t, parent, "add", "-A")
	runGit(t, parent, "commit", "-q", "-m", "with a submodule")
	url := srv.AddRepo(t, "parent.git", parent)

	for _, recurse := range []bool{true, false} {
		t.Run(fmt.Sprint("recurse=", recurse), func(t *testing.T) {
			t.Parallel()
			c, err := FromGit(context.Background(), url, filepath.Join(t.TempDir(), "ctx"), GitOptions{RecurseSubmodules: recurse})
			if err != nil {
				t.Fatalf("FromGit: %v", err)
			}
			got, err := os.ReadFile(filepath.Join(c.Dir, "lib", "version"))
			if recurse && (err != nil || string(got) != "two\n") {
				t.Errorf("lib/version = %q, %v; want the submodule's file", got, err)
			}
			if !recurse && err == nil {
				t.Errorf("lib/version exists without recurse-submodules")
			}
		})
	}
}
