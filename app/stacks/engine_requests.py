"""The engine requests of one project, built without an engine.

:func:`build_requests` turns a :class:`~app.stacks.project.Project`
(and the image id of each service) into every request the deployer sends:
one :class:`ContainerRequest` per service with its config hash, then the
:class:`NetworkRequest` and :class:`VolumeRequest` of the order. The deployer
uses it for every deploy; the catalog uses it through :func:`dry_run`, which
also turns each request into the engine's JSON
(:func:`~app.stacks.docker_engine.container_payload` and friends), when it validates
a product. So a product passes validation only if the deploy path can build
every request it will send.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Mapping

from app.compose.model import ServiceSpec
from app.errors import StackSpecError
from app.stacks.docker_engine import ENGINE_API_VERSION, container_payload, network_payload, volume_payload
from app.stacks.engine import ContainerRequest, NetworkRequest, VolumeRequest
from app.stacks.project import NETWORK_LABEL, VOLUME_LABEL, Project

log = logging.getLogger(__name__)

#: The image id validation uses: no engine is asked which image a tag names.
PLACEHOLDER_IMAGE_ID = "sha256:" + "0" * 64

#: The compose key behind each argument of a container request, for messages about refused arguments.
COMPOSE_KEYS = {
    "command": "command", "entrypoint": "entrypoint", "environment": "environment", "user": "user",
    "working_dir": "working_dir", "hostname": "hostname", "domainname": "domainname", "healthcheck": "healthcheck",
    "stop_signal": "stop_signal", "ports": "expose", "tty": "tty", "stdin_open": "stdin_open", "binds": "volumes",
    "tmpfs": "tmpfs", "restart_policy": "restart", "init": "init", "mem_limit": "mem_limit",
    "mem_reservation": "mem_reservation", "memswap_limit": "memswap_limit", "nano_cpus": "cpus",
    "ulimits": "ulimits", "shm_size": "shm_size", "read_only": "read_only", "cap_add": "cap_add",
    "cap_drop": "cap_drop", "sysctls": "sysctls", "extra_hosts": "extra_hosts", "log_config": "logging",
    "port_bindings": "endpoints", "labels": "labels", "networks": "networks",
}


@dataclass
class StackRequests:
    """Every request of one project."""

    containers: dict[str, ContainerRequest]  # service -> its container
    config_hashes: dict[str, str]  # service -> the config hash of its container (CONFIG_HASH_LABEL)
    networks: list[NetworkRequest]
    volumes: list[VolumeRequest]


def build_requests(project: Project, image_ids: Mapping[str, str]) -> StackRequests:
    """All requests of ``project``; ``image_ids`` maps each service to the id of its image (in the config hash).

    Raises :class:`StackSpecError` listing every service whose request cannot be built (``problems`` detail:
    one ``service <name>: <key>: <what>`` message each). Pure: no engine is called.
    """
    containers: dict[str, ContainerRequest] = {}
    hashes: dict[str, str] = {}
    problems: list[str] = []
    for name, service in project.stack.services.items():
        try:
            containers[name], hashes[name] = container_request(project, service, image_ids[name])
        except StackSpecError as exc:
            problems.append(f"service {name}: {exc}")
        except Exception as exc:  # a builder bug must fail this service by name, never pass unnoticed
            log.exception("cannot build the container request of service %s", name)
            problems.append(f"service {name}: the container request cannot be built ({type(exc).__name__}: {exc})")
    if problems:
        raise StackSpecError("; ".join(problems), problems=problems)
    return StackRequests(containers, hashes, network_requests(project), volume_requests(project))


def dry_run(project: Project, api_version: str = ENGINE_API_VERSION, *, orchestrator: str = "docker") -> list[str]:
    """Build every request of ``project`` and its engine JSON without an engine; return the problems.

    Each problem names the service and the compose key (``service web: expose: ...``) or the network or
    volume (``networks.backend: ...``). Image ids are :data:`PLACEHOLDER_IMAGE_ID`. ``api_version`` is the
    Docker Engine API version the payloads are built for (docker-py checks some arguments against it).
    ``orchestrator`` is ``LIVE_ORCHESTRATOR``: with ``"swarm"`` the problems also list what a swarm service
    cannot express (:func:`app.stacks.swarm_spec.container_problems`: ``service web: domainname: Docker Swarm
    cannot ...``). Raises :class:`ValueError` for another orchestrator.
    """
    if orchestrator not in ("docker", "swarm"):
        raise ValueError(f"unknown orchestrator {orchestrator!r} (docker or swarm)")
    try:
        requests = build_requests(project, {name: PLACEHOLDER_IMAGE_ID for name in project.stack.services})
    except StackSpecError as exc:
        return list(exc.details.get("problems") or [str(exc)])
    problems = []
    checks = [(f"service {name}", container_payload, request) for name, request in requests.containers.items()]
    checks += [(f"networks.{r.labels.get(NETWORK_LABEL, r.name)}", network_payload, r) for r in requests.networks]
    checks += [(f"volumes.{r.labels.get(VOLUME_LABEL, r.name)}", volume_payload, r) for r in requests.volumes]
    for where, payload, request in checks:
        try:
            payload(request, api_version)
        except StackSpecError as exc:
            argument = exc.details.get("argument")
            key = COMPOSE_KEYS.get(argument, argument) or "request"
            problems.append(f"{where}: {key}: the engine request is invalid: {exc.details.get('reason') or exc}")
        except Exception as exc:  # last line of defence: a crash here is a refusal, never a pass
            log.exception("cannot build the engine payload of %s", where)
            problems.append(f"{where}: the engine request cannot be built ({type(exc).__name__}: {exc})")
    if orchestrator == "swarm":
        from app.stacks.swarm_spec import container_problems  # swarm_spec builds on this module

        try:
            problems += container_problems(requests.containers)
        except Exception as exc:  # as above: a crash is a refusal
            log.exception("cannot build the swarm service specs")
            problems.append(f"the swarm service specs cannot be built ({type(exc).__name__}: {exc})")
    return problems


def container_request(project: Project, service: ServiceSpec, image_id: str) -> tuple[ContainerRequest, str]:
    """The create request of one service and its config hash (``live.config-hash``).

    The hash covers the image id and everything the request sets except Live's own labels, so a service
    is recreated exactly when what it would be created with changes. Raises :class:`StackSpecError` for
    what the engine would refuse between settings (memory rules, environment names).
    """
    _check_environment(service.environment)
    _check_memory(service)
    endpoint_ports = sorted({e.port for e in project.endpoints if e.service == service.name})
    exposed = sorted({f"{p}/tcp" for p in endpoint_ports} | {p if "/" in p else f"{p}/tcp" for p in service.expose})
    labels = dict(service.labels)
    create = {
        "command": service.command,
        "entrypoint": service.entrypoint,
        "environment": [f"{k}={v}" for k, v in sorted(service.environment.items())],
        "user": service.user,
        "working_dir": service.working_dir,
        "hostname": service.hostname,
        "domainname": service.domainname,
        "healthcheck": service.healthcheck,
        "stop_signal": service.stop_signal,
        "ports": [int(p.split("/")[0]) if p.endswith("/tcp") else (int(p.split("/")[0]), p.split("/")[1])
                  for p in exposed] or None,
        "tty": service.tty,
        "stdin_open": service.stdin_open,
    }
    host_config = {
        # A list, not a mapping by volume: one volume may be mounted at several paths (data:/data and
        # data:/backup:ro). The strings are exactly what docker-py makes of its mapping form.
        "binds": [f"{project.volume_name(m.volume)}:{m.target}:{'ro' if m.read_only else 'rw'}"
                  for m in service.volumes] or None,
        "tmpfs": service.tmpfs or None,
        "restart_policy": service.restart,
        "init": service.init,
        "mem_limit": service.mem_limit,
        "mem_reservation": service.mem_reservation,
        "memswap_limit": service.memswap_limit,
        "nano_cpus": service.nano_cpus,
        "ulimits": service.ulimits or None,
        "shm_size": service.shm_size,
        "read_only": service.read_only or None,
        "cap_add": service.cap_add or None,
        "cap_drop": service.cap_drop or None,
        "sysctls": service.sysctls or None,
        "extra_hosts": service.extra_hosts or None,
        "log_config": service.log_config,
    }
    networks = {project.network_name(name): sorted(set(aliases) | {service.name})
                for name, aliases in service.networks.items()}
    host_config["port_bindings"] = {
        port: ("127.0.0.1", project.pinned_ports.get(f"{service.name}:{port}")) for port in endpoint_ports
    } or None
    hashed = {
        "image": image_id, "labels": labels, "create": create, "host_config": _hashed_host_config(host_config),
        "networks": networks, "stop_grace": service.stop_grace_seconds,
    }
    if project.node is not None:  # only in swarm mode, so the hashes of containers on one engine never change
        hashed["node"] = project.node
    config_hash = _hash(hashed)
    labels.update(project.container_labels(service.name, config_hash))
    request = ContainerRequest(
        name=project.container_name(service.name),
        image=service.image,
        labels=labels,
        create={k: v for k, v in create.items() if v is not None},
        host_config={k: v for k, v in host_config.items() if v is not None},
        networks=networks,
        stop_grace_seconds=service.stop_grace_seconds,
        node=project.node,
    )
    return request, config_hash


def network_requests(project: Project) -> list[NetworkRequest]:
    """The order's networks: the product's labels, then Live's (which win), and ``live.network``.

    A network is ``proxied`` when it is the first network (in the compose file's order) of a service that has
    an endpoint (``product.yml``): the one network over which a proxy that dials service names reaches that
    service. The proxy joins no other network of the order (a database's own network stays closed to it).
    """
    proxied = set()
    for service in {endpoint.service for endpoint in project.endpoints}:
        spec = project.stack.services.get(service)
        if spec is not None and spec.networks:
            proxied.add(next(iter(spec.networks)))
    return [
        NetworkRequest(project.network_name(name),
                       labels={**options.get("labels", {}), **project.network_labels(name)},
                       internal=options.get("internal", False), proxied=name in proxied)
        for name, options in project.stack.networks.items()
    ]


def volume_requests(project: Project) -> list[VolumeRequest]:
    """The order's named volumes: the product's labels, then Live's (which win), and ``live.volume``."""
    return [
        VolumeRequest(project.volume_name(name), labels={**project.stack.volume_labels.get(name, {}),
                                                         **project.volume_labels(name)},
                      node=project.node)
        for name in project.stack.volumes
    ]


def _check_environment(environment: dict[str, str]) -> None:
    """Names the engine accepts (not empty, no '='; "invalid environment variable") and no NUL (runc refuses)."""
    for name, value in environment.items():
        if not name or "=" in name or "\x00" in name:
            raise StackSpecError(f"environment: {name!r} is not a variable name")
        if "\x00" in value:
            raise StackSpecError(f"environment: {name}: the value contains a NUL character")


def _check_memory(service: ServiceSpec) -> None:
    """The engine's rules between memory settings (Docker Engine daemon/daemon_unix.go)."""
    limit = service.mem_limit or 0
    if service.mem_reservation and limit and service.mem_reservation > limit:
        raise StackSpecError(f"mem_reservation: {service.mem_reservation} bytes is above the memory limit "
                             f"({limit} bytes)")
    swap = service.memswap_limit
    if swap is None or swap in (0, -1):
        return
    if swap < -1:
        raise StackSpecError(f"memswap_limit: {swap} is not a size (or -1 for unlimited swap)")
    if not limit:
        raise StackSpecError("memswap_limit: needs mem_limit (the engine refuses a swap limit without a memory limit)")
    if swap < limit:
        raise StackSpecError(f"memswap_limit: {swap} bytes is below mem_limit ({limit} bytes); it counts memory "
                             "plus swap")


def _hashed_host_config(host_config: dict[str, Any]) -> dict[str, Any]:
    """``host_config`` as the config hash has always seen it: binds as a mapping by volume when no volume is
    mounted twice (so containers deployed before binds became a list are not recreated), else the list."""
    binds = host_config.get("binds")
    if not binds:
        return host_config
    parsed = [bind.rsplit(":", 2) for bind in binds]
    if len({volume for volume, _, _ in parsed}) < len(parsed):
        return host_config
    return {**host_config, "binds": {volume: {"bind": path, "mode": mode} for volume, path, mode in parsed}}


def _hash(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()
