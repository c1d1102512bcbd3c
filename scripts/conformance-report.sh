#!/usr/bin/env bash
# conformance-report.sh SUMMARY.tsv... — turn diffbuild's summary.tsv files (e.g. one run
# without and one with the Debian mirror, and one over kiln's own corpus) into the Markdown
# of docs/conformance.md. docs/conformance-notes.tsv (case<TAB>reason) explains the cases
# that do not pass, and notes what a passing case pins (e.g. where BuildKit differs).
set -euo pipefail
notes=${NOTES:-docs/conformance-notes.tsv}
[ -f "$notes" ] || notes=/dev/null
summary=$(mktemp)
trap 'rm -f "$summary"' EXIT
head -1 "$1" > "$summary"
for f in "$@"; do tail -n +2 "$f"; done | sort -u -t$'\t' -k1,1 >> "$summary"

total=$(($(wc -l < "$summary") - 1))
echo "# Conformance: kiln against Docker's classic builder"
echo
echo "Written by \`make conformance\` ($(date -u +%Y-%m-%d)): \`../shared/conformance/diffbuild\` builds every"
echo "case of the shared corpus (\`kaniko/\`, \`moby/\`, \`buildkit/\`) and of kiln's own"
echo "(\`kiln/\`, in test/conformance/corpus) with Docker's classic builder (the oracle, dockerd"
echo "$(docker version -f '{{.Server.Version}}' 2>/dev/null || echo '?')) and with \`kiln build --isolation=chroot\`, and compares the flattened"
echo "filesystems and image configs (rules in the harness README). The cases that apt-get from"
echo "the Debian mirror inside RUN run when \`CONFORMANCE_FLAGS=\` is given (see the totals)."
echo
echo "## Totals ($total cases run)"
echo
echo "| status | cases | meaning |"
echo "|---|---|---|"
awk -F'\t' 'NR>1 {n[$2]++} END {
  m["PASS"]="kiln and Docker built the same image";
  m["BOTH-FAIL"]="both rejected the Dockerfile (expected failures, or bases lacking tools)";
  m["ORACLE-FAIL"]="Docker failed and kiln built it (BuildKit-only syntax kiln supports)";
  m["DIFF"]="both built, images differ";
  m["CAND-FAIL"]="Docker built it, kiln failed";
  m["ERROR"]="harness error";
  split("PASS BOTH-FAIL ORACLE-FAIL DIFF CAND-FAIL ERROR", order, " ");
  for (i = 1; i <= 6; i++) if (n[order[i]] > 0) printf "| %s | %d | %s |\n", order[i], n[order[i]], m[order[i]];
}' "$summary"
echo
echo "## Every case that did not pass"
echo
echo "| case | status | what differs | why |"
echo "|---|---|---|---|"
awk -F'\t' -v notes="$notes" '
  BEGIN { while ((getline line < notes) > 0) { split(line, f, "\t"); why[f[1]] = f[2] } }
  NR>1 && $2 != "PASS" {
    d = $6; gsub(/\|/, "/", d); gsub(/\033\[[0-9;]*m/, "", d); gsub(/\[[0-9;]*m/, "", d);
    if (length(d) > 160) d = substr(d, 1, 157) "...";
    r = ($1 in why) ? why[$1] : "";
    printf "| %s | %s | %s | %s |\n", $1, $2, d, r
  }' "$summary"
echo
echo "## Notes on passing cases"
echo
echo "What some passing cases pin, and where BuildKit (\`docker buildx build\`) resolves the"
echo "same Dockerfile differently from the classic builder kiln follows."
echo
echo "| case | note |"
echo "|---|---|"
awk -F'\t' -v notes="$notes" '
  BEGIN { while ((getline line < notes) > 0) { split(line, f, "\t"); why[f[1]] = f[2] } }
  NR>1 && $2 == "PASS" && ($1 in why) { printf "| %s | %s |\n", $1, why[$1] }' "$summary"
echo
cat <<'EOF'
## Where kiln follows BuildKit on every door

Some BuildKit behaviour is kiln's on every front door, `/build` (the classic builder's
door) included, because Dockerfiles written today rely on it; the classic corpus never
exercises it, and it still passes whole:

- The automatic platform args (`TARGETPLATFORM`, `TARGETOS`, `TARGETARCH`,
  `TARGETVARIANT`, `BUILDPLATFORM`, `BUILDOS`, `BUILDARCH`, `BUILDVARIANT`) are defined
  in the global scope (platforms.md); dockerd's classic builder defines none of them
  (`FROM --platform=$BUILDPLATFORM` fails there). Like BuildKit, a stage sees one only
  after `ARG NAME`, so a classic Dockerfile that never declares them sees nothing new.
- `BUILDKIT_*` build args are never reported as unused; dockerd warns `One or more
  build-args [BUILDKIT_INLINE_CACHE] were not consumed`.
- `# syntax=`, `# check=` and BuildKit's build-check warnings (dockerfile.md): dockerd
  ignores both directives and runs no checks, so a Dockerfile naming another frontend,
  which dockerd builds as if the line were a comment, is refused by kiln (as BuildKit
  would run that frontend instead), and `# check=error=true` can fail a build dockerd
  passes.
- `RUN --network` and `RUN --security` (dockerfile.md): dockerd's classic builder rejects
  RUN flags.

The cases of `test/conformance/corpus/buildkit-dialect/` are built by buildkitd v0.34
and by kiln and compared with `diffbuild compare` (`platform_args`,
`syntax_check_directives` among them).

EOF
echo "## Passing cases"
echo
awk -F'\t' 'NR>1 && $2 == "PASS" {printf "%s%s", sep, "`" $1 "`"; sep=", "} END {print ""}' "$summary"
echo
echo "## BuildKit's dialect: BuildKit v0.34 as the oracle"
echo
echo "Features Docker's classic builder does not have (heredocs, \`RUN --mount\`, the COPY/ADD"
echo "flags of BuildKit, platform ARGs, build checks) are compared with the reference BuildKit"
echo "instead: \`TestBuildKitDialect\` (in \`make test\`) builds every case of"
echo "test/conformance/corpus/buildkit-dialect with buildkitd v0.34 (buildctl, OCI worker) and"
echo "with kiln build, and diffs the images with \`diffbuild compare\`. Where kiln deliberately"
echo "differs from BuildKit, the case's known-diff.txt says why:"
echo
echo "| case | why kiln differs |"
echo "|---|---|"
# The shared corpus is read-only: its dialect cases' differences live in test/conformance/dialect_test.go.
echo '| buildkit/heredoc_run_basic (shared) | BuildKit sets WorkingDir "/" on a FROM scratch stage; kiln leaves it unset, as the classic builder does |'
echo '| buildkit/run_mount_cache (shared) | BuildKit commits an empty layer for a RUN that changes nothing; kiln drops it, as the classic builder does |'
found=1
for f in "$(dirname "$0")"/../test/conformance/corpus/buildkit-dialect/*/known-diff.txt; do
  [ -e "$f" ] || continue
  found=1
  printf '| %s | %s |\n' "$(basename "$(dirname "$f")")" "$(tr '\n|' ' /' < "$f")"
done
[ "$found" = 1 ] || echo "| (none) | every dialect case builds the same image as BuildKit |"
n=$(ls -d "$(dirname "$0")"/../test/conformance/corpus/buildkit-dialect/*/ | wc -l)
echo
echo "The $n cases of test/conformance/corpus/buildkit-dialect (heredocs in RUN/COPY/ADD,"
echo "\`RUN --mount\` cache/bind/tmpfs, \`COPY --exclude/--parents/--link\`, symbolic \`--chmod\`,"
echo "\`ADD --exclude/--unpack\`, platform ARGs, \`# syntax\`/\`# check\`/\`# escape\`) build the same"
echo "image as BuildKit v0.34.2."
