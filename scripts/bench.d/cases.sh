# shellcheck shell=bash
# cases.sh — the build cases scripts/bench times: what each one is, which base image it
# needs, and how to write its context. Sourced by scripts/bench; expects $REGISTRY.
#
# Contexts are generated deterministically (fixed text, fixed mtimes, and for case d a
# seeded keystream), so every builder and every machine builds the same bytes. Bump
# CASES_RECIPE when a generator changes: it invalidates contexts cached in the state dir.

CASES_RECIPE=1
# shellcheck disable=SC2034 # read by scripts/bench
CASES_ALL="a b c d e e0 fa fd dc g h"
CASES_EPOCH=1700000000 # mtime given to every context file

BUSYBOX_REF() { echo "$REGISTRY/busybox:1.35"; }
DEBIAN_REF() { echo "$REGISTRY/debian:bookworm"; }

# case_name CASE: the short name used in image tags and log file names.
case_name() {
  case $1 in
    a) echo small ;;
    b) echo multistage ;;
    c) echo run5k ;;
    d) echo copy10k ;;
    e) echo bigbase ;;
    e0) echo bigbase-cold ;;
    fa) echo warm-small ;;
    fd) echo warm-copy10k ;;
    dc) echo changed-copy10k ;;
    g) echo copy1g ;;
    h) echo snapshot100k ;;
    *) return 1 ;;
  esac
}

# case_warm CASE: for a warm-rebuild case, the case whose build it repeats (its context
# and Dockerfile); nothing for a cold case. Builders build it once untimed, then time
# the same build again with their cache in place. Between the two builds they call
# case_between CASE CTX (before the untimed one: case_before CASE CTX).
case_warm() {
  case $1 in
    fa) echo a ;;
    fd | dc) echo d ;;
  esac
}

# The file of case d's context that case dc changes between the untimed and the timed
# build (one of the 10,000; its directory and size stay the same).
CASES_DC_FILE=data/d42/x4217

# case_before CASE CTX: before a warm case's untimed build. For dc: the changed file gets
# its original bytes and mtime back, so the untimed build sees case d's context.
case_before() {
  [ "$1" = dc ] || return 0
  local orig=$STATE/contexts/d/$CASES_DC_FILE
  cat "$orig" >"$2/$CASES_DC_FILE"
  touch -d "@$CASES_EPOCH" "$2/$CASES_DC_FILE"
}

# case_between CASE CTX: between a warm case's untimed and timed builds. For dc: one file
# of the context gets new bytes (a first line naming this moment, unique to the run; the
# same size) and the current mtime, as an editor saving it would; the COPY must run again.
case_between() {
  [ "$1" = dc ] || return 0
  local orig=$STATE/contexts/d/$CASES_DC_FILE size head
  size=$(stat -c %s "$orig")
  head=$(printf 'kiln bench: changed at %s by %s' "$EPOCHREALTIME" "${CURRENT_BUILDER:-?}")
  { printf '%s\n' "$head"; head -c $((size - ${#head} - 1)) "$orig"; } >"$2/$CASES_DC_FILE"
}

# case_cold_base CASE: succeeds when kiln must start without its base-image cache (the
# other builders always have the base locally).
case_cold_base() { [ "$1" = e0 ]; }

# case_desc CASE: one line for the report table.
case_desc() {
  case $1 in
    a) echo "small: busybox, 3 ENV, COPY of 3 small files, 2 small RUNs" ;;
    b) echo "multi-stage: 3 busybox stages, a RUN in each, COPY --from between them" ;;
    c) echo "one RUN creating 5,000 files on busybox" ;;
    d) echo "COPY of 10,000 files, 100 MiB of random bytes, into busybox" ;;
    e) echo "RUN echo hi > /x on debian:bookworm (~116 MB base), base cached" ;;
    e0) echo "e with kiln's base cache empty (kiln pulls the base inside the timing)" ;;
    fa) echo "warm rebuild of a: same Dockerfile and context again, cache in place (kiln: kiln build twice on one --state-dir)" ;;
    fd) echo "warm rebuild of d, as fa" ;;
    dc) echo "rebuild of d after one of its 10,000 files changed (same size, new bytes and mtime): the COPY runs again" ;;
    g) echo "COPY of 1 GiB (100 files of 10 MiB, random bytes) into busybox: memory" ;;
    h) echo "snapshot of an unchanged 100,000-file root (kiln's Go benchmark; the others expose no equivalent)" ;;
  esac
}

# case_base CASE: the base image reference the case's Dockerfile starts from.
case_base() {
  case $1 in
    e | e0) DEBIAN_REF ;;
    *) BUSYBOX_REF ;;
  esac
}

# case_generate CASE DIR: writes CASE's context into the empty directory DIR.
case_generate() {
  local c=$1 dir=$2 bb
  bb=$(BUSYBOX_REF)
  case $c in
    a)
      local i
      for i in 1 2 3; do
        printf 'bench file %d\nline two of file %d\n' "$i" "$i" >"$dir/f$i.txt"
      done
      cat >"$dir/Dockerfile" <<EOF
FROM $bb
ENV APP_HOME=/app APP_MODE=bench
ENV APP_GREETING="hello from kiln bench"
ENV PATH=/app/bin:\$PATH
COPY f1.txt f2.txt f3.txt /app/
RUN mkdir -p /app/bin && echo "\$APP_GREETING (\$APP_MODE)" > /app/greeting.txt
RUN cat /app/f1.txt /app/f2.txt /app/f3.txt | wc -l > /app/lines.txt
EOF
      ;;
    b)
      cat >"$dir/Dockerfile" <<EOF
FROM $bb AS one
RUN mkdir -p /out && seq 1 2000 > /out/numbers.txt && echo one > /out/stage.txt

FROM $bb AS two
COPY --from=one /out /in
RUN mkdir -p /out && wc -l < /in/numbers.txt > /out/count.txt && cat /in/stage.txt > /out/stages.txt && echo two >> /out/stages.txt

FROM $bb
COPY --from=one /out/numbers.txt /result/numbers.txt
COPY --from=two /out /result
RUN echo three >> /result/stages.txt && ls -l /result > /result/listing.txt
EOF
      ;;
    c)
      cat >"$dir/Dockerfile" <<EOF
FROM $bb
RUN mkdir -p /many && cd /many && i=1 && while [ \$i -le 5000 ]; do echo "file \$i of 5000" > f\$i.txt; i=\$((i + 1)); done && ls | wc -l > /many.count
EOF
      ;;
    d)
      mkdir -p "$dir/data"
      case_random_bytes $((10000 * 10486)) | split -b 10486 -a 4 -d - "$dir/data/x"
      local p
      for p in $(seq -w 0 99); do
        mkdir "$dir/data/d$p"
        mv "$dir/data/x$p"?? "$dir/data/d$p/"
      done
      cat >"$dir/Dockerfile" <<EOF
FROM $bb
COPY data /data
EOF
      ;;
    e | e0)
      cat >"$dir/Dockerfile" <<EOF
FROM $(DEBIAN_REF)
RUN echo hi > /x
EOF
      ;;
    g)
      mkdir -p "$dir/big"
      case_random_bytes $((100 * 10485760)) | split -b 10485760 -a 3 -d - "$dir/big/part"
      cat >"$dir/Dockerfile" <<EOF
FROM $bb
COPY big /big
EOF
      ;;
    *) return 1 ;;
  esac
  find "$dir" -exec touch -h -d "@$CASES_EPOCH" {} +
}

# case_random_bytes N: N incompressible bytes, the same on every run and machine: an
# AES-CTR keystream with a fixed passphrase. Without openssl it falls back to /dev/urandom
# (still incompressible, no longer reproducible).
case_random_bytes() {
  if command -v openssl >/dev/null; then
    # openssl dies of SIGPIPE when head has enough; that is the expected end.
    { openssl enc -aes-256-ctr -pbkdf2 -nosalt -pass pass:kiln-bench-case-d \
      -in /dev/zero 2>/dev/null || true; } | head -c "$1"
  else
    head -c "$1" /dev/urandom
  fi
}

# case_context CASE: prints the directory of CASE's context under $STATE/contexts, generating
# it first unless a finished one built from the same recipe is there.
case_context() {
  local c=$1 dir=$STATE/contexts/$1 key src
  src=$(case_warm "$c")
  if [ "$c" = dc ]; then
    case_context_dc
    return
  fi
  if [ -n "$src" ]; then
    case_context "$src"
    return
  fi
  key="recipe=$CASES_RECIPE registry=$REGISTRY openssl=$(command -v openssl >/dev/null && echo yes || echo no)"
  if [ -d "$dir" ] && [ "$(cat "$dir.key" 2>/dev/null || true)" = "$key" ]; then
    echo "$dir"
    return
  fi
  log "generating the context of case $c in $dir"
  rm -rf --one-file-system "$dir" "$dir.key"
  mkdir -p "$dir"
  case_generate "$c" "$dir"
  echo "$key" >"$dir.key" # written last: an interrupted generation never counts
  echo "$dir"
}

# case_context_dc: case dc's context is a copy of case d's made of hard links (cheap),
# but for the one file dc rewrites, which is a file of its own so that d stays intact.
# A directory of its own also gives BuildKit clients their own context to transfer
# incrementally (buildx keys it by the directory's path).
case_context_dc() {
  local d dir=$STATE/contexts/dc key
  d=$(case_context d)
  key="from d: $(cat "$d.key")"
  if [ -d "$dir" ] && [ "$(cat "$dir.key" 2>/dev/null || true)" = "$key" ]; then
    echo "$dir"
    return
  fi
  log "linking the context of case dc in $dir (case d's, one file copied)"
  rm -rf --one-file-system "$dir" "$dir.key"
  cp -al "$d" "$dir"
  rm -f "$dir/$CASES_DC_FILE"
  cp -p "$d/$CASES_DC_FILE" "$dir/$CASES_DC_FILE"
  touch -h -d "@$CASES_EPOCH" "$(dirname "$dir/$CASES_DC_FILE")"
  echo "$key" >"$dir.key"
  echo "$dir"
}
