"""The typed stack of a compose file: what the deployer consumes.

:func:`app.compose.pipeline.load_stack` yields a :class:`StackSpec` (one
:class:`ServiceSpec` per service, with its :class:`VolumeMount` entries);
:class:`Endpoint` is how a product publishes one port of a service. The values
are engine-ready: durations in nanoseconds, sizes in bytes, commands as lists,
and the engine's own shapes for healthchecks, restart policies and log
configuration (Docker Engine API 1.41).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from app.errors import StackSpecError


@dataclass(frozen=True)
class Endpoint:
    """One published port: ``https://<hostname><path>`` is routed to ``port`` of ``service`` (product.yml ``endpoints``)."""

    application: str
    service: str
    port: int
    path: str = "/"


@dataclass(frozen=True)
class VolumeMount:
    """A named volume of the compose file mounted at ``target`` (an absolute path in the container)."""

    volume: str  # the compose volume name (not yet prefixed with the order's)
    target: str
    read_only: bool = False


@dataclass
class ServiceSpec:
    """One service as the engine takes it: the compose key's value in the engine's unit and shape.

    Durations are nanoseconds (``healthcheck``), sizes bytes (``mem_limit``, ``shm_size``), ``nano_cpus``
    is ``cpus`` x 10^9, ``restart``, ``healthcheck`` and ``log_config`` are the engine's RestartPolicy,
    Healthcheck and LogConfig, ``networks`` maps each network to the service's extra aliases.
    """

    name: str
    image: str
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    environment: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    volumes: list[VolumeMount] = field(default_factory=list)
    tmpfs: dict[str, str] = field(default_factory=dict)
    depends_on: dict[str, str] = field(default_factory=dict)
    healthcheck: dict[str, Any] | None = None
    restart: dict[str, Any] | None = None
    init: bool | None = None
    stop_grace_seconds: int = 10
    stop_signal: str | None = None
    user: str | None = None
    working_dir: str | None = None
    hostname: str | None = None
    domainname: str | None = None
    mem_limit: int | None = None
    mem_reservation: int | None = None
    memswap_limit: int | None = None
    nano_cpus: int | None = None
    networks: dict[str, list[str]] = field(default_factory=dict)
    expose: list[str] = field(default_factory=list)
    ulimits: list[dict[str, Any]] = field(default_factory=list)
    shm_size: int | None = None
    read_only: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    extra_hosts: list[str] = field(default_factory=list)
    log_config: dict[str, Any] | None = None
    tty: bool = False
    stdin_open: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StackSpec:
    """Every service of a compose file, its named volumes and its networks (name -> internal and labels)."""

    services: dict[str, ServiceSpec]
    volumes: list[str]
    networks: dict[str, dict[str, Any]]
    volume_labels: dict[str, dict[str, str]] = field(default_factory=dict)  # the labels each volume declares

    def start_order(self) -> list[str]:
        """Services sorted so that every dependency comes before its dependents."""
        return topological_order({name: list(svc.depends_on) for name, svc in self.services.items()})


#: The ``depends_on`` condition that makes the service waited for a one-shot job (:func:`one_shot_services`).
COMPLETED_SUCCESSFULLY = "service_completed_successfully"


def one_shot_services(stack: StackSpec) -> set[str]:
    """The one-shot services (jobs: migrations, seeds) of ``stack``: those another service of it waits for with
    ``condition: service_completed_successfully``, and only those (a restart policy says nothing of it: a server
    restarted ``on-failure`` that exits 0 when stopped, as PostgreSQL does, is no finished job). The one rule of it:
    the drift checker's (:func:`app.orders.drift.expected_services`) and the deployer's (a finished job is not run
    again, :func:`app.stacks.plan.plan_convergence`)."""
    return {dependency for service in stack.services.values()
            for dependency, condition in service.depends_on.items() if condition == COMPLETED_SUCCESSFULLY}


def topological_order(graph: dict[str, list[str]]) -> list[str]:
    """The nodes of ``graph`` (node -> the nodes it depends on) with every dependency before its dependents.

    Ties are broken by name, so the order is stable. Raises :class:`StackSpecError`
    ``depends_on: cycle a -> b -> a`` when the graph has a cycle.
    """
    order: list[str] = []
    done: set[str] = set()

    def visit(node: str, trail: tuple[str, ...]) -> None:
        if node in done:
            return
        if node in trail:
            raise StackSpecError("depends_on: cycle " + " -> ".join(trail[trail.index(node):] + (node,)))
        for dep in sorted(graph.get(node, [])):
            visit(dep, trail + (node,))
        done.add(node)
        order.append(node)

    for node in sorted(graph):
        visit(node, ())
    return order


def dependency_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A cycle of ``graph`` as a closed path (``["a", "b", "a"]``), or ``None`` when there is none."""
    try:
        topological_order(graph)
    except StackSpecError as exc:
        return str(exc).removeprefix("depends_on: cycle ").split(" -> ")
    return None
