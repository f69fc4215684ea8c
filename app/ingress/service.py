"""When and what to write into the proxy: the worker's side of ingress (issue 12).

Routes are part of each order's desired state (:func:`app.ingress.routes.desired_route`, from the
database alone). The worker applies an order's route when one of its operations starts and when it ends
(:meth:`IngressService.apply`), and compares the proxy's whole configuration with the desired one every
``LIVE_INGRESS_RESYNC_SECONDS`` (:meth:`IngressService.resync`), which repairs any difference: a Caddy
restarted with an empty configuration has every route back within that interval.

The proxy being down never fails or blocks an operation: a failed write is logged and leaves the order's
``ingress_pending`` flag set, which the order views and ``/readyz`` show; the next resync applies it.

Only the worker writes (one process, :class:`app.orders.worker.Worker` holds the singleton lock), and
within it one thread at a time (``_lock``): an order's desired route is read from the database *inside*
the lock, so a resync can never write a route older than the one an operation thread just wrote.
"""
from __future__ import annotations

import logging
import threading
import time
from functools import partial
from collections.abc import Iterable
from dataclasses import dataclass

from app.catalog.catalog import Catalog
from app.errors import LiveError
from app.ingress.routes import Route, RouteMode, RouteTable, desired_route
from app.models import Operation, Order
from app.orders.lifecycle import UNFINISHED_STATES, OrderStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngressStatus:
    """For ``/readyz``: ``enabled`` (an ingress is configured), ``reachable`` (the proxy answers and holds the
    bridge's server; None when disabled) and ``pending`` (orders whose route may not be applied)."""

    enabled: bool
    reachable: bool | None = None
    pending: int = 0


class IngressService:
    """Applies the orders' routes to ``table`` (None: no ingress configured; every method does nothing).

    ``base_domain`` tells custom domains (hostnames outside it) from generated hostnames. ``swarm_deployment``
    is ``LIVE_DEPLOYMENT`` in swarm mode, where the proxy dials the orders' services by name
    (:func:`app.ingress.routes.upstream`); None on one engine (published host ports).
    """

    #: Seconds an order whose route write failed waits before :meth:`apply_pending` tries it again.
    retry_seconds = 30.0
    #: Seconds :meth:`apply` waits for a running resync before it leaves the order pending.
    lock_wait_seconds = 2.0

    def __init__(self, table: RouteTable | None, catalog: Catalog, base_domain: str, *,
                 swarm_deployment: str | None = None):
        self.table = table
        self.catalog = catalog
        self.base_domain = base_domain
        self.swarm_deployment = swarm_deployment
        self._lock = threading.Lock()
        self._reachable = True  # False after a call could not reach the proxy, until a resync reaches it
        self._custom_applied: list[str] | None = None  # the custom domains the proxy holds, when known
        self._retry_at: dict[int, float] = {}  # order id -> monotonic time of its next try
        self._dirty: set[int] = set()  # orders an operation changed while a resync held the lock
        self._dirty_lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.table is not None

    def route_of(self, order: Order, unfinished_kinds: Iterable[str]) -> Route | None:
        """The desired route of ``order`` with operations of ``unfinished_kinds`` in progress (None: no route).

        An order whose product revision cannot be read gets the "being prepared" page (logged), never no
        route: one broken order must not take every other order's routes down with the resync.
        """
        route = partial(desired_route, order_id=order.id, instance=order.instance, hostname=order.hostname,
                        status=order.status, unfinished_kinds=list(unfinished_kinds),
                        published_ports=order.published_ports or {}, swarm_deployment=self.swarm_deployment)
        if order.status == OrderStatus.TERMINATED:
            return route(endpoints=())
        try:
            endpoints = self.catalog.definition(order.revision).endpoints
        except Exception:  # noqa: BLE001 (a stored revision that no longer parses: the others still route)
            log.exception("order %s: the endpoints of revision %s cannot be read", order.instance, order.revision_id)
            return Route(order.id, order.instance, order.hostname, RouteMode.PREPARING)
        return route(endpoints=endpoints)

    def is_custom(self, hostname: str) -> bool:
        """Whether ``hostname`` is a customer's own domain (not ``<instance>.<base domain>``)."""
        return not hostname.endswith("." + self.base_domain)

    def apply(self, order_id: int, *, finishing: int | None = None) -> bool:
        """Write order ``order_id``'s route as the database says it is now; True once the proxy holds it.

        ``finishing`` is an operation that succeeded and is about to be recorded so: it counts as finished,
        so the route is right before a caller waiting for the operation hears of its end. Never raises for
        the proxy: a failure is logged and leaves the order pending. While the proxy is known to be
        unreachable (the last call could not reach it), nothing is sent until a resync reaches it again:
        a Caddy that hangs costs one operation one timeout, not every operation one each.
        """
        if self.table is None:
            return True
        # A resync holds the lock for its run (milliseconds, up to its timeout when Caddy hangs): never wait long.
        if not self._lock.acquire(timeout=self.lock_wait_seconds):
            with self._dirty_lock:
                self._dirty.add(order_id)  # the running resync must not mark it applied: its read is older
            self._mark([order_id], pending=True)
            log.warning("route of order %s not applied now: a resync of the proxy is still running", order_id)
            return False
        try:
            order = Order.get_or_none(Order.id == order_id)
            return True if order is None else self._apply(order, finishing)
        finally:
            self._lock.release()

    def apply_pending(self, limit: int = 50) -> int:
        """Write the routes of up to ``limit`` pending orders (new ones, and those a failed write left
        pending), oldest first; an order whose write failed waits :attr:`retry_seconds` before the next try.
        Returns how many were applied. Does nothing while the proxy is unreachable (the resync's job)."""
        if self.table is None or not self._reachable or not self._lock.acquire(blocking=False):
            return 0  # no proxy, known unreachable, or a resync is running (it writes every route)
        try:
            now = time.monotonic()
            waiting = [order_id for order_id, at in self._retry_at.items() if at > now]
            orders = (Order.select().where((Order.ingress_pending == True) & Order.id.not_in(waiting))  # noqa: E712
                      .order_by(Order.id).limit(limit))
            return sum(self._apply(order) for order in orders if self._reachable)
        finally:
            self._lock.release()

    def _apply(self, order: Order, finishing: int | None = None) -> bool:
        if not self._reachable:
            self._mark([order.id], pending=True)
            return False
        kinds = [kind for (kind,) in Operation.select(Operation.kind).where(
            (Operation.order == order) & Operation.state.in_(UNFINISHED_STATES)
            & (Operation.id != (finishing or 0))).order_by(Operation.id).tuples()]
        try:
            route = self.route_of(order, kinds)
            if route is None:
                self.table.remove_route(order.id)
            else:
                self.table.put_route(route)
            if self.is_custom(order.hostname):
                domains = self._custom_domains()
                if domains != self._custom_applied:
                    self.table.set_custom_domains(domains)
                    self._custom_applied = domains
        except LiveError as exc:
            log.warning("route of order %s not applied (tried again later): %s", order.instance, exc)
            if exc.details.get("unreachable"):
                self._reachable = False
            self._custom_applied = None
            self._retry_at[order.id] = time.monotonic() + self.retry_seconds
            self._mark([order.id], pending=True)
            return False
        self._retry_at.pop(order.id, None)
        self._mark([order.id], pending=False)
        return True

    def resync(self):
        """Compare the proxy's configuration with every order's route and repair the differences.

        Returns the table's report (:class:`app.ingress.caddy.SyncReport`), or None when there is no ingress
        or the proxy failed (logged; every order not terminated is then pending).
        """
        if self.table is None:
            return None
        with self._lock:
            orders = list(Order.with_relations().where(Order.status != OrderStatus.TERMINATED).order_by(Order.id))
            busy: dict[int, list[str]] = {}  # order -> kinds of its unfinished operations, oldest first
            for order_id, kind in (Operation.select(Operation.order, Operation.kind)
                                   .where(Operation.state.in_(UNFINISHED_STATES)).order_by(Operation.id).tuples()):
                busy.setdefault(order_id, []).append(kind)
            try:
                routes = []
                for order in orders:
                    route = self.route_of(order, busy.get(order.id, ()))
                    if route is not None:
                        routes.append(route)
                custom = sorted({o.hostname for o in orders if self.is_custom(o.hostname)})
                report = self.table.sync(routes, custom)
            except LiveError as exc:
                log.warning("ingress resync failed (next try in the next interval): %s", exc)
                self._reachable = not exc.details.get("unreachable")
                self._custom_applied = None
                Order.update(ingress_pending=True).where(Order.status != OrderStatus.TERMINATED).execute()
                return None
            self._reachable = True
            self._custom_applied = custom
            self._retry_at.clear()
            if report.changed:
                log.info("ingress resync: %s", report)
            # Orders created after the read above are left to apply_pending, and so are those whose change an
            # operation could not write while this resync held the lock (its read may be older than the change).
            newest = orders[-1].id if orders else 0
            with self._dirty_lock:
                changed, self._dirty = self._dirty, set()
            Order.update(ingress_pending=False).where(
                (Order.ingress_pending == True)  # noqa: E712
                & ((Order.id <= newest) | (Order.status == OrderStatus.TERMINATED)) & Order.id.not_in(changed)).execute()
            return report

    def ports_still_routed(self) -> set[int]:
        """The host ports of terminated orders whose route removal has not reached the proxy yet
        (``ingress_pending``): the proxy may still send their hostname there, so no other order may take
        them until it is gone (the next resync). Empty without an ingress."""
        if self.table is None:
            return set()
        held: set[int] = set()
        for (ports,) in (Order.select(Order.published_ports).where(
                (Order.status == OrderStatus.TERMINATED) & (Order.ingress_pending == True)).tuples()):  # noqa: E712
            held.update((ports or {}).values())
        return held

    def status(self) -> IngressStatus:
        """Whether the proxy answers and holds the bridge's configuration, and how many routes are pending."""
        if self.table is None:
            return IngressStatus(enabled=False)
        pending = Order.select().where(Order.ingress_pending == True).count()  # noqa: E712
        try:
            reachable = self.table.check()
        except LiveError as exc:
            log.warning("the proxy does not answer: %s", exc)
            reachable = False
        return IngressStatus(enabled=True, reachable=reachable, pending=pending)

    def _custom_domains(self) -> list[str]:
        return sorted({hostname for (hostname,) in Order.select(Order.hostname)
                       .where(Order.status != OrderStatus.TERMINATED).tuples() if self.is_custom(hostname)})

    @staticmethod
    def _mark(order_ids: list[int], *, pending: bool) -> None:
        Order.update(ingress_pending=pending).where(Order.id.in_(order_ids)).execute()
