package contexts

import (
	"testing"

	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/google/go-cmp/cmp"
)

func TestParseGitURL(t *testing.T) {
	t.Parallel()
	commit := "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		spec string
		want gitRef
	}{
		{"git://h/r.git", gitRef{url: "git://h/r.git"}},
		{"git://h/r.git#refs/heads/dev#" + commit, gitRef{url: "git://h/r.git", ref: "refs/heads/dev", commit: commit}},
		{"https://h/r.git#main", gitRef{url: "https://h/r.git", ref: "main"}},
		{"https://h/r.git#main:docker/app", gitRef{url: "https://h/r.git", ref: "main", subDir: "docker/app"}},
		{"https://h/r.git#" + commit, gitRef{url: "https://h/r.git", commit: commit}},
		{"github.com/o/r#v1", gitRef{url: "https://github.com/o/r", ref: "v1"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, parseGitURL(tt.spec), cmp.AllowUnexported(gitRef{})); diff != "" {
			t.Errorf("parseGitURL(%q) (-want +got):\n%s", tt.spec, diff)
		}
	}
}

func TestGitAuth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		url  string
		g    GitOptions
		want *githttp.BasicAuth
	}{
		{"none", "https://h/r.git", GitOptions{}, nil},
		// kaniko sends the token as the user name, with no password.
		{"token wins", "https://h/r.git", GitOptions{Token: "tok", Username: "u", Password: "p"}, &githttp.BasicAuth{Username: "tok"}},
		{"user and password", "https://h/r.git", GitOptions{Username: "u", Password: "p"}, &githttp.BasicAuth{Username: "u", Password: "p"}},
		{"not sent over git://", "git://h/r.git", GitOptions{Token: "tok"}, nil},
	}
	for _, tt := range tests {
		got := gitAuth(tt.url, tt.g)
		if tt.want == nil {
			if got != nil {
				t.Errorf("%s: auth %v, want none", tt.name, got)
			}
			continue
		}
		if b, ok := got.(*githttp.BasicAuth); !ok || *b != *tt.want {
			t.Errorf("%s: auth %#v, want %#v", tt.name, got, tt.want)
		}
	}
}
