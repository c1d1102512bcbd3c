#!/usr/bin/env bash
# buildkit-tools.sh — build (once) and locate the BuildKit clients and the reference daemon
# kiln's tests use.
#
#   buildx    docker CLI plugin, from github.com/docker/buildx/cmd/buildx ($BUILDX_VERSION),
#             installed as $CACHE/docker-config/cli-plugins/docker-buildx: a test-only
#             DOCKER_CONFIG directory, never the machine's ~/.docker
#   buildctl  BuildKit's client   } from github.com/moby/buildkit ($BUILDKIT_VERSION): the
#   buildkitd BuildKit's daemon   } reference builder (OCI worker; runc from Debian)
#
# Usage: scripts/buildkit-tools.sh [install|env]
#   install  build whatever is not cached yet, install runc (apt-get) if it is missing;
#            fails loudly if a build fails. A second install only checks stamps (< 1 s).
#   env      print `export KILN_BUILDX_CONFIG=… KILN_BUILDCTL=… KILN_BUILDKITD=…` lines for
#            the tools that are installed; builds nothing. stdout carries only these lines.
#
# Knobs (environment):
#   KILN_TOOLS_CACHE=/var/cache/kiln-tools   cache root, outside any checkout; each tool in
#                                            <tool>-<version>/ with a .stamp
#   KILN_WORLD_NO_APT=1                      never call apt-get (fail if runc is missing)
#
# Network use: the Go module proxy (go build) and the Debian mirror (runc) only.
set -euo pipefail

BUILDX_VERSION=v0.36.1   # latest v0.36 patch on the Go module proxy
BUILDKIT_VERSION=v0.34.2 # buildctl and buildkitd
RECIPE=2                 # bump when the build recipe changes: rebuilds the cached tools

CACHE=${KILN_TOOLS_CACHE:-/var/cache/kiln-tools}
NO_APT=${KILN_WORLD_NO_APT:-0}
BUILDX_DIR=$CACHE/buildx-$BUILDX_VERSION
BUILDKIT_DIR=$CACHE/buildkit-$BUILDKIT_VERSION
DOCKER_CONFIG_DIR=$CACHE/docker-config

log() { printf '[buildkit-tools %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# stamp_ok DIR BIN...: DIR holds a stamp for this exact recipe and every BIN is executable.
stamp_ok() {
  local dir=$1 want=$2 b
  shift 2
  [ "$(cat "$dir/.stamp" 2>/dev/null || true)" = "$want" ] || return 1
  for b in "$@"; do [ -x "$dir/$b" ] || return 1; done
}

# build_buildx: go install into a temporary GOBIN, then move the result into the cache.
build_buildx() {
  local want=$1 tmp
  tmp=$(mktemp -d "$CACHE/.buildx.XXXXXX")
  log "building buildx $BUILDX_VERSION (go install github.com/docker/buildx/cmd/buildx; a few minutes)"
  # -X: the version the release build stamps; without it `docker buildx version` says v0.0.0+unknown
  if ! GOBIN=$tmp GOFLAGS=-mod=mod go install -trimpath \
    -ldflags "-X github.com/docker/buildx/version.Version=$BUILDX_VERSION" \
    "github.com/docker/buildx/cmd/buildx@$BUILDX_VERSION" >&2; then
    rm -rf "$tmp"
    die "building buildx $BUILDX_VERSION failed (output above)"
  fi
  mv "$tmp/buildx" "$tmp/docker-buildx"
  echo "$want" >"$tmp/.stamp"
  chmod 755 "$tmp" # mktemp made it 0700
  rm -rf "$BUILDX_DIR"
  mv "$tmp" "$BUILDX_DIR"
}

# build_buildkit: buildkit's go.mod has `exclude` directives, so `go install pkg@version`
# refuses it ("must not contain directives that would cause it to be interpreted
# differently than if it were the main module"). Instead a throwaway main module in a temp
# dir requires buildkit at the pinned version (keeping buildkit's excludes) and builds the
# two commands; MVS then selects exactly buildkit's own requirement graph.
build_buildkit() {
  local want=$1 tmp mod
  tmp=$(mktemp -d "$CACHE/.buildkit.XXXXXX")
  mod=$tmp/mod
  mkdir -p "$mod" "$tmp/out"
  cat >"$mod/go.mod" <<EOF
module kiln.invalid/buildkit-tools

go $(go env GOVERSION | sed -E 's/^go//; s/-.*//')

require github.com/moby/buildkit $BUILDKIT_VERSION

// buildkit's own excludes (untagged test-only deps of containerd's dependants)
exclude (
	github.com/davecgh/go-spew v1.1.2-0.20180830191138-d8f796af33cc
	github.com/pmezard/go-difflib v1.0.1-0.20181226105442-5d4384ee4fb2
)
EOF
  log "building buildctl and buildkitd $BUILDKIT_VERSION (temporary module $mod; several minutes)"
  # -X: the version buildkitd reports (buildx reads it to pick features) and buildctl prints
  if ! (cd "$mod" && GOFLAGS=-mod=mod GOWORK=off go build -trimpath -o "$tmp/out/" \
    -ldflags "-X github.com/moby/buildkit/version.Version=$BUILDKIT_VERSION" \
    github.com/moby/buildkit/cmd/buildctl github.com/moby/buildkit/cmd/buildkitd >&2); then
    rm -rf "$tmp"
    die "building buildctl/buildkitd $BUILDKIT_VERSION failed (output above)"
  fi
  mv "$tmp/out/buildctl" "$tmp/out/buildkitd" "$tmp/"
  cp "$mod/go.mod" "$tmp/go.mod.used" # the resolved module graph, for the curious
  rm -rf "$mod" "$tmp/out"
  echo "$want" >"$tmp/.stamp"
  chmod 755 "$tmp" # mktemp made it 0700
  rm -rf "$BUILDKIT_DIR"
  mv "$tmp" "$BUILDKIT_DIR"
}

# link_plugin puts the cached docker-buildx into the test-only DOCKER_CONFIG's cli-plugins.
link_plugin() {
  local dst=$DOCKER_CONFIG_DIR/cli-plugins/docker-buildx
  mkdir -p "$DOCKER_CONFIG_DIR/cli-plugins"
  if [ "$(readlink "$dst" 2>/dev/null || true)" != "$BUILDX_DIR/docker-buildx" ]; then
    ln -sfn "$BUILDX_DIR/docker-buildx" "$dst"
  fi
}

ensure_runc() {
  command -v runc >/dev/null && return
  [ "$NO_APT" != 1 ] || die "runc is missing (buildkitd's OCI worker needs it) and KILN_WORLD_NO_APT=1"
  [ "$(id -u)" = 0 ] || die "runc is missing; run as root to apt-get install it"
  log "apt-get install runc"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends runc >&2
  command -v runc >/dev/null || die "apt-get install runc did not provide runc"
}

cmd_install() {
  local t0
  t0=$(date +%s)
  ensure_runc
  mkdir -p "$CACHE" 2>/dev/null || die "cannot create $CACHE (set KILN_TOOLS_CACHE to a writable dir)"
  [ -w "$CACHE" ] || die "$CACHE is not writable (set KILN_TOOLS_CACHE to a writable dir)"
  exec 9>"$CACHE/.lock"
  flock 9 # two installs at once (parallel CI jobs) build once
  if stamp_ok "$BUILDX_DIR" "buildx $BUILDX_VERSION recipe $RECIPE" docker-buildx; then
    log "buildx $BUILDX_VERSION: cached in $BUILDX_DIR"
  else
    command -v go >/dev/null || die "go is needed to build buildx"
    build_buildx "buildx $BUILDX_VERSION recipe $RECIPE"
  fi
  link_plugin
  if stamp_ok "$BUILDKIT_DIR" "buildkit $BUILDKIT_VERSION recipe $RECIPE" buildctl buildkitd; then
    log "buildctl, buildkitd $BUILDKIT_VERSION: cached in $BUILDKIT_DIR"
  else
    command -v go >/dev/null || die "go is needed to build buildkit"
    build_buildkit "buildkit $BUILDKIT_VERSION recipe $RECIPE"
  fi
  flock -u 9
  log "installed in $(($(date +%s) - t0))s (cache $CACHE)"
}

cmd_env() {
  if [ -x "$DOCKER_CONFIG_DIR/cli-plugins/docker-buildx" ]; then
    echo "export KILN_BUILDX_CONFIG=$DOCKER_CONFIG_DIR"
  fi
  if [ -x "$BUILDKIT_DIR/buildctl" ]; then echo "export KILN_BUILDCTL=$BUILDKIT_DIR/buildctl"; fi
  if [ -x "$BUILDKIT_DIR/buildkitd" ]; then echo "export KILN_BUILDKITD=$BUILDKIT_DIR/buildkitd"; fi
}

case ${1:-install} in
  install) cmd_install ;;
  env) cmd_env ;;
  -h | --help | help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
  *) die "usage: $0 [install|env]" ;;
esac
