# shellcheck shell=bash
# shellcheck disable=SC2034 # NA_<builder> are read by name (na_reason)
# builders.sh — how scripts/bench sets up, runs and cleans up after each builder.
# Sourced by scripts/bench, which provides log, die, clean_dir, timed and these variables:
# ROOT STATE RUNDIR LOGS SCRATCH REGISTRY BASES (base refs the selected cases need).
#
# Every builder has the same five functions, called by name:
#   <b>_setup             get ready (build, probe, pre-pull); on failure set NA_<b> to a reason
#   <b>_run CTX NAME LOG  one timed build; sets TIMED_SECS, TIMED_RC, TIMED_RSS (KiB or ""),
#                         and TIMED_RETRY to a reason when something outside the builder
#                         spoiled the measurement (the run is then repeated)
#   <b>_cleanup NAME LOG  remove what that one build left (images, state); untimed
#   <b>_teardown          remove everything <b>_setup made
#   <b>_command           the command template, for the report
# Cleanup removes only what this script created: image IDs read from the build's own log,
# and private directories under the bench state dir.

# ---------------------------------------------------------------- kiln

NA_kiln=""
KILN=""

kiln_setup() {
  kiln_binary || { NA_kiln=$KILN_NA; return; }
  kiln_warm_bases
}

# kiln_binary sets KILN to the kiln binary to time, building it the first time; on failure
# it sets KILN_NA to the reason and fails. kiln and kiln-bx share it.
KILN_NA=""
kiln_binary() {
  [ -z "$KILN_NA" ] || return 1
  [ -z "$KILN" ] || return 0
  if [ -n "${KILN_BIN:-}" ]; then
    [ -x "$KILN_BIN" ] || { KILN_NA="KILN_BIN=$KILN_BIN is not executable"; return 1; }
    KILN=$KILN_BIN
  else
    if ! command -v go >/dev/null; then
      KILN_NA="no Go toolchain to build cmd/kiln"
      return 1
    fi
    # Same flags as `make build`, but into the run dir: bin/kiln belongs to whoever last ran
    # make, and may change under a running benchmark.
    log "kiln: go build ./cmd/kiln -> $SCRATCH/bin/kiln"
    if ! (cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$SCRATCH/bin/kiln" ./cmd/kiln) \
      >"$LOGS/kiln-go-build.log" 2>&1; then
      KILN_NA="go build ./cmd/kiln failed: $(rel "$LOGS/kiln-go-build.log")"
      return 1
    fi
    KILN=$SCRATCH/bin/kiln
  fi
  if ! "$KILN" build --help >"$LOGS/kiln-build-help.log" 2>&1; then
    KILN_NA="\`kiln build --help\` failed: $(rel "$LOGS/kiln-build-help.log")"
    KILN=""
    return 1
  fi
  # The per-phase breakdown line ("Phases: wall=… run=…", report.sh's phase table);
  # an older KILN_BIN has no such flag and runs without it.
  KILN_PHASES=()
  if grep -q -- '--phase-times' "$LOGS/kiln-build-help.log"; then KILN_PHASES=(--phase-times); fi
  "$KILN" version >"$LOGS/kiln-version.log" 2>&1 || true
}

# kiln_warm_bases fills the base-image cache (--cache-dir) the cold cases build with,
# untimed, as the other builders have their bases pulled before any timing.
KILN_BASE_CACHE=""
kiln_warm_bases() {
  KILN_BASE_CACHE=$SCRATCH/kiln-base-cache
  if ! kiln_warm_into "$KILN_BASE_CACHE"; then
    log "kiln: kiln warm failed ($(rel "$LOGS/kiln-warm.log")); kiln runs with an empty base cache"
    KILN_BASE_CACHE=""
  fi
}

# kiln_warm_into DIR: `kiln warm` of every base the selected cases need into DIR.
kiln_warm_into() {
  local ref
  mkdir -p "$1"
  for ref in $BASES; do
    log "kiln: warming $ref into $(rel "$1") (untimed)"
    "$KILN" warm --cache-dir "$1" --image "$ref" --insecure-registry "$REGISTRY" \
      >>"$LOGS/kiln-warm.log" 2>&1 || return 1
  done
}

kiln_state() { echo "$SCRATCH/kiln-state"; }
kiln_tar() { echo "$SCRATCH/kiln-$1.tar"; }

kiln_run() {
  local ctx=$1 name=$2 logf=$3 st out cache
  if [ -n "$(case_warm "$CURRENT_CASE")" ]; then
    kiln_run_warm "$@"
    return
  fi
  st=$(kiln_state) out=$(kiln_tar "$name")
  clean_dir "$st"
  rm -f "$out"
  mkdir -p "$st"
  # A fresh --state-dir every run: no layer cache. The base comes from the base-image
  # cache warmed in kiln_setup, except in the cold-base case, which starts empty.
  cache=$KILN_BASE_CACHE
  if case_cold_base "$CURRENT_CASE" || [ -z "$cache" ]; then
    cache=$SCRATCH/kiln-cold-cache
    clean_dir "$cache"
  fi
  timed "$logf" "$SCRATCH/kiln.rss" "$KILN" build --isolation=chroot \
    --context "dir://$ctx" --dockerfile "$ctx/Dockerfile" \
    --destination "$REGISTRY/bench/$name:kiln" --no-push --tar-path "$out" \
    --insecure --insecure-pull --state-dir "$st" --cache-dir "$cache" "${KILN_PHASES[@]}"
  # exit 0 without an image is no build: count it as a failure
  if [ "$TIMED_RC" = 0 ] && [ ! -s "$out" ]; then
    echo "bench: kiln exited 0 but wrote no $out" >>"$logf"
    TIMED_RC=99
  fi
}

# kiln_run_warm: the warm-rebuild cases: kiln build twice on one --state-dir, which
# keeps the step cache (<state-dir>/cache/build, as kiln serve keeps it) between the
# untimed build and the timed one. No --tar-path: the image is already built, as it is
# in the BuildKit daemons' stores; the timed build only has to find that out (fd) or
# redo what changed (dc).
kiln_run_warm() {
  local ctx=$1 name=$2 logf=$3 st
  st=$(kiln_state)
  clean_dir "$st"
  mkdir -p "$st"
  local cmd=("$KILN" build --isolation=chroot --context "dir://$ctx" --dockerfile "$ctx/Dockerfile"
    --destination "$REGISTRY/bench/$name:kiln" --no-push --insecure --insecure-pull
    --state-dir "$st" --cache-dir "${KILN_BASE_CACHE:-$SCRATCH/kiln-cold-cache}"
    --cache --cache-copy-layers)
  case_before "$CURRENT_CASE" "$ctx"
  "${cmd[@]}" >"$logf.prebuild" 2>&1 </dev/null || true
  case_between "$CURRENT_CASE" "$ctx"
  timed "$logf" "$SCRATCH/kiln.rss" "${cmd[@]}" "${KILN_PHASES[@]}"
  if [ "$TIMED_RC" = 0 ] && ! grep -q 'Built image' "$logf"; then
    echo "bench: kiln exited 0 but built no image" >>"$logf"
    TIMED_RC=99
  fi
}

kiln_cleanup() {
  clean_dir "$(kiln_state)"
  rm -f "$(kiln_tar "$1")"
}

kiln_teardown() { :; }

kiln_command() {
  echo "kiln build --isolation=chroot --context dir://CTX --dockerfile CTX/Dockerfile" \
    "--destination $REGISTRY/bench/NAME:kiln --no-push --tar-path OUT.tar --insecure" \
    "--insecure-pull --state-dir FRESH_EMPTY_DIR --cache-dir BASE_CACHE"
  echo "warm cases (fa, fd, dc): the same without --tar-path, with --cache --cache-copy-layers," \
    "twice on one --state-dir (its step cache kept), the second timed"
}

# ---------------------------------------------------------------- docker (classic builder)

NA_docker=""
DOCKER_NETWORK=${BENCH_DOCKER_NETWORK:-host}
DOCKER_BASE_IDS="" # short IDs of the base images: they appear in build logs, never removed

docker_setup() {
  if ! command -v docker >/dev/null; then
    NA_docker="no docker CLI"
    return
  fi
  if ! timeout 15 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
    NA_docker="dockerd does not answer"
    return
  fi
  docker_ensure_bases || NA_docker="docker pull failed: $(rel "$LOGS/docker-pull.log")"
}

# docker_ensure_bases: pulls (untimed) whichever base is missing from the engine, and
# notes the bases' IDs. Called before every run too: other test suites on the machine may
# remove the bases, and the classic builder would then pull inside the timing.
docker_ensure_bases() {
  local ref id ids="" i
  for i in $(seq 1 60); do # dockerd may be restarting under another test suite
    timeout 15 docker version --format '{{.Server.Version}}' >/dev/null 2>&1 && break
    sleep 1
  done
  for ref in $BASES; do
    if ! docker image inspect "$ref" >/dev/null 2>&1; then
      # The image stays afterwards, as after `world.sh up`.
      log "docker: pulling $ref (untimed)"
      docker pull -q "$ref" >>"$LOGS/docker-pull.log" 2>&1 || return 1
    fi
    id=$(docker image inspect -f '{{.Id}}' "$ref") || return 1
    id=${id#sha256:}
    ids="$ids ${id:0:12}"
  done
  DOCKER_BASE_IDS=$ids
}

docker_run() {
  local ctx=$1 name=$2 logf=$3
  docker_ensure_bases || true # a pull failure shows up as the build's own failure
  # Not -q: the classic builder's step output names every image it commits (" ---> ID"),
  # which is how docker_cleanup finds the earlier stages' images of a multi-stage build.
  # Printing a few lines costs nothing measurable.
  # --network host (BENCH_DOCKER_NETWORK): RUN shares the host's network namespace, as
  # it does under kiln's and buildah's chroot isolation, and needs no docker0 bridge.
  if [ -n "$(case_warm "$CURRENT_CASE")" ]; then
    # warm rebuild: an untimed build fills the cache, the same build again is timed
    case_before "$CURRENT_CASE" "$ctx"
    DOCKER_BUILDKIT=0 docker build --network "$DOCKER_NETWORK" -t "bench-$name" "$ctx" \
      >"$logf.prebuild" 2>&1 </dev/null || true
    case_between "$CURRENT_CASE" "$ctx"
    timed "$logf" "" env DOCKER_BUILDKIT=0 docker build \
      --network "$DOCKER_NETWORK" -t "bench-$name" "$ctx"
  else
    timed "$logf" "" env DOCKER_BUILDKIT=0 docker build --no-cache \
      --network "$DOCKER_NETWORK" -t "bench-$name" "$ctx"
  fi
  # Other suites on a shared machine remove images and restart dockerd.
  if grep -q 'Pulling from' "$logf"; then
    TIMED_RETRY="the base was removed from dockerd meanwhile and the build pulled it"
  elif [ "$TIMED_RC" != 0 ] && grep -q 'Cannot connect to the Docker daemon' "$logf"; then
    TIMED_RETRY="dockerd did not answer"
  fi
}

docker_cleanup() {
  local name=$1 logf=$2 ids cids id
  [ -f "$logf" ] || return 0
  # intermediate containers a failed step left behind (successful ones are removed by
  # the builder's default --rm)
  cids=$(sed -n 's/^ ---> Running in \([0-9a-f]\{12\}\)$/\1/p' "$logf")
  for id in $cids; do
    docker rm -f "$id" >/dev/null 2>&1 || true
  done
  docker rmi "bench-$name" >/dev/null 2>&1 || true
  # every image the build committed, newest first so children go before parents; the
  # FROM steps print the base's ID, which stays
  ids=$({ cat "$logf" "$logf.prebuild" 2>/dev/null || true; } | sed -n 's/^ ---> \([0-9a-f]\{12\}\)$/\1/p' | tac)
  for id in $ids; do
    case " $DOCKER_BASE_IDS " in *" $id "*) continue ;; esac
    docker rmi "$id" >/dev/null 2>&1 || true
  done
}

docker_teardown() { :; }

docker_command() {
  echo "DOCKER_BUILDKIT=0 docker build --no-cache --network $DOCKER_NETWORK -t bench-NAME CTX"
}

# ---------------------------------------------------------------- buildah

NA_buildah=""
BUILDAH_DRIVER_USED=""
BUILDAH_NOTE=""
BUILDAH=()
BUILDAH_BASE_IDS=""

buildah_dir() { echo "$SCRATCH/buildah-$1"; }

buildah_cli() { # DRIVER: sets BUILDAH to the CLI prefix with a private store for DRIVER
  local d
  d=$(buildah_dir "$1")
  BUILDAH=(buildah --root "$d/root" --runroot "$d/runroot" --storage-driver "$1")
}

buildah_setup() {
  if ! command -v buildah >/dev/null; then
    NA_buildah="buildah not installed (apt-get install buildah)"
    return
  fi
  local want=${BENCH_BUILDAH_DRIVER:-auto} drivers driver ref
  case $want in
    auto) drivers="overlay vfs" ;;
    *) drivers=$want ;;
  esac
  for driver in $drivers; do
    buildah_cli "$driver"
    if buildah_probe "$driver"; then
      BUILDAH_DRIVER_USED=$driver
      break
    fi
    BUILDAH_NOTE="${BUILDAH_NOTE}storage driver $driver failed its probe ($(rel "$LOGS/buildah-probe-$driver.log")). "
    buildah_wipe "$driver"
  done
  if [ -z "$BUILDAH_DRIVER_USED" ]; then
    NA_buildah="no storage driver worked: $drivers"
    return
  fi
  log "buildah: using storage driver $BUILDAH_DRIVER_USED"
  for ref in $BASES; do
    log "buildah: pre-pulling $ref (untimed)"
    "${BUILDAH[@]}" pull -q --tls-verify=false "$ref" >>"$LOGS/buildah-pull.log" 2>&1 ||
      { NA_buildah="buildah pull $ref failed: $(rel "$LOGS/buildah-pull.log")"; return; }
  done
  BUILDAH_BASE_IDS=$("${BUILDAH[@]}" images -a -q --no-trunc 2>/dev/null | sort -u | tr '\n' ' ')
}

# buildah_probe DRIVER: can buildah pull and build a one-RUN image with DRIVER here?
buildah_probe() {
  local probe=$SCRATCH/buildah-probe logf=$LOGS/buildah-probe-$1.log
  mkdir -p "$probe"
  printf 'FROM %s\nRUN echo probe > /probe\n' "$(BUSYBOX_REF)" >"$probe/Dockerfile"
  if "${BUILDAH[@]}" pull -q --tls-verify=false "$(BUSYBOX_REF)" >"$logf" 2>&1 &&
    "${BUILDAH[@]}" bud --isolation chroot --layers --no-cache --pull=false --format docker \
      --tls-verify=false -t bench-probe "$probe" >>"$logf" 2>&1; then
    "${BUILDAH[@]}" rmi -f bench-probe >>"$logf" 2>&1 || true
    return 0
  fi
  return 1
}

buildah_run() {
  local ctx=$1 name=$2 logf=$3
  # --pull=false: use the pre-pulled base, like docker build without --pull (buildah's
  # default, --pull=true, asks the registry for a newer base on every build).
  if [ -n "$(case_warm "$CURRENT_CASE")" ]; then
    case_before "$CURRENT_CASE" "$ctx"
    "${BUILDAH[@]}" bud --isolation chroot --layers --pull=false --format docker \
      --tls-verify=false -t "bench-$name" "$ctx" >"$logf.prebuild" 2>&1 </dev/null || true
    case_between "$CURRENT_CASE" "$ctx"
    timed "$logf" "$SCRATCH/buildah.rss" "${BUILDAH[@]}" bud --isolation chroot --layers \
      --pull=false --format docker --tls-verify=false -t "bench-$name" "$ctx"
  else
    timed "$logf" "$SCRATCH/buildah.rss" "${BUILDAH[@]}" bud --isolation chroot --layers \
      --no-cache --pull=false --format docker --tls-verify=false -t "bench-$name" "$ctx"
  fi
}

# buildah_cleanup: the store is private to this run, so everything but the pre-pulled bases
# is ours.
buildah_cleanup() {
  local id
  "${BUILDAH[@]}" rm --all >/dev/null 2>&1 || true
  for id in $("${BUILDAH[@]}" images -a -q --no-trunc 2>/dev/null | sort -u); do
    case " $BUILDAH_BASE_IDS " in *" $id "*) continue ;; esac
    "${BUILDAH[@]}" rmi -f "$id" >/dev/null 2>&1 || true
  done
}

buildah_wipe() { # DRIVER: removes the private store of DRIVER entirely
  local d
  d=$(buildah_dir "$1")
  [ -d "$d" ] || return 0
  buildah --root "$d/root" --runroot "$d/runroot" --storage-driver "$1" rm --all >/dev/null 2>&1 || true
  buildah --root "$d/root" --runroot "$d/runroot" --storage-driver "$1" rmi --all -f >/dev/null 2>&1 || true
  clean_dir "$d"
}

buildah_teardown() {
  [ -z "$BUILDAH_DRIVER_USED" ] || buildah_wipe "$BUILDAH_DRIVER_USED"
}

buildah_command() {
  echo "buildah --root R --runroot RR --storage-driver ${BUILDAH_DRIVER_USED:-DRIVER} bud" \
    "--isolation chroot --layers --no-cache --pull=false --format docker --tls-verify=false" \
    "-t bench-NAME CTX"
}
