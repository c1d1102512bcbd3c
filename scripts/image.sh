#!/usr/bin/env bash
# image.sh — build kiln's own container images with kiln (chroot isolation) and load them
# into the local docker engine:
#   kiln:${TAG}        deploy/Dockerfile        static binary + CA certificates on scratch
#   kiln:${TAG}-debug  deploy/Dockerfile.debug  the same plus busybox under /busybox
# With PUSH=registry/repo the images are also pushed there (e.g. PUSH=127.0.0.1:5000/kiln).
# Needs root (kiln's chroot isolation), Debian's ca-certificates and busybox-static.
#
#   scripts/image.sh context DIR   only fills DIR with the build context both Dockerfiles
#                                  use (KILN_BIN, default bin/kiln after make build);
#                                  test/deploy's TestImageKanikoPaths builds from it.
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${TAG:-dev}
PUSH=${PUSH:-}

log() { printf '[image %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

need=()
[ -f /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
[ -x /bin/busybox ] || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# fill_context DIR KILN: the files deploy/Dockerfile and deploy/Dockerfile.debug copy.
fill_context() {
  local ctx=$1 applet
  cp "$2" "$ctx/kiln"
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/ca-certificates.crt"
  mkdir -p "$ctx/busybox"
  cp /bin/busybox "$ctx/busybox/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$ctx/busybox/$applet"
  done
  # kaniko's paths (see deploy/Dockerfile): links into /kiln, and DOCKER_CONFIG's directory
  mkdir -p "$ctx/compat/kaniko/.docker" "$ctx/compat/kiln"
  ln -s /kiln/kiln "$ctx/compat/kaniko/executor"
  ln -s /kiln/kiln "$ctx/compat/kaniko/warmer"
  ln -s /kiln/ssl "$ctx/compat/kaniko/ssl"
  # the credential helpers kaniko's image ships, answered by kiln's cloud keychains
  for helper in ecr-login gcr acr-env; do
    ln -s /kiln/kiln "$ctx/compat/kaniko/docker-credential-$helper"
  done
  ln -s /kaniko/.docker "$ctx/compat/kiln/.docker"
}

if [ "${1:-}" = context ]; then
  [ -n "${2:-}" ] || { log "usage: $0 context DIR"; exit 2; }
  mkdir -p "$2"
  fill_context "$2" "${KILN_BIN:-bin/kiln}"
  exit 0
fi

make -s build
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
fill_context "$ctx" bin/kiln

for variant in "" "-debug"; do
  df=deploy/Dockerfile${variant:+.debug}
  ref=kiln:$TAG$variant
  dests=(--destination "$ref")
  [ -n "$PUSH" ] && dests+=(--destination "$PUSH:$TAG$variant")
  log "building $ref from $df"
  push=(--no-push)
  [ -n "$PUSH" ] && push=(--insecure)
  bin/kiln build --isolation=chroot --context "dir://$ctx" --dockerfile "$PWD/$df" \
    "${dests[@]}" "${push[@]}" --tar-path "$ctx/image.tar" --reproducible
  if docker version >/dev/null 2>&1; then
    docker load -i "$ctx/image.tar" >&2
  else
    log "no docker engine: $ref not loaded"
  fi
done
