package builder_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/builder"
)

// usersSetup adds, to the test base, a user u whose primary group (ug, 1100) differs
// from its same-named group (u, 2100), a group dev listing u, and a directory only
// dev may write to.
const usersSetup = `RUN echo 'u:x:1100:1100::/:/bin/sh' >> /etc/passwd && echo 'ug:x:1100:' >> /etc/group \
 && echo 'u:x:2100:' >> /etc/group && echo 'dev:x:3000:u' >> /etc/group \
 && mkdir -m 0775 /shared && chown 0:3000 /shared && mkdir -m 1777 /out
`

// TestChownAndGroups builds, in chroot isolation, the cases the conformance corpus
// compares with Docker (test/conformance/corpus/kiln/chown_* and user_*): --chown
// with a name is that user and the group of that name; RUN under USER has the gid
// first in its supplementary groups, then the user's memberships.
func TestChownAndGroups(t *testing.T) {
	w := newWorld(t)
	img, _ := mustBuild(t, w, buildCase{
		dockerfile: `FROM BUSYBOX AS src
RUN echo 'only:x:7000:7000::/:/bin/sh' >> /etc/passwd
FROM BUSYBOX
` + usersSetup + `COPY --chown=u a /chown-name
COPY --chown=1100 a /chown-uid
ADD --chown=u a /add-name
COPY --from=src --chown=u /etc/passwd /from-src
USER u
RUN id > /out/u && touch /shared/by-member
USER u:dev
RUN id > /out/u-dev
USER 1100:2100
RUN id > /out/uid-gid
USER 4242
RUN id > /out/uid-only
`,
		files: map[string]string{"a": "A"},
	})
	wantFiles(t, files(t, img), map[string]string{
		"/chown-name":       "f 0644 1100:2100 A",
		"/chown-uid":        "f 0644 1100:1100 A",
		"/add-name":         "f 0644 1100:2100 A",
		"/shared/by-member": "f 0644 1100:1100 ",
		"/out/u":            "f 0644 1100:1100 uid=1100(u) gid=1100(ug) groups=1100(ug),3000(dev)\n",
		"/out/u-dev":        "f 0644 1100:3000 uid=1100(u) gid=3000(dev) groups=3000(dev)\n",
		"/out/uid-gid":      "f 0644 1100:2100 uid=1100(u) gid=2100(u) groups=2100(u)\n",
		"/out/uid-only":     "f 0644 4242:0 uid=4242 gid=0(root) groups=0(root)\n",
	})
}

// TestChownErrors: a --chown name missing from the image fails the build with
// dockerd's message (its classic builder, word for word) and the line of the
// instruction. COPY --from resolves names in the stage being built, not the source.
func TestChownErrors(t *testing.T) {
	w := newWorld(t)
	const prefix = "unable to convert uid/gid chown string to host mapping: "
	for _, tc := range []struct{ name, line, want string }{
		{"user missing", "COPY --chown=ghost a /x", prefix + "can't find uid for user ghost: no such user: ghost"},
		{"same-named group missing", "COPY --chown=nog a /x", prefix + "can't find gid for group nog: no such group: nog"},
		{"group missing", "ADD --chown=root:ghost a /x", prefix + "can't find gid for group ghost: no such group: ghost"},
		{"user only in the source stage", "COPY --from=src --chown=only /etc/passwd /x", prefix + "can't find uid for user only: no such user: only"},
		{"three parts", "COPY --chown=a:b:c a /x", prefix + "invalid chown string format: a:b:c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := w.build(t, buildCase{
				dockerfile: "FROM BUSYBOX AS src\nRUN echo 'only:x:7000:7000::/:/bin/sh' >> /etc/passwd\n" +
					"FROM BUSYBOX\nRUN echo 'nog:x:1003:1003::/:/bin/sh' >> /etc/passwd\n" + tc.line + "\n",
				files: map[string]string{"a": "A"},
			})
			var ie *builder.InstructionError
			if !errors.As(err, &ie) || ie.Line != 5 {
				t.Fatalf("error %v, want one naming line 5", err)
			}
			if !strings.HasSuffix(err.Error(), tc.want) {
				t.Errorf("error %q\n want it to end in Docker's %q", err, tc.want)
			}
		})
	}
}
