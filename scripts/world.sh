#!/usr/bin/env bash
# world.sh — bring up (or inspect, or tear down) kiln's test world on Debian bookworm.
#
# The test world is what kiln's integration and conformance tests talk to:
#
#   * a distribution registry on $REGISTRY_ADDR (default 127.0.0.1:5000) holding
#       $REGISTRY_ADDR/busybox:1.35     busybox-static + applet symlinks, /etc/passwd,
#                                       /etc/group; Docker v2 schema2 manifest;
#                                       bit-for-bit reproducible (fixed mtimes)
#       $REGISTRY_ADDR/debian:bookworm  debootstrap --variant=minbase from the mirror the
#                                       host's apt uses; an OCI index (like Docker Hub)
#     The conformance corpus names these refs literally, so keep the names.
#   * a running dockerd (Debian's docker.io), the oracle for Dockerfile semantics and the
#     engine tests `docker load`/`docker run` results into.
#
# Usage: scripts/world.sh [up|down|status|env]
#   up      install missing packages, reuse or start dockerd and the registry, build or
#           re-push the base images; prints `export` lines on stdout (eval them)
#   down    stop only what world.sh itself started (by the PIDs in its pid files)
#   status  say what is running and what is cached
#   env     print the `export` lines for whatever is running now; starts nothing
#
# Knobs (environment):
#   KILN_WORLD=/var/tmp/kiln-world   state dir: pid files, logs, registry storage, image cache
#   REGISTRY_ADDR=127.0.0.1:5000     loopback host:port of the registry
#   KILN_WORLD_REGISTRY_STORAGE=DIR  registry storage (default $KILN_WORLD/registry-PORT)
#   KILN_WORLD_NO_DOCKERD=1          neither install nor start dockerd (unit-only runs)
#   KILN_WORLD_NO_DEBIAN=1           skip debian:bookworm (debootstrap takes minutes)
#   KILN_WORLD_NO_EMULATORS=1        skip the cloud storage emulators (S3, GCS, Azure Blob)
#   KILN_WORLD_NO_BUILDKIT=1         skip scripts/buildkit-tools.sh install (buildx, buildctl,
#                                    buildkitd built from the Go module proxy, cached in
#                                    KILN_TOOLS_CACHE=/var/cache/kiln-tools)
#   KILN_WORLD_NO_DEPLOY_TOOLS=1     skip scripts/deploy-tools.sh install (helm, kubeconform and
#                                    Kubernetes schemas for test/deploy, from the Go module proxy)
#   KILN_WORLD_NO_APT=1              never call apt-get (fail instead if something is missing)
#   KILN_WORLD_PULL=0                do not pull the base images into the docker engine
#   FORCE=1                          rebuild the cached images and re-push them
#   DOCKER_HOST=unix:///some.sock    a non-default socket gets its own dockerd, data and
#                                    exec roots under the state dir
#
# Logs go to stderr; stdout carries only the `export` lines, so
#   eval "$(scripts/world.sh up)"
# is the way to enter the world. Idempotent: a second `up` takes seconds.
# Network use: loopback, the Debian mirror (apt, debootstrap) and the Go module proxy only.
set -euo pipefail

STATE=${KILN_WORLD:-/var/tmp/kiln-world}
REGISTRY_ADDR=${REGISTRY_ADDR:-127.0.0.1:5000}
NO_DOCKERD=${KILN_WORLD_NO_DOCKERD:-0}
NO_DEBIAN=${KILN_WORLD_NO_DEBIAN:-0}
NO_APT=${KILN_WORLD_NO_APT:-0}
NO_EMULATORS=${KILN_WORLD_NO_EMULATORS:-0}
NO_BUILDKIT=${KILN_WORLD_NO_BUILDKIT:-0}
BUILDKIT_TOOLS=$(dirname "${BASH_SOURCE[0]}")/buildkit-tools.sh
NO_DEPLOY_TOOLS=${KILN_WORLD_NO_DEPLOY_TOOLS:-0}
DEPLOY_TOOLS=$(dirname "${BASH_SOURCE[0]}")/deploy-tools.sh
PULL=${KILN_WORLD_PULL:-1}
FORCE=${FORCE:-0}

REG_PORT=${REGISTRY_ADDR##*:}
RUN=$STATE/run                         # pid files, logs, generated configs
CACHE=$STATE/cache                     # OCI layouts of the base images
REGDIR=${KILN_WORLD_REGISTRY_STORAGE:-$STATE/registry-$REG_PORT}
DOCKER_SOCK_DEFAULT=unix:///var/run/docker.sock

# Fixed build inputs keep busybox bit-identical across machines and with the images the
# project's reference script pushes (same recipe, same epoch, same history text), so
# image digests and oracle caches agree between developer machines and CI.
EPOCH=1700000000                       # 2023-11-14T22:13:20Z: every mtime and `created`
CREATED=$(date -u -d "@$EPOCH" +%Y-%m-%dT%H:%M:%SZ)
PATHENV='PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
RECIPE=1                               # bump when an image recipe changes: invalidates cache

log() { printf '[world %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

case $REGISTRY_ADDR in
  127.*:[0-9]*|localhost:[0-9]*) ;;
  *) die "REGISTRY_ADDR=$REGISTRY_ADDR: only loopback host:port addresses are allowed" ;;
esac

# ---------------------------------------------------------------- probes

registry_up() { curl -fsS -m 3 -o /dev/null "http://$REGISTRY_ADDR/v2/" 2>/dev/null; }

docker_up() { timeout 15 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# in_registry REPO TAG: does the registry hold a manifest (any schema) for REPO:TAG?
in_registry() {
  curl -fsS -m 5 -o /dev/null -I \
    -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json' \
    "http://$REGISTRY_ADDR/v2/$1/manifests/$2" 2>/dev/null
}

# pid_alive PIDFILE NAME: is the process in PIDFILE alive and really NAME? Checking the
# executable's name guards against a recycled PID after a reboot.
pid_alive() {
  local pid
  [ -s "$1" ] || return 1
  pid=$(cat "$1")
  [ -d "/proc/$pid" ] || return 1
  [ "$(basename "$(readlink "/proc/$pid/exe" 2>/dev/null || true)")" = "$2" ]
}

# ---------------------------------------------------------------- packages

install_packages() {
  local want=(docker-registry busybox-static debootstrap skopeo jq curl debian-archive-keyring
    buildah git apache2-utils ca-certificates haproxy)
  [ "$NO_DOCKERD" = 1 ] || want+=(docker.io)
  local missing=() p
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
      missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return
  [ "$NO_APT" != 1 ] || die "missing packages ${missing[*]} and KILN_WORLD_NO_APT=1"
  [ "$(id -u)" = 0 ] || die "missing packages ${missing[*]}; run as root to install them"
  log "apt-get install ${missing[*]}"
  apt-get update -qq >&2
  # policy-rc.d-less containers: package scripts may fail to start services; that is fine,
  # world.sh starts dockerd itself.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >&2
}

# ---------------------------------------------------------------- cloud storage emulators

# Bucket contexts (s3://, gs://, Azure Blob) are tested against real servers that tests
# start themselves on loopback ports; world.sh only installs them, pinned, under $STATE:
#   $STATE/bin/fake-gcs-server             (Go module proxy)
#   $STATE/npm/node_modules/.bin/s3rver    (npm registry; an S3-compatible server)
#   $STATE/npm/node_modules/.bin/azurite-blob (npm registry; Microsoft's Azure Storage emulator)
# MinIO would be the obvious S3 server, but it only installs by compiling, which takes
# over eight minutes on two cores; s3rver installs in seconds.
FAKE_GCS_VERSION=v1.56.1
AZURITE_VERSION=3.35.0
S3RVER_VERSION=3.7.1

ensure_emulators() {
  if [ "$NO_EMULATORS" = 1 ]; then
    log "cloud storage emulators: skipped (KILN_WORLD_NO_EMULATORS=1)"
    return
  fi
  mkdir -p "$STATE/bin" "$STATE/npm"
  if ! go version -m "$STATE/bin/fake-gcs-server" 2>/dev/null | grep -q "fake-gcs-server[[:space:]]*$FAKE_GCS_VERSION"; then
    command -v go >/dev/null || die "go is needed to install fake-gcs-server"
    log "go install fake-gcs-server@$FAKE_GCS_VERSION"
    GOBIN="$STATE/bin" go install "github.com/fsouza/fake-gcs-server@$FAKE_GCS_VERSION" >&2
  fi
  local npm_want="azurite@$AZURITE_VERSION s3rver@$S3RVER_VERSION" have
  have=$(cat "$STATE/npm/.installed" 2>/dev/null || true)
  if [ "$have" != "$npm_want" ] || [ ! -x "$STATE/npm/node_modules/.bin/azurite-blob" ] ||
    [ ! -x "$STATE/npm/node_modules/.bin/s3rver" ]; then
    if ! command -v npm >/dev/null; then
      [ "$NO_APT" != 1 ] || die "npm is missing and KILN_WORLD_NO_APT=1"
      log "apt-get install nodejs npm"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >&2
    fi
    log "npm install $npm_want"
    # shellcheck disable=SC2086 # two package specs
    npm install --prefix "$STATE/npm" --no-audit --no-fund --loglevel=error $npm_want >&2
    echo "$npm_want" >"$STATE/npm/.installed"
  fi
}

# ---------------------------------------------------------------- dockerd

# dockerd_args prints the flags world.sh starts dockerd with. A non-default DOCKER_HOST gets
# a fully separate daemon (own data root, exec root, no bridge) so it can never collide with
# one already running on the default socket.
dockerd_args() {
  printf '%s\n' --pidfile "$RUN/dockerd.pid"
  if [ -n "${DOCKER_HOST:-}" ] && [ "$DOCKER_HOST" != "$DOCKER_SOCK_DEFAULT" ]; then
    printf '%s\n' -H "$DOCKER_HOST" --data-root "$STATE/docker/data" \
      --exec-root "$STATE/docker/exec" --bridge=none --iptables=false
  fi
}

start_dockerd() {
  if docker_up; then
    log "dockerd: reusing the daemon at ${DOCKER_HOST:-$DOCKER_SOCK_DEFAULT}"
    return
  fi
  if pid_alive "$RUN/dockerd.pid" dockerd; then
    die "dockerd pid $(cat "$RUN/dockerd.pid") is running but does not answer; see $RUN/dockerd.log"
  fi
  command -v dockerd >/dev/null || die "dockerd not installed (apt-get install docker.io)"
  [ "$(id -u)" = 0 ] || die "dockerd is not running and starting it needs root"
  local base; mapfile -t base < <(dockerd_args)
  # Fallbacks for CI sandboxes: no iptables/netfilter, then no bridge either, then no
  # overlayfs (nested overlay mounts are refused on some hosts). A separate daemon already
  # runs without bridge and iptables, so only the storage fallback is left for it.
  local attempts=(
    ""
    "--iptables=false --ip6tables=false"
    "--iptables=false --ip6tables=false --bridge=none"
    "--iptables=false --ip6tables=false --bridge=none --storage-driver=vfs"
  )
  [[ " ${base[*]} " != *" --bridge=none "* ]] || attempts=("" "--storage-driver=vfs")
  local extra pid i before
  for extra in "${attempts[@]}"; do
    before=0
    [ ! -f "$RUN/dockerd.log" ] || before=$(wc -l <"$RUN/dockerd.log")
    log "starting dockerd ${base[*]} $extra (log $RUN/dockerd.log)"
    printf '\n==== %s dockerd %s %s\n' "$(date -u +%FT%TZ)" "${base[*]}" "$extra" >>"$RUN/dockerd.log"
    # shellcheck disable=SC2086 # $extra is a list of flags
    setsid nohup dockerd "${base[@]}" $extra >>"$RUN/dockerd.log" 2>&1 </dev/null &
    pid=$!
    for i in $(seq 1 120); do
      if docker_up; then
        echo "$pid" >"$RUN/dockerd.pid" # dockerd wrote it too; this makes sure it is there
        log "dockerd ready (pid $pid) after ~$((i / 2))s${extra:+ with $extra}"
        return
      fi
      [ -d "/proc/$pid" ] || break
      sleep 0.5
    done
    if [ -d "/proc/$pid" ]; then
      log "dockerd pid $pid did not become ready in 60s; stopping it"
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
    log "dockerd failed${extra:+ with $extra}; last log lines:"
    tail -n "+$((before + 2))" "$RUN/dockerd.log" | tail -n 8 | sed 's/^/    /' >&2
  done
  rm -f "$RUN/dockerd.pid"
  die "could not start dockerd in any configuration (full log: $RUN/dockerd.log).
       Set KILN_WORLD_NO_DOCKERD=1 to bring the world up without docker; tests that need
       it then skip (or fail under KILN_TEST_WORLD_REQUIRED=1)."
}

# ---------------------------------------------------------------- registry

start_registry() {
  if registry_up; then
    log "registry: reusing the one answering on $REGISTRY_ADDR"
    return
  fi
  command -v docker-registry >/dev/null || die "docker-registry not installed"
  local cfg=$RUN/registry-$REG_PORT.yml
  mkdir -p "$REGDIR"
  cat >"$cfg" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
  fields:
    service: kiln-world-registry-$REG_PORT
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: $REGDIR
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
  headers:
    X-Content-Type-Options: [nosniff]
EOF
  log "starting docker-registry on $REGISTRY_ADDR (storage $REGDIR, log $RUN/registry-$REG_PORT.log)"
  # docker-registry reads REGISTRY_* variables as config overrides: keep ours away from it
  setsid nohup env -u REGISTRY_ADDR docker-registry serve "$cfg" >>"$RUN/registry-$REG_PORT.log" 2>&1 </dev/null &
  local pid=$! i
  echo "$pid" >"$RUN/registry-$REG_PORT.pid"
  for i in $(seq 1 50); do
    registry_up && { log "registry ready (pid $pid)"; return; }
    [ -d "/proc/$pid" ] || break
    sleep 0.2
  done
  tail -n 10 "$RUN/registry-$REG_PORT.log" | sed 's/^/    /' >&2
  die "registry did not come up on $REGISTRY_ADDR (see $RUN/registry-$REG_PORT.log)"
}

# ---------------------------------------------------------------- base images

# shellcheck source=scripts/world-images.sh
. "$(dirname "${BASH_SOURCE[0]}")/world-images.sh"

# ---------------------------------------------------------------- commands

print_env() {
  echo "export KILN_WORLD=$STATE"
  if registry_up; then echo "export KILN_TEST_REGISTRY=$REGISTRY_ADDR"; fi
  if [ "$NO_DOCKERD" != 1 ] && docker_up; then
    echo "export KILN_TEST_DOCKER=1"
    [ -z "${DOCKER_HOST:-}" ] || echo "export DOCKER_HOST=$DOCKER_HOST"
  else
    echo "export KILN_TEST_DOCKER=0"
  fi
  # the BuildKit clients and reference daemon, for whatever is installed
  "$BUILDKIT_TOOLS" env
  "$DEPLOY_TOOLS" env
}

cmd_up() {
  local t0; t0=$(date +%s)
  mkdir -p "$RUN" "$CACHE"
  install_packages
  DOCKER_OK=0
  if [ "$NO_DOCKERD" = 1 ]; then
    log "dockerd: skipped (KILN_WORLD_NO_DOCKERD=1)"
  else
    start_dockerd
    DOCKER_OK=1
  fi
  ensure_emulators
  # The tools compile (CPU) while the base images are made (debootstrap: network), in
  # the background; on a cold machine that saves the minutes of debootstrap. Their
  # output is shown when they end; a failure fails `up` (CI must not silently skip
  # the BuildKit or deploy tests).
  local tools_dir; tools_dir=$(mktemp -d)
  if [ "$NO_BUILDKIT" = 1 ]; then
    log "buildx, buildctl, buildkitd: skipped (KILN_WORLD_NO_BUILDKIT=1)"
  else
    "$BUILDKIT_TOOLS" install >"$tools_dir/buildkit.log" 2>&1 &
    echo $! >"$tools_dir/buildkit.pid"
  fi
  if [ "$NO_DEPLOY_TOOLS" = 1 ]; then
    log "helm, kubeconform, schemas: skipped (KILN_WORLD_NO_DEPLOY_TOOLS=1)"
  else
    "$DEPLOY_TOOLS" install >"$tools_dir/deploy.log" 2>&1 &
    echo $! >"$tools_dir/deploy.pid"
  fi
  start_registry
  ensure_busybox
  if [ "$NO_DEBIAN" = 1 ]; then
    log "debian:bookworm: skipped (KILN_WORLD_NO_DEBIAN=1)"
  else
    ensure_debian
  fi
  local tool failed=0
  for tool in buildkit deploy; do
    [ -f "$tools_dir/$tool.pid" ] || continue
    if ! wait "$(cat "$tools_dir/$tool.pid")"; then
      failed=1
      log "scripts/$tool-tools.sh install failed:"
    fi
    cat "$tools_dir/$tool.log" >&2
  done
  rm -rf "$tools_dir"
  [ "$failed" = 0 ] || die "a tool install failed (output above)"
  log "world up in $(($(date +%s) - t0))s: registry $REGISTRY_ADDR, dockerd $([ "$DOCKER_OK" = 1 ] && echo up || echo skipped), state $STATE"
  print_env
}

# stop NAME PIDFILE: SIGTERM the process world.sh started, wait for it, remove the pid file.
stop() {
  local name=$1 pidfile=$2 pid i
  if ! pid_alive "$pidfile" "$name"; then
    [ -e "$pidfile" ] && log "$name: pid file $pidfile is stale; removing it"
    rm -f "$pidfile"
    return
  fi
  pid=$(cat "$pidfile")
  log "stopping $name (pid $pid)"
  kill -TERM "$pid"
  for i in $(seq 1 60); do
    [ -d "/proc/$pid" ] || break
    sleep 0.5
  done
  if [ -d "/proc/$pid" ]; then
    log "$name (pid $pid) ignored SIGTERM for 30s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

cmd_down() {
  stop docker-registry "$RUN/registry-$REG_PORT.pid"
  stop dockerd "$RUN/dockerd.pid"
  # A separate daemon (non-default DOCKER_HOST) leaves its netns bind mount behind in its
  # exec root; unmount whatever is left under our state dir so it can be deleted.
  local m
  for m in $(awk -v d="$STATE/docker/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r); do
    log "unmounting leftover $m"
    umount "$m" || umount -l "$m" || true
  done
  log "down: stopped only processes world.sh started (pid files under $RUN)"
}

# owned PIDFILE NAME: a note for status lines when world.sh started the process.
owned() { if pid_alive "$1" "$2"; then echo " (started by world.sh, pid $(cat "$1"))"; fi; }

cmd_status() {
  if registry_up; then
    log "registry $REGISTRY_ADDR: up$(owned "$RUN/registry-$REG_PORT.pid" docker-registry)"
    local repo tag
    for ref in busybox:1.35 debian:bookworm; do
      repo=${ref%%:*} tag=${ref#*:}
      if in_registry "$repo" "$tag"; then log "  $REGISTRY_ADDR/$ref: present"; else log "  $REGISTRY_ADDR/$ref: MISSING"; fi
    done
  else
    log "registry $REGISTRY_ADDR: down"
  fi
  if docker_up; then
    log "dockerd: up$(owned "$RUN/dockerd.pid" dockerd), server $(docker version --format '{{.Server.Version}}' 2>/dev/null)"
  else
    log "dockerd: down"
  fi
  local name
  for name in busybox debian; do
    if [ -f "$CACHE/$name/index.json" ]; then
      log "cache $name: $(cat "$CACHE/$name.key" 2>/dev/null || echo 'no key (incomplete)')"
    else
      log "cache $name: empty"
    fi
  done
  print_env
}

case ${1:-up} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) print_env ;;
  -h | --help | help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
  *) die "usage: $0 [up|down|status|env]" ;;
esac
