# kiln — see README.md. Every target is safe on a developer machine: builds run in chroot
# isolation under a temporary state directory, never in place on this machine's "/".
GO      ?= go
BIN     ?= bin/kiln
PKGS    ?= ./...

.PHONY: build run test test-unit test-e2e bench lint clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN) ./cmd/kiln

test-unit:
	$(GO) test -race -count=1 $(PKGS)

test: test-unit

lint:
	gofmt -l . | tee /dev/stderr | (! read)
	$(GO) vet $(PKGS)

clean:
	rm -rf bin
