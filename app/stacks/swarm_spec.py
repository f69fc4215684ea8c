"""Docker Swarm service and network specs of a project's requests, built without an engine (Engine API 1.41).

:func:`service_spec` turns a :class:`~app.stacks.engine.ContainerRequest` (docker-py argument names, as
:func:`~app.stacks.engine_requests.container_request` builds them) into the ``ServiceSpec`` JSON of
``POST /services/create``; :func:`swarm_network_spec` turns a :class:`~app.stacks.engine.NetworkRequest` into
the arguments of ``docker.APIClient.create_network`` for an attachable overlay network;
:func:`swarm_problems` lists, at product validation in swarm mode, every argument a swarm service cannot
express, by service and compose key.

The mapping follows docker/cli ``cli/compose/convert/service.go`` (what ``docker stack deploy`` sends):

============================  =====================================================================
request argument              ServiceSpec (Engine API 1.41)
============================  =====================================================================
entrypoint / command          ContainerSpec.Command / ContainerSpec.Args
environment                   ContainerSpec.Env (``NAME=value``)
user, working_dir, hostname   ContainerSpec.User, .Dir, .Hostname
healthcheck                   ContainerSpec.Healthcheck (durations in ns; ``{"Test": ["NONE"]}`` disables)
stop_signal                   ContainerSpec.StopSignal
stop_grace_seconds            ContainerSpec.StopGracePeriod (ns)
tty, stdin_open               ContainerSpec.TTY, .OpenStdin
init, read_only               ContainerSpec.Init, .ReadOnly
cap_add, cap_drop             ContainerSpec.CapabilityAdd, .CapabilityDrop (API 1.41)
sysctls, ulimits              ContainerSpec.Sysctls (API 1.40), .Ulimits (API 1.41)
extra_hosts ``host:ip``       ContainerSpec.Hosts ``"ip host"`` (docker/cli ``convertExtraHosts`` order)
binds ``vol:/path:ro``        ContainerSpec.Mounts ``{"Type": "volume", "Source", "Target", "ReadOnly"}``
tmpfs ``{path: options}``     ContainerSpec.Mounts ``{"Type": "tmpfs", "Target", "TmpfsOptions":
                              {"SizeBytes", "Mode"}}``
shm_size (bytes)              ContainerSpec.Mounts tmpfs at ``/dev/shm`` of that size, mode 1777 (the
                              engine skips its own /dev/shm when a mount is there)
mem_limit, nano_cpus          TaskTemplate.Resources.Limits.MemoryBytes (bytes), .NanoCPUs (cpus x 10^9)
mem_reservation               TaskTemplate.Resources.Reservations.MemoryBytes (bytes): swarm places the task
                              only on a node with that much memory unreserved; unlike on one engine it is
                              no soft limit of the container (Engine 20.10's executor applies limits only)
restart_policy                TaskTemplate.RestartPolicy: absent (compose ``no``) -> ``none``, ``always``
                              and ``unless-stopped`` -> ``any``, ``on-failure[:N]`` -> ``on-failure``
                              (+ ``MaxAttempts`` N); Delay stays the engine's default (5 s)
log_config                    TaskTemplate.LogDriver ``{"Name", "Options"}``
networks {name: aliases}      TaskTemplate.Networks ``[{"Target": name, "Aliases": [...]}]``
labels                        Spec.Labels and ContainerSpec.Labels (the same mapping)
(the service's address)       EndpointSpec.Mode ``dnsrr`` (:data:`ENDPOINT_MODE`)
ports, port_bindings          ignored: nothing is published in swarm mode (the proxy joins the order's
                              overlay networks and reaches services by name)
============================  =====================================================================

Refused (:class:`~app.errors.StackSpecError` with ``argument``, the docker-py argument name, and ``reason``,
the text after the compose key; checked on Engine 20.10.24, whose manager drops these fields silently):
``domainname`` and ``memswap_limit`` (ContainerSpec has neither), an empty ``entrypoint`` (swarm cannot
clear the image's entrypoint: an empty Command means "the image's"), tmpfs options other than ``size`` (in
bytes; not a percentage, nor 0, which swarm reads as "not set") and ``mode`` (and the flags ``rw``,
``noexec``, ``nosuid``, ``nodev`` the engine applies to every swarm tmpfs anyway), ``shm_size`` together
with another mount at ``/dev/shm``, and a service name swarm does not take (``name``: letters, digits, ``-``
and ``_``, ending with a letter or a digit, at most 63 characters; swarmkit ``validateAnnotations``; at
validation the longest order prefix is assumed, so a compose service name has at most 15 characters).

Named volumes are node-local in swarm (a task gets the volume of the node it runs on, created empty there
if missing): the order is pinned to one node and its volumes are created on that node's engine beforehand
(only the ``local`` driver is used, :class:`~app.stacks.engine.VolumeRequest`), so the mounts carry no
volume options.
"""
from __future__ import annotations

import logging
import posixpath
import re
from typing import Any, Callable, Mapping

from app.errors import StackSpecError
from app.naming import MAX_INSTANCE_LENGTH
from app.stacks.engine import ContainerRequest, NetworkRequest
from app.stacks.project import Project

log = logging.getLogger(__name__)

#: swarmkit's service names (manager/controlapi/common.go ``isValidDNSName``), at most 63 characters.
_SERVICE_NAME = re.compile(r"^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$")
MAX_SERVICE_NAME_LENGTH = 63
#: How a service is addressed on its networks: ``dnsrr``, its name resolves to its task's address. A ``vip``
#: (swarm's default) is a virtual address balanced by the kernel's IPVS, which Live does not need (one task per
#: service) and which needs the ``ip_vs`` module: on a host without it a VIP answers "no route to host" (seen on
#: the CI machines, which have no /proc/net/ip_vs), while dnsrr works.
ENDPOINT_MODE = "dnsrr"
#: The longest ``<deployment>-<instance>_`` before a compose service name: LIVE_DEPLOYMENT has at most 16
#: characters (app/config.py), an instance at most MAX_INSTANCE_LENGTH (app/naming.py).
MAX_NAME_PREFIX_LENGTH = 16 + 1 + MAX_INSTANCE_LENGTH + 1
#: The default /dev/shm mode, for the tmpfs that carries ``shm_size``.
SHM_PATH, SHM_MODE = "/dev/shm", 0o1777
#: Flags the engine puts on every swarm tmpfs mount (daemon/oci_linux.go): naming them changes nothing.
_TMPFS_DEFAULT_FLAGS = frozenset({"rw", "noexec", "nosuid", "nodev"})
_TMPFS_SIZE = re.compile(r"^([0-9]+)([kmgKMG]?)$")
_TMPFS_FACTOR = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}  # tmpfs(5) suffixes
_RESTART_CONDITIONS = {"always": "any", "unless-stopped": "any", "on-failure": "on-failure"}
_HEALTHCHECK_KEYS = ("Test", "Interval", "Timeout", "StartPeriod", "Retries")
_NS_PER_SECOND = 1_000_000_000


def service_spec(request: ContainerRequest, *, replicas: int, constraints: list[str]) -> dict[str, Any]:
    """The ServiceSpec JSON (Engine API 1.41) of ``request``: ``replicas`` tasks (0 or 1), placed by ``constraints``.

    Shape: ``{"Name", "Labels", "TaskTemplate": {"ContainerSpec", "Resources", "RestartPolicy", "Placement":
    {"Constraints"}, "Networks"?, "LogDriver"?}, "Mode": {"Replicated": {"Replicas"}}, "EndpointSpec": {"Mode":
    "dnsrr"}}`` (see the module docstring for each field and its unit). The parts go to
    ``docker.APIClient.create_service(task_template=spec["TaskTemplate"], name=spec["Name"],
    labels=spec["Labels"], mode=spec["Mode"], endpoint_spec=spec["EndpointSpec"])``.

    Raises :class:`StackSpecError` (``argument``: the request argument, ``reason``: what swarm cannot do) for
    the first argument swarm cannot express; :func:`service_refusals` lists them all.
    """
    spec, refusals = _build(request, replicas, constraints)
    if refusals:
        raise refusals[0]
    return spec


def service_refusals(request: ContainerRequest) -> list[StackSpecError]:
    """Every argument of ``request`` that a swarm service cannot express, one :class:`StackSpecError` each."""
    return _build(request, 0, [])[1]


def swarm_network_spec(request: NetworkRequest, *, encrypted: bool) -> dict[str, Any]:
    """The keyword arguments of ``docker.APIClient.create_network`` for the order network ``request`` in swarm mode.

    An overlay network of swarm scope, attachable (so the proxy container can join it), with the request's
    labels and ``internal``; ``options={"encrypted": ""}`` encrypts its VXLAN traffic between nodes (IPsec,
    docker docs network/drivers/overlay.md).
    """
    return {
        "name": request.name, "driver": "overlay", "scope": "swarm", "attachable": True,
        "labels": dict(request.labels), "internal": request.internal, "check_duplicate": True,
        "options": {"encrypted": ""} if encrypted else None,
    }


def swarm_problems(project: Project) -> list[str]:
    """What a swarm service cannot express in ``project``: ``service <name>: <compose key>: Docker Swarm cannot ...``.

    The requests are built as the deployer builds them (:func:`~app.stacks.engine_requests.build_requests`,
    placeholder image ids). When they cannot be built at
    all, those problems are returned (the same as :func:`~app.stacks.engine_requests.dry_run`'s).
    """
    from app.stacks.engine_requests import PLACEHOLDER_IMAGE_ID, build_requests  # engine_requests imports us

    try:
        requests = build_requests(project, {name: PLACEHOLDER_IMAGE_ID for name in project.stack.services})
    except StackSpecError as exc:
        return list(exc.details.get("problems") or [str(exc)])
    return container_problems(requests.containers)


def container_problems(containers: Mapping[str, ContainerRequest]) -> list[str]:
    """:func:`swarm_problems` of built requests (compose service -> its request).

    The service name is checked for its longest form: any deployment and instance prefix may come before it.
    """
    from app.stacks.engine_requests import COMPOSE_KEYS

    problems = []
    for service, request in containers.items():
        longest = MAX_NAME_PREFIX_LENGTH + len(service)
        if longest > MAX_SERVICE_NAME_LENGTH:
            problems.append(f"service {service}: name: Docker Swarm cannot name a service longer than "
                            f"{MAX_SERVICE_NAME_LENGTH} characters, and an order's prefix takes up to "
                            f"{MAX_NAME_PREFIX_LENGTH}: use a service name of at most "
                            f"{MAX_SERVICE_NAME_LENGTH - MAX_NAME_PREFIX_LENGTH} characters")
        for refusal in service_refusals(request):
            argument = refusal.details.get("argument")
            if refusal.details.get("too_long") and longest > MAX_SERVICE_NAME_LENGTH:
                continue  # said above
            key = COMPOSE_KEYS.get(argument, argument)
            problems.append(f"service {service}: {key}: {refusal.details.get('reason')}")
    return problems


# -- the mapping ----------------------------------------------------------------------------------------------

class _Spec:
    """The ServiceSpec being built: the container spec, resources and task template parts."""

    def __init__(self) -> None:
        self.container: dict[str, Any] = {}
        self.mounts: list[dict[str, Any]] = []
        self.limits: dict[str, Any] = {}
        self.reservations: dict[str, Any] = {}
        self.restart: dict[str, Any] = {"Condition": "none"}  # no restart argument: compose "no"
        self.log_driver: dict[str, Any] | None = None


def _refuse(argument: str, reason: str) -> StackSpecError:
    return StackSpecError(f"{argument}: {reason}", argument=argument, reason=reason)


def _build(request: ContainerRequest, replicas: int,
           constraints: list[str]) -> tuple[dict[str, Any], list[StackSpecError]]:
    spec = _Spec()
    refusals: list[StackSpecError] = []
    if not _SERVICE_NAME.fullmatch(request.name or ""):
        refusals.append(_refuse("name", f"Docker Swarm cannot name a service {request.name!r}: letters, digits, "
                                        "'-' and '_' only, ending with a letter or a digit"))
    elif len(request.name) > MAX_SERVICE_NAME_LENGTH:
        refusals.append(StackSpecError(f"name: {request.name!r} is too long", argument="name", too_long=True,
                                       reason=f"Docker Swarm cannot name a service with more than "
                                              f"{MAX_SERVICE_NAME_LENGTH} characters ({request.name!r})"))
    arguments = list(request.create.items()) + list(request.host_config.items())
    for argument, value in arguments:
        handler = _HANDLERS.get(argument)
        try:
            if handler is None:
                raise _refuse(argument, "Docker Swarm cannot express it (Live has no swarm mapping for it)")
            handler(spec, value, request)
        except StackSpecError as exc:
            refusals.append(exc if exc.details.get("argument") else _refuse(argument, str(exc)))
    spec.container["StopGracePeriod"] = int(request.stop_grace_seconds) * _NS_PER_SECOND
    if spec.mounts:
        spec.container["Mounts"] = spec.mounts
    container = {"Image": request.image, "Labels": dict(request.labels), **spec.container}
    resources: dict[str, Any] = {}
    if spec.limits:
        resources["Limits"] = spec.limits
    if spec.reservations:
        resources["Reservations"] = spec.reservations
    task: dict[str, Any] = {
        "ContainerSpec": container, "Resources": resources, "RestartPolicy": spec.restart,
        "Placement": {"Constraints": list(constraints)},
    }
    if request.networks:
        task["Networks"] = [{"Target": network, "Aliases": list(aliases)}
                            for network, aliases in request.networks.items()]
    if spec.log_driver is not None:
        task["LogDriver"] = spec.log_driver
    return {
        "Name": request.name, "Labels": dict(request.labels), "TaskTemplate": task,
        "Mode": {"Replicated": {"Replicas": int(replicas)}}, "EndpointSpec": {"Mode": ENDPOINT_MODE},
    }, refusals


def _set(field: str) -> Callable[[_Spec, Any, ContainerRequest], None]:
    def handler(spec: _Spec, value: Any, request: ContainerRequest) -> None:
        spec.container[field] = value
    return handler


def _ignored(spec: _Spec, value: Any, request: ContainerRequest) -> None:
    """Exposed and published ports: nothing is published in swarm mode; the proxy joins the overlay network."""


def _entrypoint(spec: _Spec, value: Any, request: ContainerRequest) -> None:
    if not value:
        # The swarm executor replaces the entrypoint only with a non-empty Command (daemon/cluster/executor/
        # container/container.go config()): an empty one keeps the image's.
        raise _refuse("entrypoint", "Docker Swarm cannot clear the image's entrypoint (an empty entrypoint): "
                                    "give the command to run as entrypoint instead")
    spec.container["Command"] = list(value)


def _list(field: str) -> Callable[[_Spec, Any, ContainerRequest], None]:
    def handler(spec: _Spec, value: Any, request: ContainerRequest) -> None:
        spec.container[field] = list(value)
    return handler


def _healthcheck(spec: _Spec, value: Any, request: ContainerRequest) -> None:
    """The engine's Healthcheck (ns) is swarm's HealthConfig too (same JSON fields)."""
    spec.container["Healthcheck"] = {key: value[key] for key in _HEALTHCHECK_KEYS if value.get(key) is not None}


def _domainname(spec: _Spec, value: Any, request: ContainerRequest) -> None:
    raise _refuse("domainname", "Docker Swarm cannot set a container's domain name (a service has no "
                                "domainname); put the full name in hostname instead")


def _memswap(spec: _Spec, value: Any, request: ContainerRequest) -> None:
    if value == 0:
        return  # 0 is "not set" for the engine as well
    raise _refuse("memswap_limit", "Docker Swarm cannot limit swap (a service has no memswap_limit): remove it "
                                   "(the engine's default applies: swap up to the memory limit)")


def _binds(spec: _Spec, value: Any, request: ContainerRequest) -> None:
    for bind in value:
        source, target, mode = bind.rsplit(":", 2)
        spec.mounts.append({"Type": "volume", "Source": source, "Target": target, "ReadOnly": mode == "ro"})


def _tmpfs(spec: _Spec, value: Any, request: ContainerRequest) -> None:
    refused = []
    for path, options in value.items():
        tmpfs: dict[str, Any] = {}
        for option in filter(None, (options or "").split(",")):
            name, sep, text = option.partition("=")
            size = _TMPFS_SIZE.fullmatch(text) if name == "size" else None
            if size and int(size.group(1)):
                tmpfs["SizeBytes"] = int(size.group(1)) * _TMPFS_FACTOR[size.group(2).lower()]
            elif name == "mode" and sep and re.fullmatch("[0-7]{1,4}", text):
                tmpfs["Mode"] = int(text, 8)
            elif not sep and option in _TMPFS_DEFAULT_FLAGS:
                continue
            else:
                refused.append(f"{path} with {option!r}")
        mount: dict[str, Any] = {"Type": "tmpfs", "Target": path}
        if tmpfs:
            mount["TmpfsOptions"] = tmpfs
        spec.mounts.append(mount)
    if refused:
        raise _refuse("tmpfs", f"Docker Swarm cannot mount a tmpfs at {', '.join(refused)}: a swarm tmpfs takes "
                               "size (bytes, with k, m or g: not a percentage, not 0) and mode only")


def _shm_size(spec: _Spec, value: Any, request: ContainerRequest) -> None:
    taken = [m for m in _all_mounts(request) if m == SHM_PATH]
    if taken:
        raise _refuse("shm_size", f"Docker Swarm cannot size /dev/shm when something else is mounted there "
                                  f"(tmpfs or volumes at {SHM_PATH})")
    if value:
        spec.mounts.append({"Type": "tmpfs", "Target": SHM_PATH,
                            "TmpfsOptions": {"SizeBytes": int(value), "Mode": SHM_MODE}})


def _all_mounts(request: ContainerRequest) -> list[str]:
    """The normalised targets of the request's volume and tmpfs mounts."""
    targets = [bind.rsplit(":", 2)[1] for bind in request.host_config.get("binds") or []]
    targets += list(request.host_config.get("tmpfs") or {})
    return [posixpath.normpath(target) for target in targets]


def _restart(spec: _Spec, value: Any, request: ContainerRequest) -> None:
    name = value.get("Name") or "no"
    if name == "no":
        return
    condition = _RESTART_CONDITIONS.get(name)
    if condition is None:
        raise _refuse("restart_policy", f"Docker Swarm cannot restart {name!r}")
    spec.restart = {"Condition": condition}
    if condition == "on-failure" and value.get("MaximumRetryCount"):
        spec.restart["MaxAttempts"] = int(value["MaximumRetryCount"])


def _resource(part: str, field: str) -> Callable[[_Spec, Any, ContainerRequest], None]:
    def handler(spec: _Spec, value: Any, request: ContainerRequest) -> None:
        if value:
            getattr(spec, part)[field] = int(value)
    return handler


def _extra_hosts(spec: _Spec, value: Any, request: ContainerRequest) -> None:
    """``host:ip`` (an IPv6 address keeps its colons) -> ``ip host``, as docker/cli convertExtraHosts writes it."""
    hosts = []
    for entry in value:
        host, _, address = entry.partition(":")
        hosts.append(f"{address} {host}")
    spec.container["Hosts"] = hosts


def _ulimits(spec: _Spec, value: Any, request: ContainerRequest) -> None:
    """The engine's Ulimits (``{"Name", "Soft", "Hard"}``, -1 unlimited) are swarm's (API 1.41) too."""
    spec.container["Ulimits"] = [{"Name": u["Name"], "Soft": u["Soft"], "Hard": u["Hard"]} for u in value]


def _sysctls(spec: _Spec, value: Any, request: ContainerRequest) -> None:
    spec.container["Sysctls"] = dict(value)


def _log_config(spec: _Spec, value: Any, request: ContainerRequest) -> None:
    spec.log_driver = {"Name": value.get("Type") or "json-file", "Options": dict(value.get("Config") or {})}


_HANDLERS: dict[str, Callable[[_Spec, Any, ContainerRequest], None]] = {
    # ContainerConfig arguments (request.create)
    "command": _list("Args"), "entrypoint": _entrypoint,
    "environment": _list("Env"), "user": _set("User"), "working_dir": _set("Dir"), "hostname": _set("Hostname"),
    "domainname": _domainname, "healthcheck": _healthcheck, "stop_signal": _set("StopSignal"),
    "ports": _ignored, "tty": _set("TTY"), "stdin_open": _set("OpenStdin"),
    # HostConfig arguments (request.host_config)
    "binds": _binds, "tmpfs": _tmpfs, "restart_policy": _restart, "init": _set("Init"),
    "mem_limit": _resource("limits", "MemoryBytes"), "nano_cpus": _resource("limits", "NanoCPUs"),
    "mem_reservation": _resource("reservations", "MemoryBytes"), "memswap_limit": _memswap,
    "ulimits": _ulimits,
    "shm_size": _shm_size, "read_only": _set("ReadOnly"),
    "cap_add": _list("CapabilityAdd"), "cap_drop": _list("CapabilityDrop"),
    "sysctls": _sysctls,
    "extra_hosts": _extra_hosts, "log_config": _log_config, "port_bindings": _ignored,
}
