package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/test/testworld"
)

// TestAddGitSSH: ADD of an ssh git remote authenticates with the agent the client
// forwards, through kiln build --ssh default=SOCK (host key checked with
// --ssh-known-hosts) and through buildx --ssh default against kiln serve; without
// --ssh the build fails naming the line.
func TestAddGitSSH(t *testing.T) {
	testworld.RequireRoot(t)
	reg := testworld.Registry(t)
	work := t.TempDir()
	testworld.Git(t, work, "init", "-q", "-b", "main")
	if err := os.WriteFile(filepath.Join(work, "a.txt"), []byte("over-ssh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	df := "FROM " + reg + "/busybox:1.35\nCOPY a.txt /\nRUN cat /a.txt\n"
	if err := os.WriteFile(filepath.Join(work, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	testworld.Git(t, work, "add", ".")
	testworld.Git(t, work, "commit", "-q", "-m", "one")
	key := testworld.NewSSHKey(t)
	srv := testworld.GitSSH(t, work, key)
	sock := testworld.SSHAgent(t, key)
	hosts := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(hosts, []byte(srv.KnownHosts), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := writeContext(t, map[string]string{"Dockerfile": "FROM " + reg + "/busybox:1.35\n" +
		"ADD " + srv.URL + "#main /g/\nRUN cat /g/a.txt\n"})

	t.Run("kiln build", func(t *testing.T) {
		base := []string{"--context", "dir://" + ctx, "--dockerfile", filepath.Join(ctx, "Dockerfile"), "--no-push",
			"--insecure-pull", "--state-dir", t.TempDir()}
		out, code := kilnBuild(t, nil, append(base, "--ssh", "default="+sock, "--ssh-known-hosts", hosts)...)
		if code != 0 || !strings.Contains(out, "over-ssh") {
			t.Fatalf("kiln build --ssh exited %d, want the file printed:\n%s", code, out)
		}
		out, code = kilnBuild(t, []string{"SSH_AUTH_SOCK=" + sock}, base...)
		if code == 0 || !strings.Contains(out, `no SSH key "default" forwarded`) || !strings.Contains(out, "Dockerfile:2") {
			t.Errorf("kiln build without --ssh exited %d, want the missing agent named with its line:\n%s", code, out)
		}
	})
	// An ssh build context clones with the --ssh default agent, else $SSH_AUTH_SOCK
	// (as kaniko's go-git did); an unknown host key is refused.
	t.Run("ssh context", func(t *testing.T) {
		// A context must be git@…: go-git reads git@host:PORT:path with a port.
		_, port, _ := strings.Cut(srv.Addr, ":")
		base := []string{"--context", "git@127.0.0.1:" + port + ":repo.git#main", "--no-push", "--insecure-pull", "--state-dir", t.TempDir()}
		for _, tc := range []struct {
			name string
			env  []string
			args []string
			want string // "" expects the build to print the file
		}{
			{name: "--ssh", args: []string{"--ssh", "default=" + sock, "--ssh-known-hosts", hosts}},
			{name: "SSH_AUTH_SOCK", env: []string{"SSH_AUTH_SOCK=" + sock, "SSH_KNOWN_HOSTS=" + hosts}},
			{name: "unknown host", env: []string{"SSH_AUTH_SOCK=" + sock, "SSH_KNOWN_HOSTS=" + os.DevNull}, want: "key is unknown"},
		} {
			out, code := kilnBuild(t, tc.env, append(base, tc.args...)...)
			switch {
			case tc.want == "" && (code != 0 || !strings.Contains(out, "over-ssh")):
				t.Errorf("%s: kiln build exited %d, want the file printed:\n%s", tc.name, code, out)
			case tc.want != "" && (code == 0 || !strings.Contains(out, tc.want)):
				t.Errorf("%s: kiln build exited %d, want %q:\n%s", tc.name, code, tc.want, out)
			}
		}
	})
	t.Run("buildx", func(t *testing.T) {
		cfg := testworld.Buildx(t)
		s := startServer(t, "--insecure-registry", reg, "--fetch-allow", "127.0.0.1") // the ssh server is on loopback
		dest := filepath.Join(t.TempDir(), "out")
		s.mustBuildx(t, cfg, "build", "--progress=plain", "--ssh", "default="+sock, "-o", "type=local,dest="+dest, ctx)
		if got, err := os.ReadFile(filepath.Join(dest, "g", "a.txt")); string(got) != "over-ssh\n" {
			t.Errorf("/g/a.txt = %q, %v", got, err)
		}
		// buildx always offers an ssh provider: without --ssh it answers BuildKit's
		// "unset ssh forward key default", which the build passes on.
		out, code := s.buildx(t, cfg, "", "build", "--progress=plain", ctx)
		if code == 0 || !strings.Contains(out, "unset ssh forward key default") || !strings.Contains(out, ">>> ADD "+srv.URL) {
			t.Errorf("buildx without --ssh exited %d, want the missing agent named at the ADD line:\n%s", code, out)
		}
	})
}
