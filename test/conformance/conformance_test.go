// Package conformance runs the shared differential harness (../shared/conformance/diffbuild)
// with kiln as the candidate over two corpora, the shared one and kiln's own (corpus/ here):
// each case is built by Docker's classic builder and by kiln, and the flattened
// filesystems and configs must match.
package conformance

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/test/testworld"
)

// quickCases is the subset of the shared corpus `make test` runs: one or two cases per
// feature family (ARG, COPY rules, ADD of archives and URLs, whiteouts, multi-stage,
// ONBUILD, USER, VOLUME, WORKDIR, parser oddities). KILN_TEST_E2E=1 runs the whole
// corpus. kiln's own corpus (corpus/ beside this file) is quick and always runs whole.
const quickCases = `^(kaniko/(add|arg_multi|cmd|copy|copy_symlink|meta_arg|multistage|onbuild|user_run|volume_2|workdir)` +
	`|moby/(add_tar|add_preserves_special_bits|env_replacement_addcopy|follow_symlink_to_dir|multistage_copy_copy_to_newdir_nested|onbuild_cmd_entrypoint_json|opaque_directory|preserve_ownership_copy_from|symlink_breakout|users_and_groups|volumes_retain_contents)` +
	`|buildkit/(copy_wildcards|copy_chown|parser_escapes|expose_expansion))$`

func TestConformance(t *testing.T) {
	testworld.RequireRoot(t)
	testworld.Registry(t)
	testworld.Docker(t)
	harness, err := filepath.Abs("../../../shared/conformance")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(harness, "diffbuild")); err != nil {
		t.Skipf("no conformance harness beside the repository (%v)", err)
	}
	kiln := testworld.KilnBinary(t)
	filter := quickCases
	if os.Getenv(testworld.EnvE2E) == "1" {
		filter = ""
	}
	if f := os.Getenv("KILN_CONFORMANCE_FILTER"); f != "" {
		filter = f
	}
	own, err := filepath.Abs("corpus")
	if err != nil {
		t.Fatal(err)
	}
	// The corpora run one after the other: each diffbuild serves ADD-url files on the
	// same loopback port, and the machine's dockerd is shared.
	for _, c := range []struct {
		name, dir, filter string
		sameErrors        bool
	}{
		{"shared", filepath.Join(harness, "corpus"), filter, false},
		// kiln's own failing cases are there for their error: it must be Docker's.
		{"kiln", own, os.Getenv("KILN_CONFORMANCE_FILTER"), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			runCorpus(t, filepath.Join(harness, "diffbuild"), kiln, c.dir, c.filter, c.sameErrors)
		})
	}
}

// runCorpus runs diffbuild over one corpus (a directory holding INDEX.tsv) with kiln as
// the candidate and fails for every case that neither passes nor is a known difference.
// With sameErrors, a case both reject must fail in kiln with Docker's error message.
func runCorpus(t *testing.T, diffbuild, kiln, corpus, filter string, sameErrors bool) {
	dockerBuilds := oracleBuilds(t, filepath.Join(corpus, "INDEX.tsv"))
	if filter != "" && !anyMatch(dockerBuilds, filter) {
		t.Skipf("no case of %s matches %q", corpus, filter)
	}
	out := t.TempDir()
	args := []string{"-skip-network", "-out", out, "-candidate",
		kiln + " build --isolation=chroot --context dir://{context} --dockerfile {dockerfile} {buildargs} {target} {labels} --destination {tag} --no-push --tar-path {out} --insecure --insecure-pull"}
	if filter != "" {
		args = append(args, "-filter", filter)
	}
	args = append(args, corpus)
	cmd := exec.Command(diffbuild, args...)
	logs, _ := cmd.CombinedOutput() // the exit code is the worst status; judged below
	known := knownDifferences(t)
	rows := readSummary(t, filepath.Join(out, "summary.tsv"), logs)
	if len(rows) == 0 {
		t.Fatalf("diffbuild ran no case:\n%s", logs)
	}
	for _, r := range rows {
		switch r.status {
		case "PASS":
			continue
		case "BOTH-FAIL":
			if docker, kilns, ok := errorMessages(r.detail); sameErrors && (!ok || !strings.Contains(kilns, docker)) {
				t.Errorf("%s: kiln failed, but not with Docker's error %q:\n%s", r.name, docker, kilns)
			}
			continue
		case "ORACLE-FAIL":
			// Docker failing a case it is known to build means the oracle is broken
			// (dockerd's network, a missing base), and the comparison did not happen.
			if dockerBuilds[r.name] {
				t.Errorf("%s: Docker failed a case it builds, so nothing was compared: %s", r.name, r.detail)
			}
			continue
		}
		if reason, ok := known[r.name]; ok {
			t.Logf("%s: %s (known: %s)", r.name, r.status, reason)
			continue
		}
		t.Errorf("%s: %s: %s", r.name, r.status, r.detail)
	}
}

// errorMessages splits the detail diffbuild gives a BOTH-FAIL case ("oracle: <docker's
// output, lines joined by | > || candidate: <kiln's>") into Docker's error (its last
// line) and kiln's output, terminal colours removed.
func errorMessages(detail string) (docker, kiln string, ok bool) {
	detail = regexp.MustCompile("\x1b\\[[0-9;]*m").ReplaceAllString(detail, "")
	oracle, kiln, ok := strings.Cut(detail, " || candidate: ")
	if !ok {
		return "", detail, false
	}
	lines := strings.Split(oracle, " | ")
	docker = strings.TrimSpace(lines[len(lines)-1])
	return docker, kiln, docker != ""
}

// anyMatch reports whether the filter matches one of the cases.
func anyMatch(cases map[string]bool, filter string) bool {
	re := regexp.MustCompile(filter)
	for name := range cases {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}

type row struct{ name, status, detail string }

func readSummary(t *testing.T, path string, logs []byte) []row {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("diffbuild wrote no summary (%v):\n%s", err, logs)
	}
	defer f.Close()
	var rows []row
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for first := true; sc.Scan(); first = false {
		fields := strings.Split(sc.Text(), "\t")
		if first || len(fields) < 2 {
			continue
		}
		r := row{name: fields[0], status: fields[1]}
		if len(fields) > 5 {
			r.detail = fields[5]
		}
		rows = append(rows, r)
	}
	return rows
}

// knownDifferences reads docs/conformance-notes.tsv: case, reason. Only cases whose
// reason starts with "known:" are accepted as differences; the others are notes.
func knownDifferences(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile("../../docs/conformance-notes.tsv")
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		name, reason, ok := strings.Cut(line, "\t")
		if ok && strings.HasPrefix(reason, "known:") {
			out[name] = reason
		}
	}
	return out
}

// oracleBuilds reads the corpus index: which cases Docker's classic builder builds.
func oracleBuilds(t *testing.T, index string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(index)
	if err != nil {
		t.Fatalf("corpus index: %v", err)
	}
	out := map[string]bool{}
	lines := strings.Split(string(data), "\n")
	if len(lines) == 0 {
		return out
	}
	col := -1
	for i, h := range strings.Split(lines[0], "\t") {
		if h == "docker_builds" {
			col = i
		}
	}
	for _, l := range lines[1:] {
		f := strings.Split(l, "\t")
		if col >= 0 && len(f) > col {
			out[f[0]] = f[col] == "y"
		}
	}
	return out
}

func TestErrorMessages(t *testing.T) {
	t.Parallel()
	const want = "unable to convert uid/gid chown string to host mapping: can't find uid for user ghost: no such user: ghost"
	for _, tc := range []struct {
		detail string
		same   bool
	}{
		{"oracle: docker build: ---> 864b921ce3a6 | Step 3/3 : COPY --chown=ghost file.txt /a | " + want +
			" || candidate: exit status 1: \x1b[36mINFO\x1b[0m[0000] Step 3/3 : COPY --chown=ghost file.txt /a | error: Dockerfile:7: COPY --chown=ghost file.txt /a: " + want, true},
		{"oracle: docker build: Step 3/3 : COPY --chown=ghost file.txt /a | " + want +
			" || candidate: exit status 1: error: Dockerfile:7: COPY --chown=ghost file.txt /a: unable to find user ghost", false},
	} {
		docker, kiln, ok := errorMessages(tc.detail)
		if !ok || docker != want {
			t.Errorf("Docker's error = %q, %v; want %q", docker, ok, want)
		}
		if got := strings.Contains(kiln, docker); got != tc.same {
			t.Errorf("same error = %v, want %v (kiln: %q)", got, tc.same, kiln)
		}
	}
}
