# shellcheck shell=bash
# shellcheck disable=SC2034 # NA_<builder> are read by name (na_reason)
# builders-bx.sh — the BuildKit-client builders of scripts/bench, with the same five
# functions as builders.sh (whose header says what each does); a builder named with a
# dash (kiln-bx) has functions and NA_ variables with an underscore (kiln_bx_run).
#
#   kiln-bx        `docker build` through buildx's docker driver → kiln serve
#   docker-bx      `docker build` through buildx's docker driver → the world's dockerd and
#                  its built-in BuildKit
#   buildkitd-034  buildctl → buildkitd v0.34 (OCI worker, runc), the reference daemon
#
# They only measure the cases bx_cases lists. buildx and BuildKit come from
# scripts/buildkit-tools.sh (KILN_BUILDX_CONFIG, KILN_BUILDCTL, KILN_BUILDKITD, else its
# cache); the docker CLI runs with a private DOCKER_CONFIG under the bench's scratch dir
# linking the buildx plugin, never the machine's ~/.docker.

BX_MISSING="buildx not installed: scripts/buildkit-tools.sh install"
BX_TOOLS=${KILN_TOOLS_CACHE:-/var/cache/kiln-tools}

# default_builders: BENCH_BUILDERS when unset. kiln-bx and docker-bx are always in (their
# columns say n/a when buildx is not installed); buildkitd-034 when it is installed.
default_builders() {
  local b="kiln docker buildah kiln-bx docker-bx"
  if bk_binary buildkitd >/dev/null && bk_binary buildctl >/dev/null; then b="$b buildkitd-034"; fi
  echo "$b"
}

# bx_cases BUILDER: the cases BUILDER measures (nothing: every case). kiln-bx also
# runs g, for kiln serve's peak RSS on a 1 GiB context.
bx_cases() {
  case $1 in
    kiln-bx) echo "a c d fd dc g" ;;
    docker-bx | buildkitd-034) echo "a c d fd dc" ;;
  esac
}

# builder_measures BUILDER CASE: does BUILDER measure CASE?
builder_measures() {
  local cs
  cs=$(bx_cases "$1")
  [ -z "$cs" ] && return 0
  case " $cs " in *" $2 "*) return 0 ;; esac
  return 1
}

# bx_config NAME: makes $SCRATCH/docker-config-NAME, a DOCKER_CONFIG whose cli-plugins/
# links to the installed buildx plugin, and prints it; fails when there is no plugin.
bx_config() {
  local plugin d=$SCRATCH/docker-config-$1
  plugin=${KILN_BUILDX_CONFIG:-$BX_TOOLS/docker-config}/cli-plugins/docker-buildx
  [ -f "$plugin" ] && [ -x "$plugin" ] || return 1
  mkdir -p "$d/cli-plugins"
  ln -sfn "$plugin" "$d/cli-plugins/docker-buildx"
  echo "$d"
}

# bx_docker CONFIG HOST ARGS...: the docker CLI with buildx, at HOST (unix://…; empty:
# the environment's DOCKER_HOST or the default socket). No attestations: the docker
# driver makes none by default either, and both columns must do the same work.
bx_docker() {
  bx_cli "$1" "$2"
  shift 2
  "${BX[@]}" "$@"
}

# bx_cli CONFIG HOST: sets BX to that command as an array (timed runs it under timeout,
# which cannot call a shell function).
BX=()
bx_cli() {
  BX=(env DOCKER_CONFIG="$1" BUILDX_NO_DEFAULT_ATTESTATIONS=1)
  [ -z "$2" ] || BX+=(DOCKER_HOST="$2")
  BX+=(docker)
}

# bx_timed_build BUILDER CONFIG HOST CTX NAME LOG [FLAGS...]: one `docker build
# --progress=plain` (the warm cases: an untimed one first, see case_warm), timed.
bx_timed_build() {
  local b=$1 cfg=$2 host=$3 ctx=$4 name=$5 logf=$6
  shift 6
  if [ -n "$(case_warm "$CURRENT_CASE")" ]; then
    case_before "$CURRENT_CASE" "$ctx"
    bx_docker "$cfg" "$host" build --progress=plain "$@" -t "bench-bx-$name" "$ctx" \
      >"$logf.prebuild" 2>&1 </dev/null || true
    case_between "$CURRENT_CASE" "$ctx"
    bx_cli "$cfg" "$host"
    bx_before_timed "$b"
    timed "$logf" "" "${BX[@]}" build --progress=plain "$@" -t "bench-bx-$name" "$ctx"
  else
    bx_cli "$cfg" "$host"
    bx_before_timed "$b"
    timed "$logf" "" "${BX[@]}" build --progress=plain --no-cache "$@" -t "bench-bx-$name" "$ctx"
  fi
  bx_after_timed "$b"
}

# bx_before_timed BUILDER, bx_after_timed BUILDER: around the timed build. For kiln-bx
# the peak RSS is kiln serve's own (VmHWM, reset before the build through clear_refs),
# not the client's: the build runs in the server.
bx_before_timed() {
  [ "$1" = kiln-bx ] && [ -n "$KILN_BX_PID" ] || return 0
  echo 5 >"/proc/$KILN_BX_PID/clear_refs" 2>/dev/null || true
}
bx_after_timed() {
  [ "$1" = kiln-bx ] && [ -n "$KILN_BX_PID" ] || return 0
  TIMED_RSS=$(awk '$1 == "VmHWM:" {print $2}' "/proc/$KILN_BX_PID/status" 2>/dev/null || true)
}

# ---------------------------------------------------------------- kiln-bx

NA_kiln_bx=""
KILN_BX_CONFIG=""
KILN_BX_CACHE=""
KILN_BX_SOCK=""
KILN_BX_PID=""
KILN_BX_FRESH="" # set while the server has built nothing since it started

kiln_bx_setup() {
  KILN_BX_CONFIG=$(bx_config kiln-bx) || { NA_kiln_bx=$BX_MISSING; return; }
  kiln_binary || { NA_kiln_bx=$KILN_NA; return; }
  if ! bx_docker "$KILN_BX_CONFIG" "" buildx version >"$LOGS/buildx-version.log" 2>&1; then
    NA_kiln_bx="\`docker buildx version\` failed: $(rel "$LOGS/buildx-version.log")"
    return
  fi
  # A base-image cache of its own, warmed untimed, as kiln build's.
  KILN_BX_CACHE=$SCRATCH/kiln-bx-base-cache
  kiln_warm_into "$KILN_BX_CACHE" ||
    { NA_kiln_bx="kiln warm failed: $(rel "$LOGS/kiln-warm.log")"; return; }
  kiln_bx_start || NA_kiln_bx="kiln serve did not come up: $(rel "$LOGS/kiln-bx-serve.log")"
}

# kiln_bx_start (re)starts kiln serve for kiln-bx on a fresh state dir: no step cache, no
# cached contexts, the warmed base-image cache kept.
kiln_bx_start() {
  local i st=$SCRATCH/kiln-bx-serve
  kiln_bx_stop
  clean_dir "$st"
  mkdir -p "$st"
  KILN_BX_SOCK=$SCRATCH/kiln-bx.sock
  rm -f "$KILN_BX_SOCK"
  echo "--- kiln serve started $(date -u +%H:%M:%S)" >>"$LOGS/kiln-bx-serve.log"
  "$KILN" serve --state-dir "$st" -H "unix://$KILN_BX_SOCK" --isolation=chroot \
    --cache-dir "$KILN_BX_CACHE" --insecure-registry "$REGISTRY" \
    >>"$LOGS/kiln-bx-serve.log" 2>&1 </dev/null &
  KILN_BX_PID=$!
  for i in $(seq 1 200); do
    if DOCKER_HOST=unix://$KILN_BX_SOCK timeout 5 docker version >/dev/null 2>&1; then
      KILN_BX_FRESH=1
      return 0
    fi
    kill -0 "$KILN_BX_PID" 2>/dev/null || break
    sleep 0.1
  done
  return 1
}

kiln_bx_stop() {
  [ -n "$KILN_BX_PID" ] || return 0
  kill "$KILN_BX_PID" 2>/dev/null || true
  wait "$KILN_BX_PID" 2>/dev/null || true
  KILN_BX_PID=""
}

kiln_bx_run() {
  local ctx=$1 name=$2 logf=$3 fresh=$KILN_BX_FRESH
  KILN_BX_FRESH=""
  if [ -z "$(case_warm "$CURRENT_CASE")" ] && [ -z "$fresh" ] && ! kiln_bx_start; then
    echo "bench: kiln serve did not come up again: $(rel "$LOGS/kiln-bx-serve.log")" >"$logf"
    TIMED_RC=98 TIMED_SECS="" TIMED_RSS=""
    return
  fi
  bx_timed_build kiln-bx "$KILN_BX_CONFIG" "unix://$KILN_BX_SOCK" "$ctx" "$name" "$logf"
}

kiln_bx_cleanup() {
  [ -z "$KILN_BX_SOCK" ] || DOCKER_HOST=unix://$KILN_BX_SOCK docker rmi "bench-bx-$1" >/dev/null 2>&1 || true
}

kiln_bx_teardown() { kiln_bx_stop; }

kiln_bx_command() {
  echo "kiln-bx: DOCKER_CONFIG=BUILDX_ONLY DOCKER_HOST=unix://KILN_SOCK docker build --progress=plain" \
    "--no-cache -t bench-bx-NAME CTX against kiln serve --isolation=chroot, restarted on a fresh" \
    "--state-dir before each cold run (warm cases: twice, without --no-cache, the second timed)"
}

# ---------------------------------------------------------------- docker-bx

NA_docker_bx=""
DOCKER_BX_CONFIG=""
DOCKER_BX_USED=""

docker_bx_setup() {
  if ! command -v docker >/dev/null; then
    NA_docker_bx="no docker CLI"
    return
  fi
  DOCKER_BX_CONFIG=$(bx_config docker-bx) || { NA_docker_bx=$BX_MISSING; return; }
  if ! timeout 15 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
    NA_docker_bx="dockerd does not answer"
    return
  fi
  docker_ensure_bases || { NA_docker_bx="docker pull failed: $(rel "$LOGS/docker-pull.log")"; return; }
  bx_docker "$DOCKER_BX_CONFIG" "" buildx inspect >"$LOGS/docker-bx-inspect.log" 2>&1 || true
}

docker_bx_run() {
  local ctx=$1 name=$2 logf=$3
  docker_ensure_bases || true
  DOCKER_BX_USED=1
  if [ -z "$(case_warm "$CURRENT_CASE")" ]; then
    # cold: dockerd's BuildKit keeps steps and the contexts clients sent (incremental
    # transfer) until pruned
    bx_docker "$DOCKER_BX_CONFIG" "" builder prune -af >"$logf.prune" 2>&1 </dev/null || true
  fi
  bx_timed_build docker-bx "$DOCKER_BX_CONFIG" "" "$ctx" "$name" "$logf" --network "$DOCKER_NETWORK"
  if [ "$TIMED_RC" != 0 ] && grep -q 'Cannot connect to the Docker daemon' "$logf"; then
    TIMED_RETRY="dockerd did not answer"
  fi
}

docker_bx_cleanup() { docker rmi "bench-bx-$1" >/dev/null 2>&1 || true; }

# docker_bx_teardown: the build cache the runs left in dockerd goes too.
docker_bx_teardown() {
  [ -z "$DOCKER_BX_USED" ] ||
    bx_docker "$DOCKER_BX_CONFIG" "" builder prune -af >>"$LOGS/docker-bx-prune.log" 2>&1 || true
}

docker_bx_command() {
  echo "docker-bx: DOCKER_CONFIG=BUILDX_ONLY docker build --progress=plain --no-cache" \
    "--network $DOCKER_NETWORK -t bench-bx-NAME CTX against dockerd, after \`docker builder" \
    "prune -af\` (warm cases: twice, no prune, without --no-cache, the second timed)"
}

# bx_versions: buildx's, dockerd's BuildKit's and buildkitd's versions for the machine
# table. A binary built without version stamps says v0.0.0+unknown; then the version in
# the tools cache's directory name (buildx-v0.36.1/) is shown.
bx_versions() {
  local bx="" bk bkd="" p
  if [ -n "$DOCKER_BX_CONFIG$KILN_BX_CONFIG" ]; then
    p=${DOCKER_BX_CONFIG:-$KILN_BX_CONFIG}/cli-plugins/docker-buildx
    bx=$(tool_version "$(bx_docker "${DOCKER_BX_CONFIG:-$KILN_BX_CONFIG}" "" buildx version 2>/dev/null |
      awk '{print $2; exit}' || true)" "$p")
  fi
  bk=$(awk -F': *' '/BuildKit version/ {print $2; exit}' "$LOGS/docker-bx-inspect.log" 2>/dev/null || true)
  if [ -n "$BK_CTL" ]; then
    bkd=$(tool_version "$(awk '{print $3; exit}' "$LOGS/buildkitd-version.log" 2>/dev/null || true)" "$BK_CTL")
  fi
  echo "buildx ${bx:-not used}; dockerd's BuildKit ${bk:-?}${bkd:+; buildkitd $bkd (OCI worker, runc $(runc --version 2>/dev/null | awk '{print $3; exit}'))}"
}

# tool_version VERSION PATH: VERSION, or when it is empty or v0.0.0+unknown, the vX.Y.Z
# in the name of the directory PATH resolves into.
tool_version() {
  case $1 in
    '' | v0.0.0*) ;;
    *) echo "$1"; return ;;
  esac
  basename "$(dirname "$(readlink -f "$2")")" | sed -n 's/^.*-\(v[0-9][0-9.]*\)$/\1/p'
}

# ---------------------------------------------------------------- buildkitd-034

# bk_binary NAME: prints the path of buildctl or buildkitd: KILN_BUILDCTL / KILN_BUILDKITD,
# else the newest in the tools cache, else on PATH; fails when there is none.
bk_binary() {
  local v p
  case $1 in buildctl) v=${KILN_BUILDCTL:-} ;; buildkitd) v=${KILN_BUILDKITD:-} ;; esac
  if [ -n "$v" ]; then
    [ -f "$v" ] && [ -x "$v" ] && echo "$v"
    return
  fi
  for p in $(printf '%s\n' "$BX_TOOLS"/buildkit-v*/"$1" | sort -rV); do
    if [ -f "$p" ] && [ -x "$p" ]; then
      echo "$p"
      return 0
    fi
  done
  command -v "$1"
}

NA_buildkitd_034=""
BK_DIR=""
BK_SOCK=""
BK_PID=""
BK_CTL=""

buildkitd_034_setup() {
  local bkd ctl
  if ! bkd=$(bk_binary buildkitd) || ! ctl=$(bk_binary buildctl); then
    NA_buildkitd_034="buildkitd not installed: scripts/buildkit-tools.sh install"
    return
  fi
  command -v runc >/dev/null || { NA_buildkitd_034="no runc for buildkitd's OCI worker"; return; }
  BK_CTL=$ctl BK_DIR=$SCRATCH/buildkitd BK_SOCK=$SCRATCH/buildkitd.sock
  mkdir -p "$BK_DIR"
  # The OCI worker (runc) on its default snapshotter, RUN on the host's network (as
  # docker --network host and kiln's chroot), the world's registry over plain HTTP.
  cat >"$BK_DIR/buildkitd.toml" <<TOML
[worker.oci]
  enabled = true
  gc = false

[worker.containerd]
  enabled = false

[registry."$REGISTRY"]
  http = true
  insecure = true
TOML
  "$bkd" --version >"$LOGS/buildkitd-version.log" 2>&1 || true
  "$bkd" --config "$BK_DIR/buildkitd.toml" --root "$BK_DIR/root" --addr "unix://$BK_SOCK" \
    --oci-worker=true --oci-worker-net=host --containerd-worker=false >"$LOGS/buildkitd.log" 2>&1 </dev/null &
  BK_PID=$!
  local i
  for i in $(seq 1 300); do
    "$BK_CTL" --addr "unix://$BK_SOCK" debug workers >/dev/null 2>&1 && return 0
    kill -0 "$BK_PID" 2>/dev/null || break
    sleep 0.2
  done
  NA_buildkitd_034="buildkitd did not come up: $(rel "$LOGS/buildkitd.log")"
}

# bk_build CTX NAME: the buildctl command line (without the timing) as an array in BKB.
BKB=()
bk_build() {
  BKB=("$BK_CTL" --addr "unix://$BK_SOCK" build --progress=plain --frontend dockerfile.v0
    --local "context=$1" --local "dockerfile=$1" --output "type=image,name=bench-bk-$2")
}

# buildkitd_034_run: prunes the whole cache, pulls the base again with an untimed build
# of a FROM-only-and-RUN-true Dockerfile (the other builders have their bases beforehand),
# then times the case's build, whose FROM is the only cache hit. A warm case (fd, dc)
# builds the case once more, untimed, before the timed build: its cache (steps and the
# context buildkitd received) is kept between the two.
buildkitd_034_run() {
  local ctx=$1 name=$2 logf=$3 pre=$SCRATCH/buildkitd-pre
  "$BK_CTL" --addr "unix://$BK_SOCK" prune --all >"$logf.prune" 2>&1 </dev/null || true
  mkdir -p "$pre"
  printf 'FROM %s\nRUN true\n' "$(case_base "$CURRENT_CASE")" >"$pre/Dockerfile"
  bk_build "$pre" pre
  "${BKB[@]}" >"$logf.prebuild" 2>&1 </dev/null || true
  bk_build "$ctx" "$name"
  if [ -n "$(case_warm "$CURRENT_CASE")" ]; then
    case_before "$CURRENT_CASE" "$ctx"
    "${BKB[@]}" >"$logf.warmup" 2>&1 </dev/null || true
    case_between "$CURRENT_CASE" "$ctx"
  fi
  timed "$logf" "" "${BKB[@]}"
}

buildkitd_034_cleanup() { :; }

buildkitd_034_teardown() {
  [ -n "$BK_PID" ] || return 0
  kill "$BK_PID" 2>/dev/null || true
  local i
  for i in $(seq 1 100); do
    kill -0 "$BK_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$BK_PID" 2>/dev/null || true
  wait "$BK_PID" 2>/dev/null || true
  BK_PID=""
}

buildkitd_034_command() {
  echo "buildkitd-034: buildctl --addr unix://BUILDKITD_SOCK build --progress=plain --frontend dockerfile.v0" \
    "--local context=CTX --local dockerfile=CTX --output type=image,name=bench-bk-NAME, after" \
    "\`buildctl prune --all\` and an untimed build pulling the base (buildkitd: OCI worker, runc, host network);" \
    "warm cases (fd, dc): the case built once more, untimed, its cache kept, before the timed build"
}
