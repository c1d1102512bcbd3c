#!/usr/bin/env bash
# bench-capacity.sh: measure what one `kiln serve` pod does per hour, by workload, and
# what each concurrent build costs in CPU, memory and disk. docs/scaling.md quotes it.
#
# Usage: scripts/bench-capacity.sh [BUILDS] [CONCURRENCY...]
#   BUILDS       builds per workload and concurrency (default 6)
#   CONCURRENCY  --max-concurrent-builds values to try (default: 1 2)
#
# Needs root (chroot isolation), curl, and the test world's registry
# (eval "$(scripts/world.sh env)"; KILN_TEST_REGISTRY, default 127.0.0.1:5000).
# Every build is sent with nocache=1: the figures are the cost of building, not of
# a cache hit (a full hit costs a lookup per step and no RUN). The server runs with a
# temporary state directory on a unix socket, and is stopped by its PID at the end.
#
# Workloads (busybox, so the base costs nothing after the first pull):
#   small     RUN echo, ENV, CMD                           (a config-only image)
#   run-heavy a shell loop of ~1 s CPU, and a 32 MiB layer written by RUN
#   copy-heavy COPY of a 2,000-file, 24 MiB context, then a RUN over it
#
# Output: one line per workload and concurrency:
#   workload conc builds wall_s builds_per_hour cpu_s_per_build peak_rss_mib scratch_mib_per_build cache_mib_per_build
set -euo pipefail

BUILDS=${1:-6}
shift || true
CONCS=("$@")
[ ${#CONCS[@]} -gt 0 ] || CONCS=(1 2)
REG=${KILN_TEST_REGISTRY:-127.0.0.1:5000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "bench-capacity: needs root (chroot isolation)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/kiln-capacity-XXXXXX)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then
    kill -INT "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

(cd "$ROOT" && CGO_ENABLED=0 go build -o "$WORK/kiln" ./cmd/kiln)

# ---------------------------------------------------------------- contexts
mkdir -p "$WORK/ctx/small" "$WORK/ctx/run-heavy" "$WORK/ctx/copy-heavy/files"
cat >"$WORK/ctx/small/Dockerfile" <<DF
FROM $REG/busybox:1.35
RUN echo small > /small
ENV APP=small
CMD ["cat", "/small"]
DF
cat >"$WORK/ctx/run-heavy/Dockerfile" <<DF
FROM $REG/busybox:1.35
RUN i=0; while [ \$i -lt 150000 ]; do i=\$((i+1)); done; echo \$i > /count
RUN head -c 33554432 /dev/urandom > /blob
DF
cat >"$WORK/ctx/copy-heavy/Dockerfile" <<DF
FROM $REG/busybox:1.35
COPY files /src
RUN find /src -type f | wc -l > /n
DF
for i in $(seq 1 2000); do
  head -c 12288 /dev/urandom >"$WORK/ctx/copy-heavy/files/f$i"
done
for w in small run-heavy copy-heavy; do
  tar -C "$WORK/ctx/$w" -cf "$WORK/$w.tar" .
done

# ---------------------------------------------------------------- helpers
# proc_cpu PID: user+system CPU seconds of PID and its waited-for children.
proc_cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14+$15+$16+$17)/hz }' "/proc/$1/stat"
}
# group_rss PGID: resident memory of the process group, MiB.
group_rss() {
  ps -o rss= -g "$1" 2>/dev/null | awk '{ s += $1 } END { printf "%d", s/1024 }'
}
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b/1048576 }'; }

start_server() { # CONC
  rm -rf "$WORK/state"
  setsid "$WORK/kiln" serve --isolation chroot --state-dir "$WORK/state" \
    -H "unix://$WORK/kiln.sock" --max-concurrent-builds "$1" --log-format text -v warn \
    >"$WORK/serve.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    curl -fsS --unix-socket "$WORK/kiln.sock" http://kiln/_ping >/dev/null 2>&1 && return
    sleep 0.1
  done
  cat "$WORK/serve.log" >&2
  exit 1
}
stop_server() {
  kill -INT "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}
build() { # WORKLOAD N
  curl -fsS --unix-socket "$WORK/kiln.sock" -X POST -H 'Content-Type: application/x-tar' \
    --data-binary "@$WORK/$1.tar" "http://kiln/build?nocache=1&t=capacity/$1:$2" >"$WORK/out-$1-$2.json"
  if grep -q '"error"' "$WORK/out-$1-$2.json"; then
    echo "bench-capacity: build $1 #$2 failed:" >&2
    cat "$WORK/out-$1-$2.json" >&2
    return 1
  fi
}

# ---------------------------------------------------------------- runs
printf '%-10s %4s %6s %7s %15s %15s %12s %21s %19s\n' workload conc builds wall_s builds_per_hour cpu_s_per_build peak_rss_mib scratch_mib_per_build cache_mib_per_build
for conc in "${CONCS[@]}"; do
  for w in small run-heavy copy-heavy; do
    start_server "$conc"
    build "$w" warm # the base pulled and extracted once, as on a warm pod
    cpu0=$(proc_cpu "$SERVER_PID")
    cache0=$(du -sb "$WORK/state/cache" | cut -f1)
    peak_rss=0 peak_scratch=0
    t0=$(date +%s.%N)
    pids=()
    for n in $(seq 1 "$BUILDS"); do
      build "$w" "$n" &
      pids+=($!)
    done
    while :; do
      running=0
      for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && running=1; done
      rss=$(group_rss "$SERVER_PID")
      [ "$rss" -gt "$peak_rss" ] && peak_rss=$rss
      # files come and go under du: keep its total line, whatever it says about them
      s=$( (du -sb "$WORK/state/builds" 2>/dev/null || true) | tail -n 1 | cut -f1)
      [ "${s:-0}" -gt "$peak_scratch" ] && peak_scratch=$s
      [ "$running" = 1 ] || break
      sleep 0.2
    done
    for p in "${pids[@]}"; do wait "$p"; done
    t1=$(date +%s.%N)
    cpu1=$(proc_cpu "$SERVER_PID")
    cache1=$(du -sb "$WORK/state/cache" | cut -f1)
    stop_server
    awk -v w="$w" -v c="$conc" -v n="$BUILDS" -v t0="$t0" -v t1="$t1" -v c0="$cpu0" -v c1="$cpu1" \
      -v rss="$peak_rss" -v scr="$(mib "$peak_scratch")" -v k0="$cache0" -v k1="$cache1" 'BEGIN {
        wall = t1 - t0
        printf "%-10s %4d %6d %7.1f %15.0f %15.2f %12d %21.1f %19.1f\n", w, c, n, wall, n * 3600 / wall,
          (c1 - c0) / n, rss, scr / c, (k1 - k0) / n / 1048576
      }'
  done
done
