#!/usr/bin/env bash
# Build the images of the podman scenario locally (no registry image is pulled):
#
#   localhost/kvtools-debian:bookworm   a Debian base made with `debootstrap --variant=minbase bookworm`
#                                       from the mirror apt already uses, then `podman import`-ed
#   localhost/kvtools-redis:7.0         Debian's redis-server 7.0 on that base        (source)
#   localhost/kvtools-valkey:8.0        valkey-server 8.0 from bookworm-backports     (target)
#
# Every image that already exists is kept (the base takes about a minute to make, each server image
# about 10 s); KV_REBUILD=1 rebuilds the two server images (fresh packages), KV_REBUILD=all the base too.
# Needs root, podman, debootstrap (tests/setup/install-podman.sh installs them).  CONTAINERS_CONF
# defaults to files/containers.conf beside this script (the settings podman needs on these machines).
# Override the mirror with DEBIAN_MIRROR=http://... .
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
base=localhost/kvtools-debian:bookworm
rebuild=${KV_REBUILD:-}

exists() { podman image exists "$1"; }

mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  local uri=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '/^deb / && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

if [ "$rebuild" = all ] || ! exists "$base"; then
  start=$SECONDS
  rootfs=$(mktemp -d /var/tmp/kvtools-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs" "$rootfs.log"' EXIT
  url=$(mirror)
  echo "build-images: debootstrap --variant=minbase bookworm from $url"
  debootstrap --variant=minbase bookworm "$rootfs" "$url" >"$rootfs.log" 2>&1 || {
    tail -n 30 "$rootfs.log" >&2
    rm -f "$rootfs.log"
    exit 1
  }
  rm -f "$rootfs.log"
  # Keep the image small: no package lists or caches (the server images run apt-get update themselves).
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | podman import --quiet --change 'CMD ["/bin/bash"]' - "$base" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
  echo "build-images: $base made in $((SECONDS - start)) s"
else
  echo "build-images: $base exists, kept"
fi

build() {  # image server suite
  if [ -n "$rebuild" ] || ! exists "$1"; then
    local start=$SECONDS log opts=(--network=host)
    if [ -n "$rebuild" ]; then opts+=(--no-cache); fi  # fresh packages, not cached layers
    log=$(mktemp)
    podman build "${opts[@]}" --build-arg "BASE=$base" --build-arg "SERVER=$2" --build-arg "SUITE=$3" \
      --tag "$1" --file "$here/Containerfile" "$here" >"$log" 2>&1 || {
      tail -n 30 "$log" >&2
      rm -f "$log"
      exit 1
    }
    rm -f "$log"
    echo "build-images: $1 built in $((SECONDS - start)) s"
  else
    echo "build-images: $1 exists, kept"
  fi
}
build localhost/kvtools-redis:7.0 redis bookworm
build localhost/kvtools-valkey:8.0 valkey bookworm-backports
