"""The desired route of an order: what its hostname answers, derived from the database alone.

One :class:`Route` per order that is not terminated (a terminated order has none: its hostname is gone
from the proxy). Its :class:`RouteMode` follows the order's life (issue 12, "Routes follow the order's
life"):

- ``proxy``: the order is active and no operation that (re)deploys its stack is in progress; each endpoint's
  path prefix goes to the endpoint's published port on the engine's host (``127.0.0.1:<port>``), or in a swarm
  to the endpoint's service by name on the order's network (``<deployment>-<instance>_<service>:<port>``,
  :func:`upstream`);
- ``preparing``: pending, failed, or being (re)deployed: a 503 page "being prepared" with ``Retry-After``;
- ``suspended``: a 503 page that points to billing.

The adapter (:mod:`app.ingress.caddy`) turns a :class:`Route` into the proxy's configuration; nothing here
knows the proxy.
"""
from __future__ import annotations

import abc
import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from app.compose.model import Endpoint
from app.orders.lifecycle import OperationKind, OrderStatus, transition
from app.stacks.project import container_name

#: Operation kinds that (re)create or restart an order's containers: while one runs, the order is prepared.
DEPLOYING_KINDS = frozenset({OperationKind.CREATE, OperationKind.UNSUSPEND, OperationKind.CHANGE_PLAN,
                             OperationKind.REDEPLOY, OperationKind.RESTART, OperationKind.UPGRADE,
                             OperationKind.RESTORE, OperationKind.MOVE})
# A backup stops nothing (a final backup is part of terminate): the order stays reachable while it runs.
#: Operation kinds that stop an order's containers: while one runs, the order shows the suspended page.
STOPPING_KINDS = frozenset({OperationKind.SUSPEND, OperationKind.TERMINATE})
#: The host the order's published ports are bound to (one engine: the ports are on the bridge's own host).
UPSTREAM_HOST = "127.0.0.1"


class RouteMode(enum.StrEnum):
    """What an order's hostname answers."""

    PROXY = "proxy"
    PREPARING = "preparing"
    SUSPENDED = "suspended"


@dataclass(frozen=True)
class PathRoute:
    """One endpoint: requests whose path is ``path`` or below it go to ``upstream`` (``host:port``), or get
    the "being prepared" page while ``upstream`` is None (one engine: the port is not published yet)."""

    path: str
    upstream: str | None


@dataclass(frozen=True)
class Route:
    """The desired route of order ``order_id``: ``hostname`` answers by ``mode``; ``paths`` (longest first)
    are used in ``proxy`` mode only."""

    order_id: int
    instance: str
    hostname: str
    mode: RouteMode
    paths: tuple[PathRoute, ...] = ()


def route_mode(status: str, unfinished_kinds: Sequence[str]) -> RouteMode | None:
    """The mode of an order in ``status`` whose unfinished operations (pending or running) are of
    ``unfinished_kinds``, oldest first; None for a terminated order (no route).

    The oldest unfinished operation is the one that runs (an order's operations run one at a time, in the
    order they were asked for), and it decides while it lasts:

    - one that (re)deploys the stack (:data:`DEPLOYING_KINDS`): "being prepared", unless it only records a
      change on a suspended order (:attr:`Transition.kept_while`);
    - one that stops it (:data:`STOPPING_KINDS`): the suspended page, before the containers stop, so the
      hostname never answers with a proxy error;
    - otherwise the status: active proxies, suspended shows its page, pending and failed are being prepared.
    """
    if status == OrderStatus.TERMINATED:
        return None
    current = next(iter(unfinished_kinds), None)
    if current in DEPLOYING_KINDS and status not in transition(current).kept_while:
        return RouteMode.PREPARING
    if current in STOPPING_KINDS:
        return RouteMode.SUSPENDED
    if status == OrderStatus.SUSPENDED:
        return RouteMode.SUSPENDED
    if status == OrderStatus.ACTIVE:
        return RouteMode.PROXY
    return RouteMode.PREPARING  # pending, failed


def endpoint_path(path: str) -> str:
    """An endpoint's path prefix as routes match it: ``/geoserver/`` -> ``/geoserver``; ``/`` stays ``/``."""
    return path.rstrip("/") or "/"


def upstream(endpoint: Endpoint, *, instance: str, published_ports: Mapping[str, int],
             swarm_deployment: str | None = None) -> str | None:
    """Where the proxy sends requests for ``endpoint`` of order ``instance``: ``host:port``, or None while it has
    nowhere to send them.

    - One engine (``swarm_deployment`` None): the endpoint's published port on the engine's host,
      ``127.0.0.1:<port>`` from ``published_ports`` (``{"<service>:<port>": host port}``); None while the
      order has no port for it yet.
    - A swarm (``swarm_deployment`` is ``LIVE_DEPLOYMENT``): nothing is published; the proxy's container is on
      the order's network (:attr:`~app.stacks.engine.NetworkRequest.proxied`) and dials the swarm service by
      its name, ``<deployment>-<instance>_<service>:<port>`` (:func:`~app.stacks.project.container_name`),
      which that network's DNS resolves to the service's task (endpoint mode ``dnsrr``).
    """
    if swarm_deployment is not None:
        return f"{container_name(swarm_deployment, instance, endpoint.service)}:{endpoint.port}"
    port = published_ports.get(f"{endpoint.service}:{endpoint.port}")
    return f"{UPSTREAM_HOST}:{port}" if port else None


def desired_route(*, order_id: int, instance: str, hostname: str, status: str, unfinished_kinds: Sequence[str],
                  endpoints: Iterable[Endpoint], published_ports: Mapping[str, int],
                  swarm_deployment: str | None = None) -> Route | None:
    """The route of one order, or None when it has none (terminated).

    ``unfinished_kinds`` are the kinds of the order's unfinished operations, oldest first (:func:`route_mode`);
    ``endpoints`` are the product revision's (``product.yml``), ``published_ports`` the order's
    ``{"<service>:<port>": host port}``, ``swarm_deployment`` the installation whose swarm services the proxy
    dials by name (None on one engine; :func:`upstream`). Paths are ordered longest first, so ``/geoserver/web``
    wins over ``/geoserver`` and ``/`` comes last.
    """
    mode = route_mode(status, unfinished_kinds)
    if mode is None:
        return None
    paths: tuple[PathRoute, ...] = ()
    if mode is RouteMode.PROXY:
        by_path: dict[str, PathRoute] = {}
        for endpoint in endpoints:
            path = endpoint_path(endpoint.path)
            target = upstream(endpoint, instance=instance, published_ports=published_ports,
                              swarm_deployment=swarm_deployment)
            by_path.setdefault(path, PathRoute(path, target))
        paths = tuple(sorted(by_path.values(), key=lambda p: (-len(p.path), p.path)))
    return Route(order_id, instance, hostname, mode, paths)


class RouteTable(abc.ABC):
    """The proxy as the ingress service uses it (:class:`app.ingress.caddy.CaddyIngress`; tests use an
    in-memory one). Every method raises :class:`app.errors.IngressUnavailable` when the proxy cannot be
    reached or refuses."""

    @abc.abstractmethod
    def put_route(self, route: Route) -> None:
        """Make the proxy serve ``route`` (replacing the order's previous one)."""

    @abc.abstractmethod
    def remove_route(self, order_id: int) -> None:
        """Make the proxy forget order ``order_id``'s hostname; nothing to do when it has none."""

    @abc.abstractmethod
    def set_custom_domains(self, domains: Iterable[str]) -> None:
        """The orders' hostnames outside the base domain, for which certificates may be issued."""

    @abc.abstractmethod
    def sync(self, routes: Iterable[Route], custom_domains: Iterable[str]):
        """Make the proxy hold exactly ``routes`` (and the certificate policy for ``custom_domains``)."""

    @abc.abstractmethod
    def check(self) -> bool:
        """Whether the proxy answers (raises when not) and holds the bridge's configuration."""
