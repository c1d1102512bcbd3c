package builder_test

import (
	"strings"
	"testing"
)

// Here-documents, with BuildKit's semantics: every form builds in a real chroot and
// leaves the files (contents, modes, owners) BuildKit leaves. The conformance corpus
// (test/conformance/corpus/buildkit-dialect/heredoc_*) checks the same forms against
// buildkitd itself.
func TestHeredocs(t *testing.T) {
	w := newWorld(t)
	for _, tc := range []struct {
		name       string
		dockerfile string
		args       map[string]*string
		want       map[string]string
	}{{
		name: "RUN alone runs the body as the shell's script",
		dockerfile: "FROM BUSYBOX\nARG WHO=builder\nENV GREETING=hello\nRUN <<EOF\n" +
			"echo \"$GREETING $WHO\" > /greeting\nfor i in 1 2; do echo $i; done > /lines\nEOF\n",
		args: map[string]*string{"WHO": str("arg")},
		want: map[string]string{"/greeting": "f 0644 0:0 hello arg\n", "/lines": "f 0644 0:0 1\n2\n"},
	}, {
		name:       "RUN alone with a quoted delimiter: the shell still expands",
		dockerfile: "FROM BUSYBOX\nENV V=v\nRUN <<'EOF'\necho \"$V\" > /v\nEOF\n",
		want:       map[string]string{"/v": "f 0644 0:0 v\n"},
	}, {
		name: "RUN #! body runs from /dev/pipes, not left in the layer",
		dockerfile: "FROM BUSYBOX\nENV V=env\nRUN <<EOF\n#!/bin/sh -e\necho \"$0 $V\" > /out\n" +
			"stat -c %a \"$0\" > /mode\nls /dev/pipes > /pipes\nEOF\n",
		want: map[string]string{"/out": "f 0644 0:0 /dev/pipes/EOF env\n", "/mode": "f 0644 0:0 755\n",
			"/pipes": "f 0644 0:0 EOF\n", "/dev/pipes": "", "/dev/pipes/EOF": ""},
	}, {
		name:       "RUN #! body as a non-root user",
		dockerfile: "FROM BUSYBOX\nUSER app\nRUN <<EOF\n#!/bin/sh\nid -u > /home/app/uid\nEOF\n",
		want:       map[string]string{"/home/app/uid": "f 0644 1000:1000 1000\n"},
	}, {
		name:       "RUN cmd <<EOF: body on stdin",
		dockerfile: "FROM BUSYBOX\nARG A=a\nRUN sh <<EOF\necho \"stdin $A\" > /stdin\nEOF\n",
		want:       map[string]string{"/stdin": "f 0644 0:0 stdin a\n"},
	}, {
		name: "RUN quoted and unquoted delimiters: the shell decides expansion",
		dockerfile: "FROM BUSYBOX\nARG A=a\nENV E=e\nRUN cat <<EOF > /u\n$A $E\nEOF\n" +
			"RUN cat <<\"EOF\" > /dq\n$A $E\nEOF\nRUN cat <<'EOF' > /sq\n$A $E\nEOF\n",
		want: map[string]string{"/u": "f 0644 0:0 a e\n", "/dq": "f 0644 0:0 $A $E\n", "/sq": "f 0644 0:0 $A $E\n"},
	}, {
		name: "RUN with several heredocs",
		dockerfile: "FROM BUSYBOX\nRUN <<FILE1 cat > /file1 && <<FILE2 cat > /file2\nI am\nfirst\nFILE1\n" +
			"I am\nsecond\nFILE2\n",
		want: map[string]string{"/file1": "f 0644 0:0 I am\nfirst\n", "/file2": "f 0644 0:0 I am\nsecond\n"},
	}, {
		name: "<<- strips leading tabs",
		dockerfile: "FROM BUSYBOX\nRUN <<-EOF\n\techo run > /run-chomp\n\tEOF\n" +
			"RUN cat <<-EOF > /cat-chomp\n\t\ttabs\n  spaces\n\tEOF\nCOPY <<-EOF /copy-chomp\n\tcopied\n  spaces\n\tEOF\n",
		want: map[string]string{"/run-chomp": "f 0644 0:0 run\n", "/cat-chomp": "f 0644 0:0 tabs\n  spaces\n",
			"/copy-chomp": "f 0644 0:0 copied\n  spaces\n"},
	}, {
		name: "COPY creates files",
		dockerfile: "FROM BUSYBOX\nWORKDIR /dest\nCOPY <<EOF single\nsingle file\nEOF\n" +
			"COPY <<EOF <<EOF2 double/\nfirst\nEOF\nsecond\nEOF2\nCOPY <<EOF /into/\nin\nEOF\n",
		want: map[string]string{"/dest/single": "f 0644 0:0 single file\n", "/dest/double/EOF": "f 0644 0:0 first\n",
			"/dest/double/EOF2": "f 0644 0:0 second\n", "/into/EOF": "f 0644 0:0 in\n"},
	}, {
		name: "COPY --chmod and --chown apply",
		dockerfile: "FROM BUSYBOX\nCOPY --chmod=755 <<EOF /x\nx\nEOF\nCOPY --chown=app:app <<EOF /o\no\nEOF\n" +
			"COPY --chown=1000:2000 --chmod=640 <<EOF /b\nb\nEOF\n",
		want: map[string]string{"/x": "f 0755 0:0 x\n", "/o": "f 0644 1000:1000 o\n", "/b": "f 0640 1000:2000 b\n"},
	}, {
		name:       "COPY with paths and heredocs",
		dockerfile: "FROM BUSYBOX\nCOPY a <<EOF /mixed/\nheredoc\nEOF\n",
		want:       map[string]string{"/mixed/a": "f 0644 0:0 A", "/mixed/EOF": "f 0644 0:0 heredoc\n"},
	}, {
		name: "COPY expands ARG and ENV unless the delimiter is quoted",
		dockerfile: "FROM BUSYBOX\nARG FOO=bar\nENV BAZ=qux\nCOPY <<EOF /e\n$FOO ${BAZ} [$NOPE] ${NOPE:-d} \"$FOO\" '$FOO' \\$FOO \\n\nEOF\n" +
			"COPY <<\"EOF\" /dq\n$FOO\nEOF\nCOPY <<'EOF' /sq\n$FOO\nEOF\n",
		args: map[string]*string{"FOO": str("given")},
		want: map[string]string{"/e": "f 0644 0:0 given qux [] d \"given\" 'given' $FOO n\n", // BuildKit drops the backslash too
			"/dq": "f 0644 0:0 $FOO\n", "/sq": "f 0644 0:0 $FOO\n"},
	}, {
		name:       "ADD <<EOF writes the body, never unpacks",
		dockerfile: "FROM BUSYBOX\nADD <<EOF /added\nadded\nEOF\n",
		want:       map[string]string{"/added": "f 0644 0:0 added\n"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			img, _ := mustBuild(t, w, buildCase{dockerfile: tc.dockerfile, files: map[string]string{"a": "A"}, args: tc.args})
			wantFiles(t, files(t, img), tc.want)
		})
	}
}

// The history of a heredoc RUN or COPY is BuildKit's text (checked against buildkitd
// v0.34.2): the instruction, every ARG of the stage in order with the value the RUN sees,
// the process arguments or sources, and "# buildkit".
func TestHeredocHistory(t *testing.T) {
	w := newWorld(t)
	img, _ := mustBuild(t, w, buildCase{
		dockerfile: "FROM BUSYBOX\nARG B=2\nARG A=1\nARG C\nARG D\nENV D=env\nRUN <<EOF\ntrue\nEOF\nCOPY --chmod=600 a <<EOF /d/\nx\nEOF\n",
		files:      map[string]string{"a": "A"},
	})
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range cf.History {
		if strings.HasSuffix(h.CreatedBy, "# buildkit") {
			got = append(got, h.CreatedBy)
		}
	}
	want := []string{"RUN |4 B=2 A=1 C= D=env /bin/sh -c true\n # buildkit", "COPY --chmod=600 a <<EOF /d/ # buildkit"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("history %q, want %q", got, want)
	}
}

// A heredoc's body is part of its step's key: a changed body runs the step again, an
// unchanged one hits.
func TestCacheHeredocBody(t *testing.T) {
	cw := newCacheWorld(t, map[string]string{"a.txt": "A"})
	df := func(body string) string {
		return "FROM BUSYBOX\nRUN <<EOF\necho " + body + " > /run\nEOF\nCOPY <<EOF /copy\n" + body + "\nEOF\n"
	}
	first := cw.build(t, df("one"), nil)
	again := cw.build(t, df("one"), nil)
	if len(again.misses) != 0 || again.res.ID != first.res.ID {
		t.Errorf("unchanged heredocs: misses %q; want all hits and the same image", again.misses)
	}
	changed := cw.build(t, df("two"), nil)
	if len(changed.hits) != 0 || changed.running != 1 {
		t.Errorf("changed heredocs: hits %q, %d RUNs; want both steps to run again", changed.hits, changed.running)
	}
	wantFiles(t, files(t, changed.res.Image), map[string]string{"/run": "f 0644 0:0 two\n", "/copy": "f 0644 0:0 two\n"})
}
