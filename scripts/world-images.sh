# world-images.sh — the base images of kiln's test world, sourced by scripts/world.sh.
#
# Builds busybox:1.35 and debian:bookworm as OCI layouts under $CACHE, pushes them to
# $REGISTRY_ADDR with skopeo and (optionally) pulls them into the docker engine. A cached
# layout is reused while its key (recipe, package versions, mirror) still matches, so a
# lost registry is refilled in seconds. Expects from world.sh: log, die, in_registry,
# CACHE, REGISTRY_ADDR, EPOCH, CREATED, PATHENV, RECIPE, FORCE, PULL, DOCKER_OK.

# ---------------------------------------------------------------- OCI layouts

sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }
blob_put() { # LAYOUT FILE: moves FILE into LAYOUT's blobs, prints its hex digest
  local d; d=$(sha "$2"); mv -f "$2" "$1/blobs/sha256/$d"; echo "$d"
}

# make_oci_layout LAYOUT TAG LAYER_TAR CONFIG_JSON HISTORY WRAP_IN_INDEX(0|1)
# writes a one-layer image; WRAP_IN_INDEX=1 puts the manifest in an index (one amd64 entry).
make_oci_layout() {
  local layout=$1 tag=$2 tarf=$3 cfg=$4 hist=$5 wrap=$6
  rm -rf "$layout"; mkdir -p "$layout/blobs/sha256"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
  local diffid; diffid=$(sha "$tarf")
  gzip -n -6 -c "$tarf" >"$layout/layer.gz"
  local lsize; lsize=$(size "$layout/layer.gz")
  local ldig; ldig=$(blob_put "$layout" "$layout/layer.gz")
  jq -cn --argjson c "$cfg" --arg created "$CREATED" --arg diffid "sha256:$diffid" --arg hist "$hist" '{
      architecture:"amd64", os:"linux", created:$created,
      config:$c,
      rootfs:{type:"layers", diff_ids:[$diffid]},
      history:[{created:$created, created_by:$hist}]
    }' | tr -d '\n' >"$layout/config.json"
  local csize; csize=$(size "$layout/config.json")
  local cdig; cdig=$(blob_put "$layout" "$layout/config.json")
  jq -cn --arg cd "sha256:$cdig" --argjson cs "$csize" --arg ld "sha256:$ldig" --argjson ls "$lsize" '{
      schemaVersion:2, mediaType:"application/vnd.oci.image.manifest.v1+json",
      config:{mediaType:"application/vnd.oci.image.config.v1+json", digest:$cd, size:$cs},
      layers:[{mediaType:"application/vnd.oci.image.layer.v1.tar+gzip", digest:$ld, size:$ls}]
    }' | tr -d '\n' >"$layout/manifest.json"
  local msize; msize=$(size "$layout/manifest.json")
  local mdig; mdig=$(blob_put "$layout" "$layout/manifest.json")
  local top_mt="application/vnd.oci.image.manifest.v1+json" top_dig=$mdig top_size=$msize
  if [ "$wrap" = 1 ]; then
    jq -cn --arg md "sha256:$mdig" --argjson ms "$msize" '{
        schemaVersion:2, mediaType:"application/vnd.oci.image.index.v1+json",
        manifests:[{mediaType:"application/vnd.oci.image.manifest.v1+json", digest:$md, size:$ms,
                    platform:{architecture:"amd64", os:"linux"}}]
      }' | tr -d '\n' >"$layout/idx.json"
    top_mt="application/vnd.oci.image.index.v1+json"; top_size=$(size "$layout/idx.json")
    top_dig=$(blob_put "$layout" "$layout/idx.json")
  fi
  jq -cn --arg mt "$top_mt" --arg d "sha256:$top_dig" --argjson s "$top_size" --arg tag "$tag" '{
      schemaVersion:2,
      manifests:[{mediaType:$mt, digest:$d, size:$s, annotations:{"org.opencontainers.image.ref.name":$tag}}]
    }' >"$layout/index.json"
  log "layout $layout: sha256:$top_dig (layer diff_id sha256:$diffid)"
}

# tar_rootfs DIR OUT: deterministic tar (sorted names, numeric owners, clamped mtimes, no
# atime/ctime) so the same tree always gives the same diff_id.
tar_rootfs() {
  tar --create --file "$2" --directory "$1" --sort=name --numeric-owner \
    --mtime="@$EPOCH" --clamp-mtime --format=pax \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    --xattrs --xattrs-include='security.capability' .
}

# cache_valid NAME KEY: is $CACHE/NAME a finished layout built from KEY? The key file is
# written last, so an interrupted build never counts as cached.
cache_valid() {
  [ "$FORCE" != 1 ] && [ -f "$CACHE/$1/index.json" ] &&
    [ "$(cat "$CACHE/$1.key" 2>/dev/null || true)" = "$2" ]
}

# push_layout NAME TAG REF [skopeo flags...]: copies a cached layout into the registry.
push_layout() {
  local name=$1 tag=$2 ref=$3; shift 3
  log "pushing $ref from $CACHE/$name"
  skopeo copy -q --dest-tls-verify=false "$@" "oci:$CACHE/$name:$tag" "docker://$ref" >&2
}

pull_into_engine() {
  [ "$PULL" = 1 ] && [ "$DOCKER_OK" = 1 ] || return 0
  log "docker pull $1"
  docker pull -q "$1" >/dev/null || die "docker pull $1 failed"
}

# ---------------------------------------------------------------- busybox:1.35

write_busybox_etc() { # ROOTFS
  cat >"$1/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
EOF
  cat >"$1/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
EOF
  printf 'root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n' >"$1/etc/shadow"
  chmod 0600 "$1/etc/shadow"
  chmod 0644 "$1/etc/passwd" "$1/etc/group"
}

build_busybox_layout() {
  local ver; ver=$(dpkg-query -W -f='${Version}' busybox-static)
  log "building busybox:1.35 from busybox-static $ver"
  local work=$CACHE/work.busybox r
  r=$work/rootfs
  rm -rf --one-file-system "$work"; mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,home,var/spool/mail,var/www,dev,proc,sys}
  install -m 0755 /bin/busybox "$r/bin/busybox"
  # one symlink per applet, where busybox itself says the applet lives; perl (Essential in
  # Debian) makes the ~400 links in one process instead of ~800 forks
  /bin/busybox --list-full | perl -MFile::Path=make_path -nle '
    BEGIN { $root = shift @ARGV }
    next if $_ eq "bin/busybox" || $_ eq "linuxrc";
    my $link = "$root/$_"; (my $dir = $link) =~ s{/[^/]+$}{};
    make_path($dir); unlink $link; symlink("/bin/busybox", $link) or die "symlink $link: $!\n";
  ' "$r"
  chmod 1777 "$r/tmp"; chmod 0700 "$r/root"; chown 65534:65534 "$r/home"
  write_busybox_etc "$r"
  tar_rootfs "$r" "$work/layer.tar"
  make_oci_layout "$work/layout" 1.35 "$work/layer.tar" \
    "$(jq -cn --arg p "$PATHENV" '{Env:[$p], Cmd:["sh"]}')" \
    "make-base-images.sh: busybox-static $ver + applet symlinks" 0
  rm -rf "$CACHE/busybox"; mv "$work/layout" "$CACHE/busybox"; rm -rf --one-file-system "$work"
}

ensure_busybox() {
  local ref=$REGISTRY_ADDR/busybox:1.35 key
  key="recipe=$RECIPE epoch=$EPOCH busybox-static=$(dpkg-query -W -f='${Version}' busybox-static)"
  if [ "$FORCE" != 1 ] && in_registry busybox 1.35; then
    log "$ref: in the registry"
  else
    if cache_valid busybox "$key"; then
      log "$ref: missing from the registry; re-pushing the cached layout"
    else
      build_busybox_layout
      echo "$key" >"$CACHE/busybox.key"
    fi
    push_layout busybox 1.35 "$ref" --format v2s2
  fi
  pull_into_engine "$ref"
}

# ---------------------------------------------------------------- debian:bookworm

# find_mirrors sets MIRROR and SEC_MIRROR to the URIs the host's apt uses (deb822 .sources
# first, then one-line sources.list), so the image can apt-get from the same place.
find_mirrors() {
  MIRROR=${MIRROR:-}; SEC_MIRROR=${SEC_MIRROR:-}
  local f uris
  if [ -z "$MIRROR" ]; then
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] || continue
      uris=$(awk '$1 == "URIs:" {for (i = 2; i <= NF; i++) print $i}' "$f")
      [ -n "$MIRROR" ] || MIRROR=$(grep -E '/debian/?$' <<<"$uris" | head -1 || true)
      [ -n "$SEC_MIRROR" ] || SEC_MIRROR=$(grep -E '/debian-security/?$' <<<"$uris" | head -1 || true)
    done
  fi
  if [ -z "$MIRROR" ]; then
    MIRROR=$(grep -hE '^deb .*/debian/? ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      awk '{for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' | head -1 || true)
  fi
  MIRROR=${MIRROR:-http://deb.debian.org/debian}; MIRROR=${MIRROR%/}
  SEC_MIRROR=${SEC_MIRROR:-${MIRROR}-security}; SEC_MIRROR=${SEC_MIRROR%/}
}

# debian_tweaks ROOTFS: the container adjustments the official image ships, and apt sources
# pointing at the reachable mirror.
debian_tweaks() {
  local r=$1
  cat >"$r/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SEC_MIRROR bookworm-security main
EOF
  rm -f "$r/etc/apt/sources.list.d/"*.sources
  printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"; chmod 0755 "$r/usr/sbin/policy-rc.d"
  cat >"$r/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::Languages "none";' >"$r/etc/apt/apt.conf.d/docker-no-languages"
  echo 'Acquire::GzipIndexes "true";' >"$r/etc/apt/apt.conf.d/docker-gzip-indexes"
  echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$r/etc/apt/apt.conf.d/docker-autoremove-suggests"
  echo 'force-unsafe-io' >"$r/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
  # scrub host and build-time state
  rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/cache/apt/*.bin \
    "$r"/var/log/bootstrap.log "$r"/var/log/dpkg.log "$r"/var/log/apt/* "$r"/var/log/alternatives.log \
    "$r"/var/cache/ldconfig/aux-cache "$r"/var/cache/debconf/*-old "$r"/var/lib/dpkg/*-old \
    "$r"/debootstrap "$r"/root/.bash_history
  find "$r/var/lib/apt/lists" -maxdepth 1 -type f -delete
  : >"$r/etc/machine-id"
  rm -f "$r/etc/hostname" "$r/etc/resolv.conf"; : >"$r/etc/hostname"; : >"$r/etc/resolv.conf"
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$r/etc/hosts"
  # /dev, /proc and /sys are empty directories in a container image
  find "$r/dev" "$r/proc" "$r/sys" -mindepth 1 -delete
}

build_debian_layout() {
  local work=$CACHE/work.debian keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  local r=$work/rootfs m
  rm -rf --one-file-system "$work"; mkdir -p "$work"
  log "debootstrap --variant=minbase bookworm from $MIRROR (a few minutes; log $work/debootstrap.log)"
  if ! debootstrap --variant=minbase --keyring="$keyring" bookworm "$r" "$MIRROR" \
    >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" | sed 's/^/    /' >&2
    die "debootstrap failed (log $work/debootstrap.log)"
  fi
  # debootstrap mounts /proc and /sys inside the target; never tar (or rm -rf) through them
  for m in $(awk -v r="$r" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r); do
    umount -l "$m" || true
  done
  debian_tweaks "$r"
  tar_rootfs "$r" "$work/layer.tar"
  make_oci_layout "$work/layout" bookworm "$work/layer.tar" \
    "$(jq -cn --arg p "$PATHENV" '{Env:[$p], Cmd:["bash"]}')" \
    "make-base-images.sh: debootstrap --variant=minbase bookworm $MIRROR (debian $(cat "$r/etc/debian_version"))" 1
  rm -rf "$CACHE/debian"; mv "$work/layout" "$CACHE/debian"
  rm -rf --one-file-system "$work"
}

ensure_debian() {
  local ref=$REGISTRY_ADDR/debian:bookworm key
  find_mirrors
  key="recipe=$RECIPE epoch=$EPOCH mirror=$MIRROR security=$SEC_MIRROR"
  if [ "$FORCE" != 1 ] && in_registry debian bookworm; then
    log "$ref: in the registry"
  else
    if cache_valid debian "$key"; then
      log "$ref: missing from the registry; re-pushing the cached layout"
    else
      build_debian_layout
      echo "$key" >"$CACHE/debian.key"
    fi
    push_layout debian bookworm "$ref" --multi-arch all
  fi
  pull_into_engine "$ref"
}

