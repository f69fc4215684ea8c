"""The policy step of the compose pipeline: what a customer's stack may not do, anything that reaches the host.

Runs on the interpolated compose document (so a variable cannot smuggle a
forbidden value past it). Every message names product, service and key.
What a volume entry may mount (:func:`volume_problem`) is decided here only;
the parser (:mod:`app.compose.parse`) refuses the same entries with the same
message.
"""
from __future__ import annotations

from typing import Any

# Capabilities that open the host kernel, devices or other containers.
DANGEROUS_CAPABILITIES = frozenset({
    "ALL", "SYS_ADMIN", "SYS_MODULE", "SYS_RAWIO", "SYS_PTRACE", "SYS_BOOT", "SYS_TIME",
    "NET_ADMIN", "DAC_READ_SEARCH", "MAC_ADMIN", "MAC_OVERRIDE", "BPF", "PERFMON",
    "SYSLOG", "LINUX_IMMUTABLE", "SYS_RESOURCE", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_CONTROL",
})

# Keys that only ever give access to the host or to other customers' containers.
FORBIDDEN_SERVICE_KEYS = {
    "privileged": "privileged containers control the host",
    "devices": "host devices are not available to customer stacks",
    "device_cgroup_rules": "host devices are not available to customer stacks",
    "volumes_from": "containers may not borrow volumes of other containers",
    "cgroup_parent": "the host's cgroup tree is not available",
    "userns_mode": "user namespace settings are host-wide",
    "uts": "the host UTS namespace is not available",
    "container_name": "Live names containers itself (names are per order)",
    "ports": "ports are published by Live from the product's endpoints",
    "env_file": "files from the host are not available; use environment",
    "build": "images are built by the image pipeline, not at deploy time",
    "extends": "extends is not supported; write the service in full",
    "external_links": "links to containers outside the order are not allowed",
    "links": "use the service name on the order's network instead of links",
    "isolation": "isolation is host-specific",
    "runtime": "container runtimes are chosen by the operator",
    "group_add": "host groups are not available",
    "oom_kill_disable": "the OOM killer protects the host",
    "oom_score_adj": "the OOM score protects the host",
    "pid": "the host or another container's PID namespace is not available",
    "ipc": "the host or another container's IPC namespace is not available",
    "network_mode": "each order gets its own networks; network_mode is not allowed",
    "secrets": "file-based secrets read the host; use generated variables",
    "configs": "file-based configs read the host; put content in the image",
    "security_opt": "security profiles may not be relaxed",
    "pids_limit": "set by the operator",
    "credential_spec": "host credentials are not available",
}

DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock", "docker.sock")


def check_policy(slug: str, compose: dict[str, Any]) -> list[str]:
    """Return one message per policy violation in a rendered compose document.

    Never raises, whatever the document's shape: a value of the wrong type is the schema's to
    report, but a single value where a list belongs (``cap_add: SYS_ADMIN``) is still checked as
    a one-item list, so no shape can carry a forbidden value past the policy.
    """
    errors: list[str] = []
    services = _mapping(compose.get("services"))
    declared_volumes = _mapping(compose.get("volumes"))
    for name, service in services.items():
        if not isinstance(service, dict):
            continue

        def deny(key: str, why: str) -> None:
            errors.append(f"product {slug}: service {name}: {key}: {why}")

        for key, why in FORBIDDEN_SERVICE_KEYS.items():
            if key in service:
                deny(key, why)
        for cap in _as_list(service.get("cap_add")):
            if str(cap).upper().removeprefix("CAP_") in DANGEROUS_CAPABILITIES:
                deny("cap_add", f"capability {cap} is not allowed")
        for sysctl in _keys(service.get("sysctls")):
            if not sysctl.startswith("net."):
                deny("sysctls", f"{sysctl} is not namespaced to the container (only net.* is allowed)")
        for index, volume in enumerate(_as_list(service.get("volumes"))):
            problem = volume_problem(volume, declared_volumes)
            if problem:
                deny(f"volumes[{index}]", problem)
        for key in ("tmpfs",):
            for mount in _as_list(service.get(key)):
                if any(sock in str(mount) for sock in DOCKER_SOCKETS):
                    deny(key, "the Docker socket is not available")

    for vol_name, volume in declared_volumes.items():
        if not isinstance(volume, dict):
            continue
        where = f"product {slug}: volumes.{vol_name}"
        if volume.get("external"):
            errors.append(f"{where}: external: volumes outside the order are not allowed")
        if volume.get("driver") not in (None, "local"):
            errors.append(f"{where}: driver: only the local volume driver is allowed")
        if volume.get("driver_opts"):
            errors.append(f"{where}: driver_opts: driver options can bind host paths and are not allowed")
    for net_name, network in _mapping(compose.get("networks")).items():
        if not isinstance(network, dict):
            continue
        where = f"product {slug}: networks.{net_name}"
        if network.get("external"):
            errors.append(f"{where}: external: orders never share networks")
        if network.get("driver") not in (None, "bridge", "overlay"):
            errors.append(f"{where}: driver: {network.get('driver')} networks are not allowed")
        if network.get("driver_opts"):
            errors.append(f"{where}: driver_opts: network driver options are not allowed")
        if network.get("name"):
            errors.append(f"{where}: name: Live names networks itself (names are per order)")
    for vol_name, volume in declared_volumes.items():
        if isinstance(volume, dict) and volume.get("name"):
            errors.append(f"product {slug}: volumes.{vol_name}: name: Live names volumes itself (names are per order)")
    return errors


def volume_problem(volume: Any, declared: dict) -> str | None:
    """Why a service's ``volumes`` entry may not be mounted, or ``None`` when it may.

    ``volume`` is the entry in short (``SOURCE:TARGET[:MODE]``) or long (mapping) syntax; ``declared`` the
    top-level ``volumes``. Only named volumes that are declared may be mounted: never a host path (a bind
    mount, or any source that is a path) nor the Docker socket. An anonymous volume and a tmpfs pass here
    (the parser refuses the former). Never raises.
    """
    if isinstance(volume, str):
        parts = volume.split(":")
        if len(parts) == 1:
            return None  # an anonymous volume at a path inside the container
        source = parts[0]
        volume_type = "volume" if _is_volume_name(source) else "bind"
    elif isinstance(volume, dict):
        volume_type = volume.get("type", "volume")
        source = volume.get("source") or ""
        if volume_type == "tmpfs":
            return None
        if volume_type == "volume" and not source:
            return None
    else:
        return "unreadable volume entry"
    if any(sock in str(source) for sock in DOCKER_SOCKETS):
        return "the Docker socket is not available"
    if volume_type != "volume":
        return f"host path {source!r} cannot be mounted: only named volumes are allowed"
    if not isinstance(source, str) or source not in declared:
        return f"named volume {source!r} is not declared under the top-level volumes"
    return None


def _is_volume_name(source: str) -> bool:
    return bool(source) and source[0] not in "/.~$" and "/" not in source


def _keys(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [str(k) for k in value]
    return [str(item).split("=", 1)[0] for item in _as_list(value)]


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
