#!/usr/bin/env bash
# Builds live-base:bookworm, the local stand-in for the official python:3.11-slim-bookworm base of the
# bridge image (Dockerfile, ARG BASE_IMAGE), for machines that cannot pull images (CI, the tests).
# It is made the way tests/images/build-busybox-image.sh makes the test image: a root file system
# built here (debootstrap, minbase Debian 12 with python3, python3-venv and ca-certificates) and loaded
# with `docker import`. Nothing is pulled from a registry; only Debian's package mirror is used.
#
# Usage: scripts/build-base-image.sh [IMAGE]        (default live-base:bookworm)
#   DEBIAN_MIRROR=http://deb.debian.org/debian      the mirror debootstrap installs from
#   LIVE_BASE_REBUILD=1                             build again even when the image is present
# Needs root (debootstrap), debootstrap and a Docker engine. Takes a few minutes; an image already
# present with the same recipe is kept, so CI builds it once per machine.
set -euo pipefail
image="${1:-live-base:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# Bump when the recipe below changes: an image built by an older recipe is rebuilt.
recipe=1
label=org.geocat.live.base-recipe

present="$(docker image inspect --format "{{ index .Config.Labels \"$label\" }}" "$image" 2>/dev/null || true)"
if [ "$present" = "$recipe" ] && [ -z "${LIVE_BASE_REBUILD:-}" ]; then
  echo "$image already present (recipe $recipe)"
  exit 0
fi
if ! command -v debootstrap >/dev/null; then
  echo "debootstrap is not installed (apt-get install debootstrap)" >&2
  exit 1
fi
if [ "$(id -u)" != 0 ]; then
  echo "debootstrap needs root" >&2
  exit 1
fi

root="$(mktemp -d /var/tmp/live-base.XXXXXX)"
cleanup() {
  # debootstrap mounts /proc and /sys in the new root while it works; never delete through a mount.
  for mount in proc sys dev/pts dev; do umount -l "$root/$mount" 2>/dev/null || true; done
  rm -rf --one-file-system "$root"
}
trap cleanup EXIT

started=$SECONDS
echo "debootstrap bookworm (minbase + python3) from $mirror"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$root" "$mirror" >"$root.log" 2>&1 || { tail -n 30 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"

# What an image needs no copy of: package lists and caches (apt-get update brings them back),
# documentation, logs. The official slim images drop the same.
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/debconf/*-old \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/*.log \
  "$root"/var/log/apt/* "$root"/tmp/* "$root"/root/.cache
# debootstrap copies the build machine's name server list; the engine writes its own at run time.
: > "$root/etc/resolv.conf"

tar --numeric-owner -C "$root" -c . | docker import \
  --change "LABEL $label=$recipe" \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  - "$image" >/dev/null
size="$(docker image inspect --format '{{ .Size }}' "$image" | awk '{printf "%.0f MB", $1/1e6}')"
echo "built $image in $((SECONDS - started)) s: $size"
