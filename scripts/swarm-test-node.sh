#!/usr/bin/env bash
# A second Docker engine on this machine, in its own network namespace, joined to the local swarm as a
# worker: the two-node test harness of issue 14 (docs/SWARM-TEST-NODE.md explains every step and flag).
#
# Usage: scripts/swarm-test-node.sh up [NAME]     (NAME: [a-z0-9-]{1,10}, default node2)
#        scripts/swarm-test-node.sh down [NAME]
#        scripts/swarm-test-node.sh status [NAME]  (prints the node id when the node is up, else exits 1)
# `up` prints the worker's swarm node id as its last line of stdout; both commands are idempotent.
#
# Objects of node NAME: network namespace live-NAME, veth pair lvh-NAME (host) / lvn-NAME (namespace),
# dockerd with data-root /var/lib/live-NAME, exec-root /run/live-NAME, socket
# unix:///run/live-NAME/docker.sock; its swarm node has the label live.engine=unix:///run/live-NAME/docker.sock.
#
# Environment:
#   DOCKER_HOST             the manager engine (the docker CLI's default when unset); must be a swarm manager
#   LIVE_NODE_SUBNET        first three octets of the veth /24 (default 172.31.250; give each NAME its own)
#   LIVE_NODE_POOL          the node's default-address-pools base (default 172.29.0.0/16, size /24)
#   LIVE_NODE_IMAGES        images copied from the manager into the node (default: the two test images)
#   LIVE_NODE_TIMEOUT       seconds to wait for dockerd and for the node to be Ready (default 60)
# Needs: root, iproute2, nsenter/unshare (util-linux), dockerd and the docker CLI.
# Exit status: 0 on success; 1 with the reason (and the tail of the node's dockerd log) on stderr.
set -euo pipefail

action="${1:-}"
name="${2:-node2}"
case "$action" in up|down|status) ;; *) echo "usage: $0 up|down|status [NAME]" >&2; exit 2 ;; esac
if ! [[ "$name" =~ ^[a-z0-9-]{1,10}$ ]]; then
  echo "NAME must match [a-z0-9-]{1,10} (veth names are limited to 15 characters): $name" >&2
  exit 2
fi

ns="live-$name"
veth_host="lvh-$name"
veth_ns="lvn-$name"
subnet="${LIVE_NODE_SUBNET:-172.31.250}"
host_ip="$subnet.1"
node_ip="$subnet.2"
pool="${LIVE_NODE_POOL:-172.29.0.0/16}"
images="${LIVE_NODE_IMAGES:-live-test/busybox:latest live/archive-helper:2}"
timeout="${LIVE_NODE_TIMEOUT:-60}"
data_root="/var/lib/live-$name"
exec_root="/run/live-$name"
sock="$exec_root/docker.sock"
engine="unix://$sock"
pidfile="$exec_root/dockerd.pid"
config="$exec_root/daemon.json"
log="/run/live-$name.dockerd.log"

started_dockerd=0
die() {
  echo "swarm-test-node: $*" >&2
  if [ "$started_dockerd" = 1 ] && [ -f "$log" ]; then
    echo "--- last lines of $log ---" >&2
    tail -n 20 "$log" >&2
  fi
  exit 1
}

manager() { docker "$@"; }
node() { docker -H "$engine" "$@"; }

dockerd_pid() {
  # The pid of this node's dockerd when it is alive, else nothing.
  local pid
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile" 2>/dev/null || true)"
  if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -F -- "--exec-root $exec_root" >/dev/null; then
    echo "$pid"
  fi
}

node_id() { node info --format '{{.Swarm.NodeID}}' 2>/dev/null || true; }

wait_until() {
  # wait_until SECONDS WHAT COMMAND...: polls COMMAND every 0.2 s until it succeeds.
  local seconds="$1" what="$2" deadline
  shift 2
  deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "$what not reached within ${seconds}s"
    sleep 0.2
  done
}

node_ready() {
  [ "$(manager node inspect --format '{{.Status.State}}' "$1" 2>/dev/null)" = "ready" ]
}

node_image_missing() {
  # Succeeds when IMAGE is absent from the node or differs from the manager's.
  local want have
  want="$(manager image inspect --format '{{.Id}}' "$1")"
  have="$(node image inspect --format '{{.Id}}' "$1" 2>/dev/null || true)"
  [ "$want" != "$have" ]
}

network_up() {
  [ -e "/run/netns/$ns" ] || ip netns add "$ns"
  if ! ip link show "$veth_host" >/dev/null 2>&1; then
    ip link add "$veth_host" type veth peer name "$veth_ns"
    ip link set "$veth_ns" netns "$ns"
  fi
  ip addr replace "$host_ip/24" dev "$veth_host"
  ip link set "$veth_host" up
  nsenter --net="/run/netns/$ns" ip link set lo up
  nsenter --net="/run/netns/$ns" ip addr replace "$node_ip/24" dev "$veth_ns"
  nsenter --net="/run/netns/$ns" ip link set "$veth_ns" up
  nsenter --net="/run/netns/$ns" ip route replace default via "$host_ip"
  # The host reaches the node from the manager's advertised address, not from $host_ip: overlay VXLAN
  # devices learn peers with static fdb entries (dst = the advertised address) and the kernel drops
  # packets whose outer source differs from a static entry ("don't migrate static entries").
  ip route replace "$node_ip/32" dev "$veth_host" src "$1"
}

dockerd_up() {
  [ -n "$(dockerd_pid)" ] && return 0
  rm -f "$pidfile"  # stale (dockerd refuses to start while the pid in it belongs to a live process)
  mkdir -p "$exec_root" "$data_root"
  chmod 700 "$exec_root" "$data_root"
  # Its own config file: without --config-file dockerd reads /etc/docker/daemon.json (the host's pools,
  # and any key set there and as a flag here makes dockerd refuse to start).
  printf '{"default-address-pools": [{"base": "%s", "size": 24}]}\n' "$pool" >"$config"
  local containerd_flags=()
  if [ -S /run/containerd/containerd.sock ]; then
    # A system containerd exists: dockerd would use it; share it under namespaces of its own.
    containerd_flags=(--containerd /run/containerd/containerd.sock
                      --containerd-namespace "$ns" --containerd-plugins-namespace "$ns-plugins")
  fi
  : >"$log"
  started_dockerd=1
  # nsenter --net only (not `ip netns exec`, which remounts /sys and hides the cgroup mounts);
  # unshare --uts gives the node its own hostname (swarm shows NAME, not the manager's hostname).
  # DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1: a worker otherwise tries to pull every task's image first; the
  # namespace has no DNS or egress, so each task would wait for the resolver's timeouts (~20 s).
  DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 setsid nsenter --net="/run/netns/$ns" unshare --uts sh -c 'hostname "$0"; exec "$@"' "live-$name" \
    dockerd \
      --config-file "$config" \
      --data-root "$data_root" \
      --exec-root "$exec_root" \
      --pidfile "$pidfile" \
      -H "$engine" \
      "${containerd_flags[@]}" \
      --iptables=true --ip-masq=true \
      --userland-proxy=false \
      --log-level info \
      </dev/null >>"$log" 2>&1 &
  wait_until "$timeout" "dockerd of $ns answering on $engine" node version
}

join_swarm() {
  local state token manager_addr="$1"
  state="$(node info --format '{{.Swarm.LocalNodeState}}')"
  if [ "$state" = "active" ] && manager node inspect "$(node_id)" >/dev/null 2>&1; then
    return 0
  fi
  if [ "$state" != "inactive" ]; then
    # pending/error/locked, or active in a swarm whose manager removed this node: start over.
    node swarm leave --force >/dev/null 2>&1 || true
  fi
  token="$(manager swarm join-token -q worker)"
  node swarm join --token "$token" --advertise-addr "$node_ip" --listen-addr "$node_ip:2377" \
    --data-path-addr "$node_ip" "$manager_addr:2377" >/dev/null || die "swarm join of $ns failed"
}

up() {
  [ "$(id -u)" = 0 ] || die "must run as root (network namespaces, veth, dockerd)"
  for tool in ip nsenter unshare dockerd docker; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
  done
  local manager_addr
  [ "$(manager info --format '{{.Swarm.ControlAvailable}}')" = "true" ] \
    || die "the manager engine (${DOCKER_HOST:-default docker context}) is not a swarm manager"
  manager_addr="$(manager info --format '{{.Swarm.NodeAddr}}')"
  ip -o -4 addr show | grep -F " inet $manager_addr/" >/dev/null \
    || die "the manager's advertised address $manager_addr is not an address of this machine"
  for image in $images; do
    manager image inspect "$image" >/dev/null 2>&1 \
      || die "image $image is not on the manager (tests/images/build-busybox-image.sh, scripts/build-helper-image.sh)"
  done
  network_up "$manager_addr"
  dockerd_up
  join_swarm "$manager_addr"
  local id
  id="$(node_id)"
  [ -n "$id" ] || die "the node has no swarm node id after join"
  wait_until "$timeout" "node $id Ready on the manager" node_ready "$id"
  manager node update --label-add "live.engine=$engine" "$id" >/dev/null
  local missing=()
  for image in $images; do
    if node_image_missing "$image"; then missing+=("$image"); fi
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    manager save "${missing[@]}" | node load >/dev/null || die "loading ${missing[*]} into $ns failed"
  fi
  echo "$id"
}

unmount_under() {
  # Unmounts every mount point under $1 (deepest first); dockerd leaves nsfs mounts in <exec-root>/netns.
  local prefix="$1" target
  awk -v p="$prefix" '$5 == p || index($5, p "/") == 1 {print $5}' /proc/self/mountinfo | sort -r |
    while read -r target; do
      umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null || true
    done
}

kill_pids() {
  # kill_pids PID...: TERM, then KILL after 15 s for those still alive.
  local pid deadline
  [ "$#" -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  deadline=$((SECONDS + 15))
  for pid in "$@"; do
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  done
}

leftover_pids() {
  # containerd and shims this node's dockerd started (their command line names its exec-root).
  local proc
  for proc in /proc/[0-9]*; do
    if { tr "\0" " " <"$proc/cmdline"; } 2>/dev/null | grep -F -- "$exec_root/containerd" >/dev/null; then
      echo "${proc#/proc/}"
    fi
  done
}

down() {
  local id="" pid
  if [ -n "$(dockerd_pid)" ] && node version >/dev/null 2>&1; then
    id="$(node_id)"
    # Containers first, while dockerd can still stop them (task containers of removed services).
    node ps -aq | xargs -r docker -H "$engine" rm -f >/dev/null 2>&1 || true
  fi
  # The manager forgets the node: by id, or by its live.engine label when the daemon is already gone.
  # (No `swarm leave` on the node: it takes ~7 s, and its state is deleted with the data-root anyway.)
  if [ -z "$id" ]; then
    id="$(manager node ls -q --filter "node.label=live.engine=$engine" 2>/dev/null || true)"
  fi
  for one in $id; do
    manager node rm --force "$one" >/dev/null 2>&1 || true
  done
  # SIGKILL: a clean stop of a dockerd still in swarm mode waits ~9 s for its cluster component; nothing
  # of its state is kept, and what a kill leaves behind (its containerd, mounts, netns) is removed below.
  pid="$(dockerd_pid)"
  if [ -n "$pid" ]; then
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  fi
  # shellcheck disable=SC2046
  kill_pids $(leftover_pids)
  unmount_under "$exec_root"
  unmount_under "$data_root"
  if ip link show "$veth_host" >/dev/null 2>&1; then ip link del "$veth_host"; fi
  if [ -e "/run/netns/$ns" ]; then ip netns del "$ns"; fi
  rm -rf "$data_root" "$exec_root"
}

status() {
  local id
  [ -n "$(dockerd_pid)" ] || exit 1
  id="$(node_id)"
  [ -n "$id" ] || exit 1
  echo "$id"
}

"$action"
