package builder_test

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/builder"
)

func warningsOf(events []builder.Event) []string {
	var out []string
	for _, e := range events {
		if w, ok := e.(builder.Warning); ok {
			out = append(out, w.Message)
		}
	}
	return out
}

func TestBuiltinFrontend(t *testing.T) {
	for ref, want := range map[string]bool{
		"docker/dockerfile:1":                                 true,
		"docker/dockerfile:1.7-labs":                          true,
		"docker/dockerfile":                                   true,
		"docker.io/docker/dockerfile:1":                       true,
		"docker/dockerfile-upstream:master":                   true,
		"docker/dockerfile@sha256:" + strings.Repeat("a", 64): true,
		"dockerfile:1":                                        false,
		"example.com/docker/dockerfile:1":                     false,
		"tonistiigi/dockerfile:runmount":                      false,
		"docker/dockerfile-copy:v0.1.9":                       false,
		"ghcr.io/example/frontend:1":                          false,
	} {
		if got := builder.BuiltinFrontend(ref); got != want {
			t.Errorf("BuiltinFrontend(%q) = %v, want %v", ref, got, want)
		}
	}
}

func TestSyntaxDirective(t *testing.T) {
	w := newWorld(t)
	for _, tc := range []struct {
		name, df string
		args     map[string]*string
		warn     string // a warning containing this
		err      string // or an error containing this
	}{
		{name: "docker/dockerfile", df: "# syntax=docker/dockerfile:1\nFROM BUSYBOX\n",
			warn: "# syntax=docker/dockerfile:1: kiln builds this Dockerfile with its own Dockerfile support"},
		{name: "upstream with registry", df: "#syntax = docker.io/docker/dockerfile-upstream:master\nFROM BUSYBOX\n",
			warn: "docker.io/docker/dockerfile-upstream:master"},
		{name: "BUILDKIT_SYNTAX", df: "FROM BUSYBOX\n", args: map[string]*string{"BUILDKIT_SYNTAX": str("docker/dockerfile:1.7")},
			warn: "# syntax=docker/dockerfile:1.7"},
		{name: "external frontend", df: "# syntax=example.com/frontend:1\nFROM BUSYBOX\n",
			err: `Dockerfile:1: the Dockerfile asks for the external frontend "example.com/frontend:1"`},
		{name: "external BUILDKIT_SYNTAX", df: "FROM BUSYBOX\n", args: map[string]*string{"BUILDKIT_SYNTAX": str("tonistiigi/x:1")},
			err: `BUILDKIT_SYNTAX: the Dockerfile asks for the external frontend "tonistiigi/x:1"`},
		{name: "escape directive", df: "# escape=`\nFROM BUSYBOX\nRUN echo a `\n  b >/out\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, events, err := w.build(t, buildCase{dockerfile: tc.df, args: tc.args})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ws := warningsOf(events)
			found := tc.warn == ""
			for _, m := range ws {
				if strings.Contains(m, tc.warn) {
					found = true
				}
			}
			if !found {
				t.Errorf("warnings = %q, want one with %q", ws, tc.warn)
			}
			for _, m := range ws {
				if strings.Contains(m, "not consumed") {
					t.Errorf("BUILDKIT_* arg reported unused: %q", m)
				}
			}
		})
	}
}

func TestBuildChecks(t *testing.T) {
	w := newWorld(t)
	for _, tc := range []struct {
		name, df string
		args     map[string]*string
		files    map[string]string
		want     []string // BuildKit's warnings, in order
		err      string
	}{
		{name: "clean", df: "FROM BUSYBOX AS base\nCMD [\"true\"]\n"},
		{name: "FROM args and platforms", args: map[string]*string{"IMG": str(w.busybox)},
			df: "ARG IMG\nFROM ${IMAG:-BUSYBOX} AS a\nFROM --platform=$TARGETPLATFORM BUSYBOX AS b\n" +
				"FROM --platform=linux/amd64 BUSYBOX AS c\nFROM --platform=linux/amd64 BUSYBOX AS amd64-build\n" +
				"FROM --platform=$BUILDPLATFORM BUSYBOX AS e\nFROM ${IMG}\nRUN true\n",
			want: []string{
				"InvalidDefaultArgInFrom: Default value for ARG ${IMG} results in empty or invalid base image name (line 7)",
				"UndefinedArgInFrom: FROM argument 'IMAG' is not declared (did you mean IMG?) (line 2)",
				"RedundantTargetPlatform: Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior (line 3)",
				"FromPlatformFlagConstDisallowed: FROM --platform flag should not use constant value \"linux/amd64\" (line 4)"}},
		{name: "undefined vars and EXPOSE", args: map[string]*string{"C": str("1")},
			df: "FROM BUSYBOX AS a\nENV FOO=1\nRUN echo $FOO $UNDEF_IN_RUN\nENV X=$FOOO Y=$PATH Z=${NOPE:-d}\n" +
				"ARG A B=$A C=$FOOX\nARG D\nLABEL l=$TARGETOS d=$D\nEXPOSE 80/TCP 127.0.0.1:8080:80 9090 8080:80/UDP\n" +
				"COPY <<EOT /h\n$HEREVAR\nEOT\nFROM a\nENV Q=$USED1 S=${BUILDKIT_SBOM_SCAN_STAGE}\n",
			want: []string{
				"UndefinedVar: Usage of undefined variable '$FOOO' (did you mean $FOO?) (line 4)",
				"UndefinedVar: Usage of undefined variable '$NOPE' (line 4)",
				"UndefinedVar: Usage of undefined variable '$TARGETOS' (line 7)",
				"ExposeInvalidFormat: EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:8080:80' (line 8)",
				"ExposeProtoCasing: Defined protocol '80/TCP' in EXPOSE instruction should be lowercase (line 8)",
				"ExposeProtoCasing: Defined protocol '8080:80/UDP' in EXPOSE instruction should be lowercase (line 8)",
				"ExposeInvalidFormat: EXPOSE instruction should not define an IP address or host-port mapping, found '8080:80/UDP' (line 8)",
				"UndefinedVar: Usage of undefined variable '$HEREVAR' (line 9)",
				"UndefinedVar: Usage of undefined variable '$USED1' (line 13)"}},
		{name: "undefined var in an ARG default", df: "FROM BUSYBOX\nARG A B=$A C=$FOOX\nENV FOO=1\n", want: []string{
			"UndefinedVar: Usage of undefined variable '$FOOX' (line 2)"}},
		{name: "undefined vars skipped", df: "# check=skip=UndefinedVar\nFROM BUSYBOX\nENV X=$NOPE\n"},
		{name: "undefined var error=true", df: "# check=error=true\nFROM BUSYBOX\nRUN touch /ran\nENV X=$NOPE\nRUN false\n",
			err:  "lint violation found for rules: UndefinedVar (# check=error=true):\nUndefinedVar: Usage of undefined variable '$NOPE' (line 4)",
			want: []string{"UndefinedVar: Usage of undefined variable '$NOPE' (line 4)"}},
		{name: "COPY ignored", files: map[string]string{"f1": "1", "d/x": "3", ".dockerignore": "f1\nd\nf2\n"},
			df: "FROM BUSYBOX\nCOPY f1 d/ /\n", err: "f1", want: []string{
				"CopyIgnoredFile: Attempting to Copy file \"f1\" that is excluded by .dockerignore (line 2)",
				"CopyIgnoredFile: Attempting to Copy file \"d\" that is excluded by .dockerignore (line 2)"}},
		{name: "ADD ignored", files: map[string]string{"f2": "2", ".dockerignore": "f2\n"},
			df: "FROM BUSYBOX\nADD f2 /\n", err: "f2", want: []string{
				"CopyIgnoredFile: Attempting to Add file \"f2\" that is excluded by .dockerignore (line 2)"}},
		{name: "COPY root, all ignored", files: map[string]string{"x": "x", ".dockerignore": "*\n"},
			df: "FROM BUSYBOX AS s\nFROM BUSYBOX\nCOPY . /all\nCOPY ./ /all2\nCOPY --from=s /bin/sh /sh\n", want: []string{
				"CopyIgnoredFile: Attempting to Copy file \".\" that is excluded by .dockerignore (line 3)",
				"CopyIgnoredFile: Attempting to Copy file \".\" that is excluded by .dockerignore (line 4)"}},
		{name: "COPY ignored, with exceptions", files: map[string]string{"x": "x", ".dockerignore": "x\n!y\n"},
			df: "FROM BUSYBOX\nCOPY x /x\n", err: "x"},
		{name: "FROM checks skipped", args: map[string]*string{"IMG": str(w.busybox)},
			df: "# check=skip=InvalidDefaultArgInFrom,UndefinedArgInFrom\nARG IMG\nFROM ${IMAG:-$IMG}\n"},
		{name: "FROM check error=true", df: "# check=error=true\nFROM --platform=linux/amd64 BUSYBOX\n",
			err: "lint violation found for rules: FromPlatformFlagConstDisallowed (# check=error=true):\n" +
				"FromPlatformFlagConstDisallowed: FROM --platform flag should not use constant value \"linux/amd64\" (line 2)"},
		{name: "FROM casing", df: "FROM BUSYBOX as Base\nRUN true\n", want: []string{
			"StageNameCasing: Stage name 'Base' should be lowercase (line 1)",
			"FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)"}},
		{name: "instruction casing", df: "FROM BUSYBOX\nrun true\nRUN true\n", want: []string{
			"ConsistentInstructionCasing: Command 'run' should match the case of the command majority (uppercase) (line 2)"}},
		{name: "stage names", df: "FROM BUSYBOX AS scratch\nFROM BUSYBOX AS a\nFROM BUSYBOX AS a\n", want: []string{
			"ReservedStageName: Stage name should not use the same name as reserved stage \"scratch\" (line 1)",
			"DuplicateStageName: Duplicate stage name \"a\", stage names should be unique (line 3)"}},
		{name: "JSON args, key value, maintainer, workdir", df: "FROM BUSYBOX\nMAINTAINER me\nENV A b\nWORKDIR rel\nCMD echo hi\n", want: []string{
			"MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label (line 2)",
			"LegacyKeyValueFormat: \"ENV key=value\" should be used instead of legacy \"ENV key value\" format (line 3)",
			"WorkdirRelativePath: Relative workdir \"rel\" can have unexpected results if the base image changes (line 4)",
			"JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals (line 5)"}},
		{name: "SHELL set: no JSONArgsRecommended", df: "FROM BUSYBOX\nSHELL [\"/bin/sh\", \"-c\"]\nCMD echo hi\n"},
		{name: "empty continuation", df: "FROM BUSYBOX\nRUN echo a \\\n\n  b\n", want: []string{
			"NoEmptyContinuation: Empty continuation line (line 4)"}},
		{name: "twice", df: "FROM BUSYBOX\nCMD [\"a\"]\nCMD [\"b\"]\n", want: []string{
			"MultipleInstructionsDisallowed: Multiple CMD instructions should not be used in the same stage because only the last one will be used (line 2)"}},
		{name: "secret names", df: "FROM BUSYBOX\nARG API_TOKEN\nENV PUBLIC_KEY=1\n", want: []string{
			"SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ARG \"API_TOKEN\") (line 2)"}},
		{name: "skip", df: "# check=skip=FromAsCasing,StageNameCasing\nFROM BUSYBOX as Base\n"},
		{name: "skip all", df: "# check=skip=all\nFROM BUSYBOX as Base\nCMD echo\n"},
		{name: "error=true", df: "# check=error=true\nFROM BUSYBOX as base\n",
			err: "lint violation found for rules: FromAsCasing (# check=error=true):\nFromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 2)"},
		{name: "error=true without violations", df: "# check=error=true\nFROM BUSYBOX AS base\n"},
		{name: "bad check", df: "# check=foo\nFROM BUSYBOX\n", err: `invalid check option "foo"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, events, err := w.build(t, buildCase{dockerfile: tc.df, args: tc.args, files: tc.files})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				if tc.want == nil {
					return
				}
			} else if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range warningsOf(events) {
				if name, _, ok := strings.Cut(m, ": "); ok && !strings.Contains(name, " ") && !strings.HasPrefix(m, "[") {
					got = append(got, m)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("check warnings:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// loopbackServer writes "hello" to each connection on 127.0.0.1 until the test ends;
// it returns "127.0.0.1 PORT" for nc.
func loopbackServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprint(c, "hello")
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	return host + " " + port
}

func TestRunNetwork(t *testing.T) {
	w := newWorld(t)
	addr := loopbackServer(t)
	get := "nc " + addr + " </dev/null"
	for _, tc := range []struct {
		name, df  string
		noNetwork bool // the build's mode is none (Request.NoNetwork)
		want      map[string]string
		err       string
	}{
		{name: "default reaches the host", df: "RUN --network=default " + get + " >/out",
			want: map[string]string{"/out": "f 0644 0:0 hello"}},
		{name: "build none: a plain RUN does not", df: "RUN " + get, noNetwork: true, err: "returned a non-zero code"},
		{name: "build none: only loopback", df: "RUN " + get + " >/out 2>&1 || true\n" +
			"RUN grep -q refused /out && grep -c : /proc/net/dev >/n", noNetwork: true,
			want: map[string]string{"/n": "f 0644 0:0 1\n"}},
		{name: "build none: RUN --network=default follows the build", df: "RUN --network=default " + get, noNetwork: true,
			err: "returned a non-zero code"},
		{name: "build none: RUN --network=host overrides it", df: "RUN --network=host " + get + " >/out", noNetwork: true,
			want: map[string]string{"/out": "f 0644 0:0 hello"}},
		{name: "host reaches the host", df: "RUN --network=host " + get + " >/out",
			want: map[string]string{"/out": "f 0644 0:0 hello"}},
		// Connection refused (not "unreachable"): loopback is up, nothing listens on it.
		{name: "none does not", df: "RUN --network=none " + get + " >/out 2>&1 || true\n" +
			"RUN --network=none grep -q refused /out && grep -c : /proc/net/dev >/n",
			want: map[string]string{"/n": "f 0644 0:0 1\n"}},
		{name: "none refused", df: "RUN --network=none " + get, err: "returned a non-zero code"},
		{name: "invalid", df: "RUN --network=bridge true", err: "bridge"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, _, err := w.build(t, buildCase{dockerfile: "FROM BUSYBOX\n" + tc.df + "\n", noNetwork: tc.noNetwork})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			wantFiles(t, files(t, res.Image), tc.want)
		})
	}
}

func TestRunSecurity(t *testing.T) {
	w := newWorld(t)
	capBnd := "grep CapBnd /proc/self/status | cut -f2 >/out"
	for _, tc := range []struct {
		name, df string
		insecure bool
		docker   bool // want Docker's default bounding set, else more
		err      string
	}{
		{name: "sandbox", df: "RUN --security=sandbox " + capBnd, docker: true},
		{name: "insecure allowed", df: "RUN --security=insecure " + capBnd, insecure: true},
		{name: "insecure refused", df: "RUN --security=insecure " + capBnd, err: "--allow-insecure-entitlement=security.insecure"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, _, err := w.build(t, buildCase{dockerfile: "FROM BUSYBOX\n" + tc.df + "\n", insecure: tc.insecure})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				if errors.Is(err, builder.ErrUnsupported) {
					t.Errorf("err = %v, want a refusal, not unsupported", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := files(t, res.Image)["/out"]
			isDocker := got == "f 0644 0:0 00000000a80425fb\n"
			if isDocker != tc.docker {
				t.Errorf("CapBnd = %q, want Docker's set: %v", got, tc.docker)
			}
		})
	}
}

// TestRunNetworkCacheKey: --network=none is part of the step's key; default is not
// mistaken for none nor the other way round.
func TestRunNetworkCacheKey(t *testing.T) {
	cw := newCacheWorld(t, map[string]string{"a": "a"})
	df := func(network string) string {
		return "FROM BUSYBOX\nRUN --network=" + network + " echo x >/x\n"
	}
	if first := cw.build(t, df("default"), nil); first.running != 1 {
		t.Fatalf("first build ran %d RUNs, want 1", first.running)
	}
	for _, tc := range []struct {
		network string
		wantRun bool
	}{
		{"none", true},
		{"none", false},
		{"default", false},
	} {
		run := cw.build(t, df(tc.network), nil)
		if ran := run.running > 0; ran != tc.wantRun {
			t.Errorf("--network=%s: RUN ran: %t, want %t", tc.network, ran, tc.wantRun)
		}
	}
	// The build's network mode none (Request.NoNetwork) keys a plain RUN as
	// --network=none does: it reuses that step, never one run with the network.
	noNetwork := func(r *builder.Request) { r.NoNetwork = true }
	if run := cw.build(t, df("default"), noNetwork); run.running != 0 {
		t.Errorf("build none, RUN --network=default: ran %d RUNs, want the --network=none step reused", run.running)
	}
	plain := "FROM BUSYBOX\nRUN echo y >/y\n"
	if run := cw.build(t, plain, nil); run.running != 1 {
		t.Fatalf("a new RUN ran %d times, want 1", run.running)
	}
	if run := cw.build(t, plain, noNetwork); run.running != 1 {
		t.Errorf("build none after a build with the network: ran %d RUNs, want 1", run.running)
	}
}

// checkWarnings are the build-check warnings among the events ("Rule: text (line N)").
func checkWarnings(events []builder.Event) []string {
	var out []string
	for _, m := range warningsOf(events) {
		if name, _, ok := strings.Cut(m, ": "); ok && !strings.Contains(name, " ") && !strings.HasPrefix(m, "[") {
			out = append(out, m)
		}
	}
	return out
}

// TestBuildCheckBasePlatform: InvalidBaseImagePlatform for a base image of another
// platform used as it is (no platform was asked for; with one, kiln refuses it).
func TestBuildCheckBasePlatform(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the table assumes an amd64 host")
	}
	r := newPlatformRegistry(t)
	for _, tc := range []struct {
		name, df string
		want     []string
		err      string
	}{
		{name: "foreign base", df: "FROM IMG_arm64\nENV A=1\n", want: []string{
			"InvalidBaseImagePlatform: Base image " + r.refs["arm64"] + " was pulled with platform \"linux/arm64\", expected \"linux/amd64\" for current build (line 1)"}},
		{name: "own platform", df: "FROM IMG_amd64\nENV A=1\n"},
		{name: "skipped", df: "# check=skip=InvalidBaseImagePlatform\nFROM IMG_arm64\n"},
		{name: "error=true", df: "# check=error=true\nFROM IMG_arm64\nENV A=1\n",
			err: "lint violation found for rules: InvalidBaseImagePlatform (# check=error=true):\nInvalidBaseImagePlatform: Base image " + r.refs["arm64"]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, events, err := r.build(t, tc.df, "", "")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := checkWarnings(events); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("check warnings:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}
