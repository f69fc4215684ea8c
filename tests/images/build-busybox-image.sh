#!/usr/bin/env bash
# Builds the small local image the tests deploy: a busybox rootfs with every
# applet linked, loaded with `docker import` (no registry is needed).
# Usage: tests/images/build-busybox-image.sh [IMAGE]   (default live-test/busybox:latest)
set -euo pipefail
image="${1:-live-test/busybox:latest}"
busybox="$(command -v busybox || echo /bin/busybox)"
if [ ! -x "$busybox" ]; then
  echo "busybox-static is not installed (apt-get install busybox-static)" >&2
  exit 1
fi
if docker image inspect "$image" >/dev/null 2>&1; then
  echo "$image already present"
  exit 0
fi
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,var/www,root,data}
cp "$busybox" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list-full); do
  [ "$applet" = "bin/busybox" ] || ln -sf /bin/busybox "$root/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
echo 'nobody:x:65534:65534:nobody:/:/bin/false' >> "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
tar -C "$root" -c . | docker import \
  --change 'CMD ["/bin/sh"]' \
  --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$image" >/dev/null
echo "built $image"
