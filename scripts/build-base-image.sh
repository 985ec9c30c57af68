#!/usr/bin/env bash
# Build the local scoring base image without any container registry.
#
# Debian bookworm (minbase + python3 + python3-venv) is bootstrapped with debootstrap from the apt
# mirror this machine is already configured with, packed as a rootfs tarball under the cache dir,
# and imported with `podman import` as localhost/shipyard-base:bookworm. Both steps are cached:
# an existing image means nothing to do; an existing tarball (e.g. after `podman system reset`)
# is re-imported without running debootstrap again.
#
# Usage: scripts/build-base-image.sh [IMAGE]   (needs root for debootstrap; env: SHIPYARD_CACHE_DIR,
#        SHIPYARD_APT_MIRROR to override the mirror read from /etc/apt)
set -euo pipefail

IMAGE="${1:-localhost/shipyard-base:bookworm}"
SUITE=bookworm
CACHE_DIR="${SHIPYARD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/shipyard}"
TARBALL="$CACHE_DIR/base-$SUITE-rootfs.tar"
PACKAGES=python3,python3-venv,ca-certificates

need() { command -v "$1" >/dev/null || { echo "$1 not found: install the Debian package $2" >&2; exit 1; }; }
need podman podman

if podman image exists "$IMAGE"; then
  echo "$IMAGE exists"
  exit 0
fi

# The first Debian (not -security) mirror of the apt sources: deb822 .sources files or one-line lists.
find_mirror() {
  local files=() f
  for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$f" ]] && files+=("$f")
  done
  [[ ${#files[@]} -gt 0 ]] || return 0
  { set +o pipefail
    grep -h -E '^[[:space:]]*URIs:' "${files[@]}" 2>/dev/null | sed -E 's/^[[:space:]]*URIs:[[:space:]]*//' | tr ' ' '\n'
    grep -h -E '^[[:space:]]*deb[[:space:]]' "${files[@]}" 2>/dev/null \
      | sed -E 's/\[[^]]*\]//' | awk '{print $2}'
  } | grep -E '^https?://' | grep -v -E 'security' | grep -E '/debian/?$' | head -n1 || true
}

if [[ ! -s "$TARBALL" ]]; then
  need debootstrap debootstrap
  if [[ $(id -u) -ne 0 ]]; then
    echo "debootstrap needs root: run this script as root once (the tarball is cached in $CACHE_DIR)" >&2
    exit 1
  fi
  MIRROR="${SHIPYARD_APT_MIRROR:-$(find_mirror)}"
  if [[ -z "$MIRROR" ]]; then
    echo "no Debian mirror found in /etc/apt/sources.list(.d): set SHIPYARD_APT_MIRROR" >&2
    exit 1
  fi
  mkdir -p "$CACHE_DIR"
  ROOTFS="$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")"
  trap 'rm -rf "$ROOTFS"' EXIT
  echo "debootstrap $SUITE from $MIRROR"
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" >"$CACHE_DIR/debootstrap.log" 2>&1 \
    || { tail -n 30 "$CACHE_DIR/debootstrap.log" >&2; exit 1; }
  # Smaller image: no apt lists, caches, docs or man pages.
  rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/cache/apt/archives/*.deb \
    "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/usr/share/locale/*
  tar --numeric-owner -C "$ROOTFS" -cf "$TARBALL.tmp" .
  mv "$TARBALL.tmp" "$TARBALL"
fi

podman import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  --message "shipyard base: Debian $SUITE minbase with python3" \
  "$TARBALL" "$IMAGE" >/dev/null
echo "$IMAGE imported from $TARBALL"
