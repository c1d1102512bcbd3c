#!/usr/bin/env bash
# govulncheck.sh — scan kiln for known vulnerabilities with govulncheck, offline.
#
# vuln.go.dev is not reachable from CI; the Go module proxy is. The Go vulnerability
# database's OSV entries are published as the golang.org/x/vulndb module (data/osv/*.json),
# and that module's cmd/indexdb writes them in the layout govulncheck's `-db file://` reads
# (index/db.json, index/modules.json, ID/GO-*.json). So: download the module, index it,
# and point govulncheck at the result. The database is as fresh as the newest vulndb
# pseudo-version on the proxy (the vulndb repository commits every few days).
#
# Usage: scripts/govulncheck.sh [govulncheck args]   (default: ./...)
#   Exit status: 0 when every vulnerability the code reaches is listed in
#   scripts/govulncheck-accepted.txt (ID and why it does not affect kiln), 3 otherwise.
#   With arguments, govulncheck's own exit status.
#
# The database is pinned (VULNDB_VERSION) so that CI's verdict changes only with kiln's
# code; KILN_VULNDB_VERSION=latest checks against the newest one (do that, then move the
# pin, when bumping dependencies or the Go toolchain: the Makefile's GOTOOLCHAIN).
#
# Knobs (environment):
#   KILN_TOOLS_CACHE=/var/cache/kiln-tools   cache root: govulncheck-<version>/ (the tools),
#                                            vulndb-<version>/ (the indexed database)
#   KILN_VULNDB_VERSION=<pseudo-version>|latest   database to use; default: VULNDB_VERSION
#
# Network use: the Go module proxy only.
set -euo pipefail
cd "$(dirname "$0")/.."

VULN_VERSION=v1.10.0 # golang.org/x/vuln: govulncheck
VULNDB_VERSION=v0.0.0-20261105234957-e22db6528018 # golang.org/x/vulndb: the database
# cmd/indexdb is built at the database's own version (it is in the same module).
CACHE=${KILN_TOOLS_CACHE:-/var/cache/kiln-tools}

log() { printf '[govulncheck %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

mkdir -p "$CACHE"
vulndb=${KILN_VULNDB_VERSION:-$VULNDB_VERSION}
if [ "$vulndb" = latest ]; then
  vulndb=$(cd "$CACHE" && GOFLAGS=-mod=mod GO111MODULE=on go list -m -f '{{.Version}}' golang.org/x/vulndb@latest)
fi
[ -n "$vulndb" ] || die "could not resolve golang.org/x/vulndb@latest on the module proxy"

tools=$CACHE/govulncheck-$VULN_VERSION
if [ ! -x "$tools/govulncheck" ]; then
  log "building govulncheck $VULN_VERSION"
  tmp=$(mktemp -d "$CACHE/.govulncheck.XXXXXX")
  GOBIN=$tmp go install -trimpath "golang.org/x/vuln/cmd/govulncheck@$VULN_VERSION" >&2 || { rm -rf "$tmp"; die "building govulncheck failed"; }
  chmod 755 "$tmp"
  rm -rf "$tools" && mv "$tmp" "$tools"
fi

db=$CACHE/vulndb-$vulndb
if [ ! -f "$db/.stamp" ]; then
  log "indexing the Go vulnerability database golang.org/x/vulndb@$vulndb (first time: minutes)"
  tmp=$(mktemp -d "$CACHE/.vulndb.XXXXXX")
  src=$(cd "$tmp" && GOFLAGS=-mod=mod GO111MODULE=on go mod download -json "golang.org/x/vulndb@$vulndb" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$src/data/osv" ] || { rm -rf "$tmp"; die "golang.org/x/vulndb@$vulndb has no data/osv"; }
  GOBIN=$tmp/bin go install -trimpath "golang.org/x/vulndb/cmd/indexdb@$vulndb" >&2 || { rm -rf "$tmp"; die "building indexdb failed"; }
  "$tmp/bin/indexdb" -vulns "$src/data/osv" -out "$tmp/db" >&2 || { rm -rf "$tmp"; die "indexdb failed"; }
  echo "$vulndb" >"$tmp/db/.stamp"
  chmod -R a+rX "$tmp"
  rm -rf "$db" && mv "$tmp/db" "$db" && rm -rf "$tmp"
  # older databases are superseded
  find "$CACHE" -maxdepth 1 -name 'vulndb-*' ! -name "vulndb-$vulndb" -exec rm -rf {} +
fi

log "govulncheck $VULN_VERSION, database golang.org/x/vulndb@$vulndb ($(go version | cut -d' ' -f3))"
[ $# -eq 0 ] || exec "$tools/govulncheck" -db "file://$db" "$@"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
rc=0
"$tools/govulncheck" -db "file://$db" ./... | tee "$out" || rc=$?
[ "$rc" = 0 ] && exit 0
[ "$rc" = 3 ] || exit "$rc"
accepted=scripts/govulncheck-accepted.txt
new=0
for id in $(sed -n 's/^Vulnerability #[0-9]*: \(GO-[0-9-]*\).*/\1/p' "$out"); do
  if grep -q "^$id " "$accepted"; then
    log "$id: accepted ($(grep "^$id " "$accepted" | cut -d' ' -f2- | cut -c1-100)...)"
  else
    log "$id: not in $accepted"
    new=1
  fi
done
[ "$new" = 0 ] && log "every finding is accepted in $accepted" && exit 0
exit 3
