package builder_test

import "testing"

// TestRunSeccomp: a chroot build's RUN has no_new_privs and a seccomp filter (Docker's
// default profile, see isolation's tests); --seccomp=unconfined and RUN
// --security=insecure run without either.
func TestRunSeccomp(t *testing.T) {
	w := newWorld(t)
	status := "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status | tr '\\t\\n' '  ' >/out"
	for _, tc := range []struct {
		name       string
		run        string
		unconfined bool
		insecure   bool
		want       string
	}{
		{name: "default", run: "RUN " + status, want: "f 0644 0:0 NoNewPrivs: 1 Seccomp: 2 "},
		{name: "unconfined", run: "RUN " + status, unconfined: true, want: "f 0644 0:0 NoNewPrivs: 0 Seccomp: 0 "},
		{name: "insecure", run: "RUN --security=insecure " + status, insecure: true, want: "f 0644 0:0 NoNewPrivs: 0 Seccomp: 0 "},
		{name: "unshare refused", run: "RUN unshare -U true 2>/out || echo refused >>/out", want: "f 0644 0:0 unshare: unshare(0x10000000): Operation not permitted\nrefused\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, _, err := w.build(t, buildCase{dockerfile: "FROM BUSYBOX\n" + tc.run + "\n", unconfined: tc.unconfined, insecure: tc.insecure})
			if err != nil {
				t.Fatal(err)
			}
			if got := files(t, res.Image)["/out"]; got != tc.want {
				t.Errorf("/out = %q, want %q", got, tc.want)
			}
		})
	}
}
