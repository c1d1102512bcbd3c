# shellcheck shell=bash
# report.sh — turns scripts/bench's raw timings (TSV) into the Markdown report.
# Sourced by scripts/bench; reads TSV, RUNS, CASES, BUILDERS, RUNDIR, NA_<builder>,
# BUILDAH_DRIVER_USED, BUILDAH_NOTE, LOAD_START, LOAD_END, START_UTC, ROOT.
#
# TSV columns: case builder run status seconds peak_rss_kib log
#   status is ok, fail, skipped (an earlier run of the same case failed) or na (the
#   builder is not usable at all; seconds holds the reason).

# stat_of CASE BUILDER FIELD: median of FIELD (5 = seconds, 6 = peak RSS KiB) over the ok
# runs; empty when there are none.
stat_of() {
  awk -F'\t' -v c="$1" -v b="$2" -v f="$3" '$1 == c && $2 == b && $4 == "ok" && $f != "" {print $f}' "$TSV" |
    sort -g |
    awk '{v[NR] = $1} END {
      if (NR == 0) exit
      if (NR % 2) printf "%.3f\n", v[(NR + 1) / 2]
      else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2
    }'
}

# range_of CASE BUILDER: " [min–max]" of the ok runs' seconds when there are two or more.
range_of() {
  awk -F'\t' -v c="$1" -v b="$2" '$1 == c && $2 == b && $4 == "ok" {print $5}' "$TSV" |
    sort -g |
    awk 'NR == 1 {lo = $1} {hi = $1} END {if (NR > 1) printf " [%.2f–%.2f]\n", lo, hi}'
}

# count_of CASE BUILDER STATUS: how many runs ended with STATUS.
count_of() {
  awk -F'\t' -v c="$1" -v b="$2" -v s="$3" '$1 == c && $2 == b && $4 == s {n++} END {print n + 0}' "$TSV"
}

# first_log CASE BUILDER STATUS: the log of the first run that ended with STATUS.
first_log() {
  awk -F'\t' -v c="$1" -v b="$2" -v s="$3" '$1 == c && $2 == b && $4 == s {print $7; exit}' "$TSV"
}

# cell CASE BUILDER: the time cell: "1.23 s", "1.23 s (1 of 3 failed: LOG)", "fail (LOG)",
# "n/a (reason)" or "–" when the builder was not selected.
cell() {
  local c=$1 b=$2 med na ok fail
  case " $BUILDERS " in *" $b "*) ;; *) echo "–"; return ;; esac
  na=$(na_reason "$b")
  if [ -n "$na" ]; then echo "n/a ($na)"; return; fi
  if [ "$(count_of "$c" "$b" na)" -gt 0 ] && [ "$(count_of "$c" "$b" ok)" = 0 ]; then
    echo "n/a"
    return
  fi
  med=$(stat_of "$c" "$b" 5)
  ok=$(count_of "$c" "$b" ok)
  fail=$(count_of "$c" "$b" fail)
  if [ -z "$med" ]; then
    echo "fail ($(first_log "$c" "$b" fail))"
  elif [ "$fail" -gt 0 ]; then
    printf '%.2f s%s (%d of %d failed: %s)\n' "$med" "$(range_of "$c" "$b")" "$fail" $((ok + fail)) "$(first_log "$c" "$b" fail)"
  else
    printf '%.2f s%s\n' "$med" "$(range_of "$c" "$b")"
  fi
}

# rss_cell CASE BUILDER: median peak RSS in MiB.
rss_cell() {
  local kib
  kib=$(stat_of "$1" "$2" 6)
  if [ -z "$kib" ]; then echo "–"; else awk -v k="$kib" 'BEGIN {printf "%.0f MiB\n", k / 1024}'; fi
}

# ratio_cell CASE A B: median(A)/median(B), or n/a.
ratio_cell() {
  local a b
  a=$(stat_of "$1" "$2" 5)
  b=$(stat_of "$1" "$3" 5)
  if [ -z "$a" ] || [ -z "$b" ]; then echo "n/a"; return; fi
  awk -v a="$a" -v b="$b" 'BEGIN {if (b > 0) printf "%.2f×\n", a / b; else print "n/a"}'
}

na_reason() {
  local v="NA_${1//-/_}"
  printf '%s' "${!v:-}" | tr '|' '/'
}

machine_facts() {
  local cpu mem os dv dd bv kc
  cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
  mem=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
  os=$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-unknown}")
  dv=$(docker version --format '{{.Server.Version}}' 2>/dev/null || echo "not running")
  dd=$(docker info --format '{{.Driver}}' 2>/dev/null || echo "?")
  bv=$(buildah --version 2>/dev/null | awk '{print $3}' || true)
  kc=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?")
  if [ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null | head -1)" ]; then
    kc="$kc + uncommitted changes"
  fi
  echo "| | |"
  echo "|---|---|"
  echo "| date | $START_UTC |"
  echo "| CPU | ${cpu:-unknown}, \`nproc\` = $(nproc) |"
  echo "| memory | $mem |"
  echo "| kernel | $(uname -r) ($(uname -m)) |"
  echo "| OS | $os |"
  echo "| docker | server $dv, classic builder, storage driver $dd |"
  echo "| buildah | ${bv:-not installed}, storage driver ${BUILDAH_DRIVER_USED:-none}, chroot isolation |"
  echo "| BuildKit clients | $(bx_versions) |"
  if [ -n "${KILN_BIN:-}" ]; then
    echo "| kiln | KILN_BIN=$KILN_BIN (work tree at git $kc) |"
  else
    echo "| kiln | git $kc, built by \`go build -trimpath -ldflags='-s -w'\` (as \`make build\`) with $(go version 2>/dev/null | awk '{print $3}') |"
  fi
  echo "| bench state dir | $STATE ($(df --output=fstype "$STATE" | tail -n 1)) |"
  echo "| load average (1/5/15 min) | start: $LOAD_START; end: $LOAD_END |"
}

results_table() {
  local c
  echo "| case | what | kiln | docker classic | buildah ($BUILDAH_DRIVER_USED) | kiln / docker | kiln / buildah | kiln peak RSS | buildah peak RSS |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for c in $CASES; do
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$c" "$(case_desc "$c")" \
      "$(cell "$c" kiln)" "$(cell "$c" docker)" "$(cell "$c" buildah)" \
      "$(ratio_cell "$c" kiln docker)" "$(ratio_cell "$c" kiln buildah)" \
      "$(rss_cell "$c" kiln)" "$(rss_cell "$c" buildah)"
  done
}

# measured_by_bk CASE: does a BuildKit-side builder (kiln-bx, docker-bx, buildkitd-034)
# measure CASE?
measured_by_bk() {
  local b
  for b in kiln-bx docker-bx buildkitd-034; do
    case " $BUILDERS " in *" $b "*) ;; *) continue ;; esac
    builder_measures "$b" "$1" && return 0
  done
  return 1
}

# bk_cell CASE BUILDER: cell, or "–" when BUILDER does not measure CASE.
bk_cell() { if builder_measures "$2" "$1"; then cell "$1" "$2"; else echo "–"; fi; }

# bx_table: kiln against BuildKit, case by case: kiln build and kiln-bx (buildx → kiln
# serve) against docker-bx (buildx → dockerd's BuildKit) and buildkitd-034 (buildctl →
# buildkitd v0.34), with the ratios of medians and kiln's peak RSS (kiln build's
# process; kiln serve's own VmHWM for kiln-bx).
bx_table() {
  local c
  echo "| case | kiln | kiln-bx | docker-bx | buildkitd 0.34 | kiln / docker-bx | kiln / buildkitd | kiln-bx / docker-bx | kiln-bx / buildkitd | kiln peak RSS | kiln serve peak RSS (kiln-bx) |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  for c in $CASES; do
    measured_by_bk "$c" || continue
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$c" \
      "$(cell "$c" kiln)" "$(bk_cell "$c" kiln-bx)" "$(bk_cell "$c" docker-bx)" "$(bk_cell "$c" buildkitd-034)" \
      "$(ratio_cell "$c" kiln docker-bx)" "$(ratio_cell "$c" kiln buildkitd-034)" \
      "$(ratio_cell "$c" kiln-bx docker-bx)" "$(ratio_cell "$c" kiln-bx buildkitd-034)" \
      "$(rss_cell "$c" kiln)" "$(rss_cell "$c" kiln-bx)"
  done
}

# KILN_PHASE_KEYS: the columns of the phase table, in the order of kiln's line.
KILN_PHASE_KEYS="wall context base run snapshot layer compress copy cache export other"

# kiln_phases_cells CASE: the medians of the ok kiln runs' phases (bench.d/phases.awk on
# each log), one " x.xx |" cell per key of KILN_PHASE_KEYS; nothing when no log has a
# "Phases:" line.
kiln_phases_cells() {
  local logs l
  logs=$(awk -F'\t' -v c="$1" '$1 == c && $2 == "kiln" && $4 == "ok" {print $7}' "$TSV")
  [ -n "$logs" ] || return 0
  for l in $logs; do awk -f "$HERE/bench.d/phases.awk" "$STATE/$l"; done |
    awk -v keys="$KILN_PHASE_KEYS" '
      { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1], NR] = kv[2] + 0 } }
      END {
        if (NR == 0) exit
        nk = split(keys, k, " ")
        for (i = 1; i <= nk; i++) {
          n = 0
          for (r = 1; r <= NR; r++) a[++n] = v[k[i], r] + 0
          for (x = 1; x <= n; x++) for (y = x + 1; y <= n; y++) if (a[y] < a[x]) { t = a[x]; a[x] = a[y]; a[y] = t }
          m = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
          printf " %.2f |", m
        }
        printf "\n"
      }'
}

# kiln_phases_table: where kiln build's time goes, per case, from the "Phases:" line
# `kiln build --phase-times` logs (seconds, medians of each phase over the ok runs).
kiln_phases_table() {
  local c k cells
  printf '| case |'
  for k in $KILN_PHASE_KEYS; do printf ' %s |' "$k"; done
  echo
  printf '|---|'
  for k in $KILN_PHASE_KEYS; do printf -- '---|'; done
  echo
  for c in $CASES; do
    cells=$(kiln_phases_cells "$c")
    [ -n "$cells" ] || continue
    echo "| $c |$cells"
  done
}

# phases_of LOG: "transfer steps export" seconds of one BuildKit --progress=plain log:
# the DONE times of the vertices named "[internal] load build context", of the build steps
# ("[2/3] COPY …", "[stage 1/2] RUN …") and of "exporting to image". Empty when LOG has none.
phases_of() {
  awk '
    /^#[0-9]+ / {
      id = $1
      rest = substr($0, length(id) + 2)
      if (!(id in name)) { name[id] = rest; next }
      if (rest ~ /^DONE [0-9.]+s$/) {
        t = substr(rest, 6) + 0
        n = name[id]
        if (n ~ /^\[internal\] load build context/) tr += t
        else if (n ~ /^\[[^]]*[0-9]+\/[0-9]+\]/) st += t
        else if (n ~ /^exporting to /) ex += t
        seen = 1
      }
    }
    END { if (seen) printf "%.1f %.1f %.1f\n", tr, st, ex }
  ' "$1" 2>/dev/null
}

# phases_cell CASE BUILDER: the medians of the ok runs' phases, "transfer / steps /
# export", or "–".
phases_cell() {
  local logs l
  logs=$(awk -F'\t' -v c="$1" -v b="$2" '$1 == c && $2 == b && $4 == "ok" {print $7}' "$TSV")
  [ -n "$logs" ] || { echo "–"; return; }
  for l in $logs; do phases_of "$STATE/$l"; done |
    awk '{for (i = 1; i <= 3; i++) v[i, NR] = $i} END {
      if (NR == 0) { print "–"; exit }
      for (i = 1; i <= 3; i++) {
        n = 0
        for (r = 1; r <= NR; r++) a[++n] = v[i, r]
        for (x = 1; x <= n; x++) for (y = x + 1; y <= n; y++) if (a[y] < a[x]) { t = a[x]; a[x] = a[y]; a[y] = t }
        m[i] = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
      }
      printf "%.1f / %.1f / %.1f s\n", m[1], m[2], m[3]
    }'
}

# bx_phases_table: where the BuildKit clients' time goes, from their progress output.
bx_phases_table() {
  local c b bs="kiln-bx docker-bx"
  case " $BUILDERS " in *" buildkitd-034 "*) bs="$bs buildkitd-034" ;; esac
  printf '| case |'
  for b in $bs; do printf ' %s |' "$b"; done
  echo
  printf '|---|'
  for b in $bs; do printf -- '---|'; done
  echo
  for c in $CASES; do
    builder_measures kiln-bx "$c" || continue
    printf '| %s |' "$c"
    for b in $bs; do
      if builder_measures "$b" "$c"; then printf ' %s |' "$(phases_cell "$c" "$b")"; else printf ' – |'; fi
    done
    echo
  done
}

buildah_driver_note() {
  case ${BENCH_BUILDAH_DRIVER:-auto} in
    auto) echo "${BUILDAH_NOTE}The storage driver is overlay when it works here, else vfs." ;;
    *) echo "${BUILDAH_NOTE}The storage driver was chosen by BENCH_BUILDAH_DRIVER." ;;
  esac
}

render_report() {
  cat <<EOF
# Performance: kiln vs Docker's classic builder vs buildah

Written by \`scripts/bench\` (\`make bench\`); rerun it to refresh this page. Each cell is
the **median wall-clock time of $RUNS run(s)** of the same build on the same machine, one
builder after the other (the order rotates from run to run), with [fastest–slowest] when
there are several. Ratios (of medians) below 1× mean kiln is faster. Cases run: $CASES.
What kiln does to be fast, and where each trick stops applying: [speed.md](speed.md).

## Results

$(results_table)

## kiln vs BuildKit

The same kind of cell for the BuildKit clients, in the same run: kiln-bx is \`docker
build\` through the buildx plugin (docker driver) at \`kiln serve\`, docker-bx the same at
dockerd's built-in BuildKit, buildkitd 0.34 is buildctl at buildkitd v0.34. The kiln
column is \`kiln build\` (the table above). Cold cases (a, c, d, g) start without step
cache and without the context the client sent before; fd rebuilds d unchanged; dc
rebuilds d after one file changed, where BuildKit's incremental context transfer sends
only that file. kiln build's warm cases run twice on one \`--state-dir\`, whose step cache
stays, as kiln serve's does. Ratios are of medians; below 1× kiln is faster (the issue's
targets: cold ≤ 0.6×, dc ≤ 0.4×, fd ≤ 0.3 s, peak RSS ≤ 64 MiB). kiln serve's peak RSS
is its own VmHWM over the timed build (reset before it), not the client's; case g runs
through kiln-bx for it.

$(bx_table)

## Where kiln's time goes (phases)

\`kiln build --phase-times\` logs one line per build, \`Phases: wall=… context=… base=… run=…
snapshot=… layer=… compress=… copy=… cache=… export=… other=…\` (seconds; at debug level without
the flag), which the bench reads from each kiln run's log; the table shows the medians.
**context** is obtaining the build context (fetching a remote one; a \`dir://\` context
costs nothing here), **base** pulling and mounting or extracting base layers, **run**
the RUN processes (namespace setup included), **snapshot** walking the root to record it
and to find what a RUN changed, **layer** writing layer tars (with their compression
while that happens there), **compress** compression where it is a step of its own,
**copy** COPY and ADD less the phases they contain, **cache** the step cache (computing
keys, which hashes the files a COPY reads, looking steps up, storing them; the warm
cases), **export** writing the outputs
(here the \`--tar-path\` tarball), **other** the rest of the wall time (parsing,
image configs, removing the build's scratch files). The phases are disjoint and
sum to at most the wall time, which runs from opening the context to the end of the
export (the process's start and exit are not in it). \`kiln serve\` logs the same
breakdown as \`phase_*\` fields of its "build done" line and exports it as the
\`kiln_build_phase_seconds\` histogram.

$(kiln_phases_table)

Where the BuildKit clients' time goes, from each client's \`--progress=plain\` output (medians of the runs):
context transfer / build steps / exporting the image. The rest of the wall-clock time is
the client's own: starting buildx, opening the session, resolving the base (a few tenths
of a second), waiting for the session to close.

$(bx_phases_table)

## Machine

$(machine_facts)

## How each builder is run

- **kiln** gets a fresh, empty \`--state-dir\` every run (no step cache). Its base image
  comes from a base-image cache (\`--cache-dir\`) filled once by \`kiln warm\` before any
  timing, as Docker and buildah have their bases pulled beforehand; case e0 starts with an
  empty cache, so kiln pulls and extracts the base inside the timing. kiln's time also
  includes writing the image as a docker-archive tarball with gzip-compressed layers
  (\`--tar-path\`); Docker and buildah only commit into their local stores, uncompressed.
- The warm cases (fa, fd) build the same context twice and time the second build: kiln
  build twice on one \`--state-dir\` with \`--cache --cache-copy-layers\` (its local step
  cache kept between them, as kiln serve keeps it) and no \`--tar-path\` (the image is
  already built, as in a daemon's store), Docker without \`--no-cache\`, buildah with
  \`--layers\` and no \`--no-cache\`.
- Case dc builds d's context once untimed, then rewrites one of its 10,000 files (same
  size, new first line, current mtime) and times the rebuild. kiln build and buildah read
  the directory; Docker's classic builder receives the whole context again as a tar.
- **kiln-bx** and **docker-bx** run the docker CLI with a private \`DOCKER_CONFIG\` holding
  only the buildx plugin (\`scripts/buildkit-tools.sh\`), \`--progress=plain\`, no
  attestations. kiln-bx talks to one \`kiln serve --isolation=chroot\` with a warmed
  base-image cache; before each cold run it is restarted on an empty state dir (empty step cache, no kept context, as after \`docker buildx prune -af\`), untimed. docker-bx talks to the world's dockerd, with
  \`docker builder prune -af\` (untimed) before each cold run; dockerd's BuildKit finds the
  pre-pulled base in its image store. Both cold runs add \`--no-cache\`; the warm ones
  (fd, dc) build twice and time the second build, as above. The image is stored in the
  server's image store in both (buildx's default output, no \`--load\` copy).
- **buildkitd-034** (cases a, c, d, fd, dc) is the reference daemon, BuildKit v0.34 as
  \`scripts/buildkit-tools.sh\` builds it, run as root by the bench with the OCI worker
  (runc, its default snapshotter, \`--oci-worker-net=host\`) and the test registry over
  HTTP; buildctl sends the build (\`--frontend dockerfile.v0\`, no buildx). Before each run
  \`buildctl prune --all\` empties its cache and an untimed build pulls the base again, so
  the timed build starts with the base only; the warm cases (fd, dc) build the case once
  more, untimed, before the timed build, keeping buildkitd's cache. The image goes to
  buildkitd's own image store (\`--output type=image\`, not pushed).
- Case h is a Go benchmark of kiln's snapshot code (\`BenchmarkDiffUnchanged/100k\`,
  10 iterations per run): the time to find that nothing changed in a 100,000-file root
  after a RUN. The other builders expose no such step.
- **Docker** and **buildah** had their base images pulled once before any timing; their
  times hold no pull. Docker's time includes the CLI sending the context to dockerd.
- Docker builds with \`--network $DOCKER_NETWORK\`: with \`host\`, RUN shares the host's
  network namespace, as under kiln's and buildah's chroot isolation, and needs no docker0
  bridge (set BENCH_DOCKER_NETWORK=default to measure the bridge's veth setup too).
- buildah runs with \`--pull=false\` (use the local base, as \`docker build\` without
  \`--pull\` does) and a private store under the bench state dir.
  $(buildah_driver_note)
- Peak RSS is \`/usr/bin/time -f %M\` of the builder's command: the peak of the largest
  single process in its tree. Docker has no column: the work happens in dockerd, which the
  client's RSS does not show. kiln-bx's is kiln serve's own: \`VmHWM\` of the server
  process, reset through \`/proc/PID/clear_refs\` before the timed build.
- Before each timed run the script calls \`sync\`, so one builder's write-back does not land
  in the next one's time. Page cache is not dropped: contexts are warm for every builder.
- Other work on the machine shows up as noise; see the load average above.

Commands (CTX is the generated context, NAME the case's short name):

\`\`\`
$(kiln_command)
$(docker_command)
$(buildah_command)
$(kiln_bx_command)
$(docker_bx_command)
$(buildkitd_034_command)
\`\`\`

The contexts are generated deterministically by \`scripts/bench.d/cases.sh\`. Raw
per-run timings (seconds, peak RSS in KiB, log path) are in
\`$TSV\` on the machine that ran the benchmark.
EOF
}
