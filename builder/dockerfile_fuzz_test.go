package builder

import (
	"testing"
	"time"
)

// FuzzParseDockerfile runs the front of a build on arbitrary Dockerfiles: parsing,
// the build checks, stage selection and the expansion of FROM's arguments, with no
// execution. It may refuse a Dockerfile but must never panic or hang.
func FuzzParseDockerfile(f *testing.F) {
	for _, seed := range []string{
		"FROM busybox\nRUN echo hi\n",
		"# syntax=docker/dockerfile:1\n# check=error=true\nARG BASE=alpine\nFROM ${BASE} AS build\nCOPY --from=build --chmod=755 a b\nFROM scratch\nCOPY --from=build /x /y\n",
		"# escape=`\nFROM a\nRUN echo `\n  hi\n",
		"FROM a\nRUN <<EOF\necho $HOME\nEOF\nCOPY <<-X /f\n\tbody\nX\n",
		"ARG A\nFROM ${A:-x}${A:+y}\nENV B=${A/x/y} C=\"$B\"\nLABEL a=b\nHEALTHCHECK CMD true\nONBUILD RUN x\n",
		"FROM a\nRUN --mount=type=cache,target=/c --network=none true\nEXPOSE 80/tcp 1-2\nSHELL [\"/bin/sh\", \"-c\"]\nCMD [\"a\"\nUSER 1:2\nWORKDIR /w\nVOLUME [\"/v\"]\nSTOPSIGNAL 9\n",
		"FROM a AS b\nFROM b AS a\n",
		"FROM --platform=$BUILDPLATFORM a\nARG TARGETARCH\nRUN echo $TARGETARCH\n",
		"",
		"RUN x\n",
		"FROM a\\\n\n",
	} {
		f.Add([]byte(seed), "")
	}
	f.Add([]byte("FROM a AS one\nFROM b AS two\n"), "one")
	f.Fuzz(func(t *testing.T, dockerfile []byte, target string) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			req := &Request{Dockerfile: dockerfile, Target: target, SkipUnusedStages: len(dockerfile)%2 == 0}
			if df, err := parseDockerfile(req, InputLimits{}); err == nil {
				_ = df.totalSteps()
			}
			_, _ = DockerfileBaseImages(req)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("parsing hangs on %q", dockerfile)
		}
	})
}
