# kiln — see README.md. Every target is safe on a developer machine: builds run in chroot
# isolation under a temporary state directory, never in place on this machine's "/".
SHELL   := bash
# The Go toolchain kiln is built and tested with: the newest go1.26 patch release the
# module proxy serves (go1.26.8, the machine's own, has standard-library vulnerabilities
# govulncheck reports). The go command fetches it from the proxy once (GOTOOLCHAIN).
export GOTOOLCHAIN ?= go1.26.11
GO      ?= go
BIN     ?= bin/kiln
PKGS    ?= ./...
WORLD   ?= scripts/world.sh
GOFMT_DIRS ?= .
# staticcheck: from PATH, else where `go install` puts it (.ci/run installs a pinned one)
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo $$($(GO) env GOPATH)/bin/staticcheck)
# the differential conformance harness and corpus (shared with the other builders)
CONFORMANCE ?= $(abspath $(CURDIR)/../shared/conformance)
CONFORMANCE_OUT ?= out/conformance
# -skip-network leaves out the cases that apt-get from the Debian mirror inside RUN;
# CONFORMANCE_FLAGS= runs them too.
CONFORMANCE_FLAGS ?= -skip-network

# enter_world brings the test world up (scripts/world.sh; seconds when it is already up)
# and exports what it prints: KILN_TEST_REGISTRY, KILN_TEST_DOCKER, KILN_WORLD. Tests may
# then no longer skip silently for a missing world: KILN_TEST_WORLD_REQUIRED=1.
enter_world = world_env=$$($(WORLD) up) && eval "$$world_env" && export KILN_TEST_WORLD_REQUIRED=1

# Tests reach loopback only. Cloud SDKs probe metadata services on link-local addresses
# when they find no credentials; these keep them from doing so in every test process.
export AWS_EC2_METADATA_DISABLED = true
export GCE_METADATA_HOST = 127.0.0.1:9
export NO_GCE_CHECK = true

.PHONY: build run test test-unit test-e2e fuzz-smoke conformance bench lint world world-down clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN) ./cmd/kiln

# run: `kiln serve` on a unix socket in a local state directory (store, build roots,
# socket: nothing root-owned outside the checkout), in chroot isolation since this is not
# a container (builds need root). It prints the `export DOCKER_HOST=...` line for the
# docker CLI; Ctrl-C stops it. RUN_FLAGS adds serve flags, e.g. RUN_FLAGS='-H tcp://127.0.0.1:2375'.
RUN_STATE ?= $(CURDIR)/out/state
RUN_FLAGS ?=
run: build
	$(BIN) serve --state-dir=$(RUN_STATE) --isolation=chroot $(RUN_FLAGS)

# test: unit and integration tests against the test world (registry + dockerd). A package
# may take more than go test's default 10 minutes on a loaded 2-core machine: a slow machine
# never fails a test, so the limit is only there to end a hung run.
test:
	@$(enter_world) && set -x && $(GO) test -race -count=1 -timeout 30m $(PKGS)

# test-unit: no world needed; world-dependent tests skip under -short.
test-unit:
	$(GO) test -race -count=1 -short $(PKGS)

# fuzz-smoke: every fuzz target for FUZZTIME each, from its seeds and its checked-in
# corpus (testdata/fuzz/<Target>/). A crash fails the target and leaves the input in that
# directory: fix the bug and commit the input as a regression case. Longer runs: one
# target with `go test -run '^$' -fuzz '^FuzzX$' -fuzztime 10m ./pkg`.
# A count, not a duration: a -fuzztime duration that ends while the engine minimises a
# new input fails the target with "context deadline exceeded" (seen on
# FuzzFrontendOptions), which is the fuzzer's flake, not kiln's.
FUZZTIME ?= 3000x
FUZZ_TARGETS ?= \
	./apiserver:FuzzParseBuildOptions \
	./buildkitapi:FuzzUpgradedConnection ./buildkitapi:FuzzSolveRequest ./buildkitapi:FuzzFrontendOptions \
	./cmd/kiln:FuzzBuildFlagValue \
	./builder:FuzzParseDockerfile ./builder:FuzzBaseCacheImage \
	./contexts:FuzzFromArchive ./contexts:FuzzDockerignore \
	./credentials:FuzzDockerConfig
fuzz-smoke:
	@status=0; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t#*:}; echo "== $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg || status=1; \
	done; exit $$status

# test-e2e: the long suites (testworld.E2E); minutes, not seconds.
test-e2e:
	@$(enter_world) && export KILN_TEST_E2E=1 && set -x && \
		$(GO) test -race -count=1 -timeout 60m ./test/...

# conformance: kiln against Docker's classic builder over the shared corpus and kiln's own
# (test/conformance/corpus; the harness needs dockerd and the world's registry on
# 127.0.0.1:5000); results in $(CONFORMANCE_OUT) and $(CONFORMANCE_OUT)-own, the report
# of both in docs/conformance.md.
OWN_CORPUS ?= test/conformance/corpus
CONFORMANCE_CANDIDATE = $(CURDIR)/$(BIN) build --isolation=chroot --context dir://{context} --dockerfile {dockerfile} {buildargs} {target} {labels} --destination {tag} --no-push --tar-path {out} --insecure --insecure-pull
conformance: build
	@$(enter_world) && mkdir -p $(CONFORMANCE_OUT) $(CONFORMANCE_OUT)-own && set -x && \
	$(CONFORMANCE)/diffbuild $(CONFORMANCE_FLAGS) -out $(CONFORMANCE_OUT) -candidate '$(CONFORMANCE_CANDIDATE)' $(CONFORMANCE)/corpus; \
	$(CONFORMANCE)/diffbuild $(CONFORMANCE_FLAGS) -out $(CONFORMANCE_OUT)-own -candidate '$(CONFORMANCE_CANDIDATE)' $(OWN_CORPUS); \
	scripts/conformance-report.sh $(CONFORMANCE_OUT)/summary.tsv $(CONFORMANCE_OUT)-own/summary.tsv > docs/conformance.md; \
	! awk -F'\t' 'FNR>1 && ($$2=="DIFF" || $$2=="CAND-FAIL" || $$2=="ERROR")' $(CONFORMANCE_OUT)/summary.tsv $(CONFORMANCE_OUT)-own/summary.tsv | grep .

# bench: kiln vs Docker's classic builder vs buildah on the same cases in one run; writes
# docs/performance.md (BENCH_CASES, BENCH_RUNS select; see scripts/bench).
bench:
	scripts/bench

lint:
	@out=$$(gofmt -l $(GOFMT_DIRS)); if [ -n "$$out" ]; then echo "gofmt needed:" >&2; echo "$$out" >&2; exit 1; fi
	$(GO) vet $(PKGS)
	@test -x $(STATICCHECK) || { echo "make lint: staticcheck not found ($(STATICCHECK)); go install honnef.co/go/tools/cmd/staticcheck@v0.8.2" >&2; exit 1; }
	$(STATICCHECK) $(PKGS)

world:
	$(WORLD) up

# world-down stops only what scripts/world.sh started (never a daemon someone else runs).
world-down:
	$(WORLD) down

clean:
	rm -rf bin
