#!/usr/bin/env bash
# Builds the ingress proxy's image for LIVE_ORCHESTRATOR=swarm on the Docker engine of the swarm manager
# (DOCKER_HOST, as the docker CLI reads it): the host's Debian Caddy (/usr/bin/caddy, 2.6) with the shared
# libraries it links (ldd), the CA certificates (ACME talks to Let's Encrypt over HTTPS) and a busybox shell,
# loaded with `docker import`: no registry is needed. docs/OPERATIONS.md ("The proxy in a swarm") runs it.
#
# The image runs `caddy run --config /etc/caddy/boot.json --resume`: /etc/caddy/boot.json is the operator's
# boot configuration (mount it; it sets the admin API's listen address and origins), and --resume starts from
# the configuration Caddy saved last (/config/caddy/autosave.json) when there is one. Its data (certificates,
# the internal CA) is under /data (XDG_DATA_HOME), its saved configuration under /config (XDG_CONFIG_HOME):
# mount volumes there.
#
# Usage: scripts/build-caddy-image.sh [IMAGE]            (default: live/caddy:2)
#        scripts/build-caddy-image.sh --force [IMAGE]    (rebuild even when the image is present)
# Needs: docker (CLI), caddy (apt-get install caddy), busybox-static, ca-certificates.
# Exit status: 0 when the image is present afterwards, 1 otherwise (the reason on stderr).
set -euo pipefail
force=0
if [ "${1:-}" = "--force" ]; then
  force=1
  shift
fi
image="${1:-live/caddy:2}"
die() { echo "$*" >&2; exit 1; }
command -v docker >/dev/null 2>&1 || die "the docker CLI is not installed (apt-get install docker.io)"
if [ "$force" = 0 ] && docker image inspect "$image" >/dev/null 2>&1; then
  echo "$image already present"
  exit 0
fi
caddy="${CADDY_BINARY:-/usr/bin/caddy}"
[ -x "$caddy" ] || die "$caddy is missing (apt-get install caddy)"
busybox="$(command -v busybox || echo /bin/busybox)"
[ -x "$busybox" ] || die "busybox-static is not installed (apt-get install busybox-static)"
if ldd "$busybox" >/dev/null 2>&1; then
  die "$busybox is linked dynamically; the image needs busybox-static (apt-get install busybox-static)"
fi
certificates=/etc/ssl/certs/ca-certificates.crt
[ -f "$certificates" ] || die "$certificates is missing (apt-get install ca-certificates)"

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,usr/bin,etc/caddy,etc/ssl/certs,tmp,data,config}
chmod 1777 "$root/tmp"
cp "$caddy" "$root/usr/bin/caddy"
# Debian's caddy is linked dynamically (libc, libzstd): copy every library ldd names, and the loader, to the
# same paths (a static binary has none; ldd then fails and nothing is copied).
if ldd "$caddy" >/dev/null 2>&1; then
  for library in $(ldd "$caddy" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$library")"
    cp -L "$library" "$root$library"
  done
fi
cp "$busybox" "$root/bin/busybox"
for applet in sh ls cat nc; do
  ln -s busybox "$root/bin/$applet"
done
cp "$certificates" "$root/etc/ssl/certs/ca-certificates.crt"
echo 'root:x:0:0:root:/:/bin/sh' > "$root/etc/passwd"
echo 'root:x:0:' > "$root/etc/group"
# Go's resolver: files, then DNS (Docker's 127.0.0.11 on a user-defined network resolves the swarm services).
echo 'hosts: files dns' > "$root/etc/nsswitch.conf"
# Until the operator mounts theirs: the admin API on the loopback only (unreachable from the host).
echo '{"admin": {"listen": "127.0.0.1:2019"}}' > "$root/etc/caddy/boot.json"
version="$("$caddy" version 2>/dev/null | awk '{print $1}' || true)"
tar -C "$root" --owner=0 --group=0 -c . | docker import \
  --change 'ENV PATH=/usr/bin:/bin XDG_DATA_HOME=/data XDG_CONFIG_HOME=/config' \
  --change 'WORKDIR /' \
  --change 'ENTRYPOINT ["/usr/bin/caddy"]' \
  --change 'CMD ["run", "--config", "/etc/caddy/boot.json", "--resume"]' \
  --change 'LABEL org.opencontainers.image.title="GeoCat Live ingress proxy"' \
  --change 'LABEL org.opencontainers.image.description="Debian Caddy on busybox: the proxy the bridge programs in swarm mode"' \
  --change "LABEL org.opencontainers.image.version=\"caddy ${version:-unknown}\"" \
  --change 'LABEL live.image="caddy"' \
  - "$image" >/dev/null
echo "built $image"
