package builder

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The user database of the tests below: app's primary group (1001, "appgrp") differs
// from its same-named group "app" (2000); app is listed in its own primary group, in
// wheel and in docker; 1500 has a passwd entry named "num".
const (
	testPasswd = "root:x:0:0:root:/root:/bin/sh\n" +
		"app:x:1000:1001:app:/home/app:/bin/sh\n" +
		"num:x:1500:77::/srv:/bin/sh\n"
	testGroup = "root:x:0:\nappgrp:x:1001:app\napp:x:2000:\nwheel:x:10:app,root\n" +
		"docker:x:999:app\nnumgrp:x:88:num\n"
)

func userDB(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	writeFile(t, root, "etc/passwd", testPasswd)
	writeFile(t, root, "etc/group", testGroup)
	return root
}

// TestResolveUser pins what dockerd 20.10 gives a RUN under each USER form (observed
// with `id` in DOCKER_BUILDKIT=0 builds): the gid always leads the supplementary
// groups, memberships follow only when no group is given.
func TestResolveUser(t *testing.T) {
	t.Parallel()
	root := userDB(t)
	for _, tc := range []struct {
		spec    string
		want    identity
		wantErr string
	}{
		// Docker: uid=0(root) gid=0(root) groups=0(root),10(wheel)
		{spec: "", want: identity{UID: 0, GID: 0, Groups: []int{0, 10}, Home: "/root"}},
		{spec: "root", want: identity{UID: 0, GID: 0, Groups: []int{0, 10}, Home: "/root"}},
		// Docker: uid=1000(u) gid=1000(ug) groups=1000(ug),3000(dev),3001(ops), u listed in ug
		{spec: "app", want: identity{UID: 1000, GID: 1001, Groups: []int{1001, 10, 999}, Home: "/home/app"}},
		{spec: "1000", want: identity{UID: 1000, GID: 1001, Groups: []int{1001, 10, 999}, Home: "/home/app"}},
		// Docker: uid=4242(x) gid=77 groups=77,88(g) for USER 4242 with an entry named x
		{spec: "1500", want: identity{UID: 1500, GID: 77, Groups: []int{77, 88}, Home: "/srv"}},
		// Docker: uid=4242 gid=0(root) groups=0(root)
		{spec: "4242", want: identity{UID: 4242, GID: 0, Groups: []int{0}, Home: "/"}},
		// Docker: uid=1000(u) gid=3000(dev) groups=3000(dev)
		{spec: "app:wheel", want: identity{UID: 1000, GID: 10, Groups: []int{10}, Home: "/home/app"}},
		{spec: "app:5555", want: identity{UID: 1000, GID: 5555, Groups: []int{5555}, Home: "/home/app"}},
		{spec: "1000:999", want: identity{UID: 1000, GID: 999, Groups: []int{999}, Home: "/home/app"}},
		{spec: "4242:4343", want: identity{UID: 4242, GID: 4343, Groups: []int{4343}, Home: "/"}},
		{spec: "ghost", wantErr: "unable to find user ghost: no matching entries in passwd file"},
		{spec: "app:ghosts", wantErr: "unable to find group ghosts: no matching entries in group file"},
	} {
		got, err := resolveUser(root, tc.spec)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("USER %q: error %v, want %q", tc.spec, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("USER %q: %v", tc.spec, err)
			continue
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("USER %q (-want +got):\n%s", tc.spec, d)
		}
	}
}

// TestResolveUserWithoutPasswd: an image without /etc/passwd runs RUN as root under
// Docker (uid=0 gid=0(root) groups=0(root)); USER root is an error there.
func TestResolveUserWithoutPasswd(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	got, err := resolveUser(root, "")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(identity{Groups: []int{0}, Home: "/"}, got); d != "" {
		t.Errorf("no USER, no passwd (-want +got):\n%s", d)
	}
	if _, err := resolveUser(root, "root"); err == nil || err.Error() != "unable to find user root: no matching entries in passwd file" {
		t.Errorf("USER root, no passwd: error %v", err)
	}
}

// TestResolveChown pins the classic builder's --chown resolution and its error texts,
// each observed with DOCKER_BUILDKIT=0 on dockerd 20.10.
func TestResolveChown(t *testing.T) {
	t.Parallel()
	root := userDB(t)
	const prefix = "unable to convert uid/gid chown string to host mapping: "
	for _, tc := range []struct {
		spec     string
		uid, gid int
		wantErr  string
	}{
		// A single name is user app and group app (2000), not app's primary group 1001.
		{spec: "app", uid: 1000, gid: 2000},
		{spec: "root", uid: 0, gid: 0},
		{spec: "1000", uid: 1000, gid: 1000},
		{spec: "4242", uid: 4242, gid: 4242},
		{spec: "app:docker", uid: 1000, gid: 999},
		{spec: "app:4343", uid: 1000, gid: 4343},
		{spec: "4242:wheel", uid: 4242, gid: 10},
		{spec: "1000:999", uid: 1000, gid: 999},
		{spec: "num", wantErr: prefix + "can't find gid for group num: no such group: num"},
		{spec: "appgrp", wantErr: prefix + "can't find uid for user appgrp: no such user: appgrp"},
		{spec: "ghost", wantErr: prefix + "can't find uid for user ghost: no such user: ghost"},
		{spec: "ghost:root", wantErr: prefix + "can't find uid for user ghost: no such user: ghost"},
		{spec: "ghost:1000", wantErr: prefix + "can't find uid for user ghost: no such user: ghost"},
		{spec: "root:ghost", wantErr: prefix + "can't find gid for group ghost: no such group: ghost"},
		{spec: "1000:ghost", wantErr: prefix + "can't find gid for group ghost: no such group: ghost"},
		{spec: "a:b:c", wantErr: prefix + "invalid chown string format: a:b:c"},
		{spec: ":root", wantErr: prefix + "can't find uid for user : no such user: "},
		{spec: "root:", wantErr: prefix + "can't find gid for group : no such group: "},
	} {
		got, err := resolveChown(root, tc.spec)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("--chown=%s: error %v\n want %q", tc.spec, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("--chown=%s: %v", tc.spec, err)
			continue
		}
		if got.UID != tc.uid || got.GID != tc.gid {
			t.Errorf("--chown=%s = %d:%d, want %d:%d", tc.spec, got.UID, got.GID, tc.uid, tc.gid)
		}
	}
}

// TestResolveChownMissingDB: a name needs the file (dockerd: "open <host path>/etc/group:
// no such file or directory"); numbers never read it.
func TestResolveChownMissingDB(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFile(t, root, "etc/passwd", testPasswd)
	if id, err := resolveChown(root, "0"); err != nil || id.UID != 0 || id.GID != 0 {
		t.Errorf("--chown=0 without /etc/group = %+v, %v", id, err)
	}
	want := "unable to convert uid/gid chown string to host mapping: can't find gid for group root: open /etc/group: no such file or directory"
	if _, err := resolveChown(root, "root"); err == nil || err.Error() != want {
		t.Errorf("--chown=root without /etc/group: error %v\n want %q", err, want)
	}
	if err := os.Remove(filepath.Join(root, "etc/passwd")); err != nil {
		t.Fatal(err)
	}
	want = "unable to convert uid/gid chown string to host mapping: can't find uid for user root: open /etc/passwd: no such file or directory"
	if _, err := resolveChown(root, "root:0"); err == nil || err.Error() != want {
		t.Errorf("--chown=root:0 without /etc/passwd: error %v\n want %q", err, want)
	}
}
