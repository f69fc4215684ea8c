#!/usr/bin/env bash
# Builds the archive helper image on the Docker engine the bridge deploys on (DOCKER_HOST, as the
# docker CLI reads it): the only image terminate, the clean-up of a failed create, backups and restores
# use to read and write volumes, so none depends on a product's images. A busybox rootfs (tar, sh, true;
# rm, find, chown, chmod, touch: a restore empties the volume and sets its root's owner, mode and time),
# loaded with `docker import`: no registry is needed. Version 2 added rm, find, chown, chmod and touch: the
# default tag changed so machines with version 1 build it again.
#
# Usage: scripts/build-helper-image.sh [IMAGE]     (default: $LIVE_HELPER_IMAGE, else live/archive-helper:2)
#        scripts/build-helper-image.sh --force [IMAGE]   (rebuild even when the image is present)
# Needs: docker (CLI) and busybox-static (apt-get install busybox-static).
# Exit status: 0 when the image is present afterwards, 1 otherwise (the reason on stderr).
set -euo pipefail
force=0
if [ "${1:-}" = "--force" ]; then
  force=1
  shift
fi
image="${1:-${LIVE_HELPER_IMAGE:-live/archive-helper:2}}"
if ! command -v docker >/dev/null 2>&1; then
  echo "the docker CLI is not installed (apt-get install docker.io)" >&2
  exit 1
fi
if [ "$force" = 0 ] && docker image inspect "$image" >/dev/null 2>&1; then
  echo "$image already present"
  exit 0
fi
busybox="$(command -v busybox || echo /bin/busybox)"
if [ ! -x "$busybox" ]; then
  echo "busybox-static is not installed (apt-get install busybox-static)" >&2
  exit 1
fi
if ldd "$busybox" >/dev/null 2>&1; then
  echo "$busybox is linked dynamically; the helper needs busybox-static (apt-get install busybox-static)" >&2
  exit 1
fi
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,etc,tmp,volume}
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
for applet in sh tar true ls cat rm find chown chmod touch; do
  ln -s busybox "$root/bin/$applet"
done
echo 'root:x:0:0:root:/:/bin/sh' > "$root/etc/passwd"
echo 'root:x:0:' > "$root/etc/group"
version="$("$root/bin/busybox" 2>/dev/null | head -n 1 | awk '{print $2}' || true)"
tar -C "$root" --owner=0 --group=0 -c . | docker import \
  --change 'CMD ["/bin/true"]' \
  --change 'ENV PATH=/bin' \
  --change 'LABEL org.opencontainers.image.title="GeoCat Live archive helper"' \
  --change 'LABEL org.opencontainers.image.description="Reads and writes order volumes as tar archives (terminate, failed create, backups, restores)"' \
  --change "LABEL org.opencontainers.image.version=\"busybox ${version:-unknown}\"" \
  --change 'LABEL live.image="archive-helper"' \
  - "$image" >/dev/null
echo "built $image"
