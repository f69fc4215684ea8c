"""The reads of the HTTP views and the CLI: orders, operations, events, products, customers, usage, health.

One module answers every question a view or a command asks; views and commands never query the
database or the container engine themselves (``tests/unit/test_view_boundaries.py`` holds them to
it), and changes go through :class:`~app.orders.service.OrderService` or the catalog. Answers are the
presenters' dicts (:mod:`app.presenters`) where the caller shows them, or rows where the caller
passes them on to a use case. What a caller may see (generated passwords, private error detail,
local URLs) is the caller's decision, passed as flags; nothing here infers it.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any

import peewee

from app.backups.policy import ResolvedPolicy
from app.backups.service import FINAL_KINDS, BackupKind, BackupService, BackupState
from app.backups.store import Manifest
from app.catalog.catalog import Catalog
from app.catalog.product import ProductDefinition
from app.config import Settings
from app.db import MAX_ID, PreparedSelect, pending_migrations
from app.errors import LiveError, NamingError, NotFound, OrderNotFound
from app.ingress.service import IngressService, IngressStatus
from app.models import Backup, Customer, Event, Operation, Order, OrderDrift, OrderUsage, Product, ProductRevision, utcnow
from app.naming import normalize_hostname
from app.orders.drift import DriftState
from app.orders.heartbeat import WorkerStatus, worker_status
from app.orders.lifecycle import UNFINISHED_STATES, OperationKind, OperationState, OrderStatus
from app.orders.operations import OperationRunner
from app.orders.usage import usage_answers
from app.presenters import (
    account_view,
    backup_summary,
    backup_view,
    customer_view,
    OrderExtras,
    endpoint_views,
    event_view,
    extras_of,
    failing_orders,
    operation_view,
    order_view,
    product_view,
    revision_view,
    timestamp,
    with_extras,
)
from app.stacks.engine import RUNNING_STATES, Engine
from app.stacks.mirror import MirrorFreshness, MirrorReading, freshness, readings

log = logging.getLogger(__name__)

#: The service states of GeoCat Live 1.0 (``GET /geocat-live/api/1.0/order/<instance>``).
RUNNING, WAITING, ERROR = "SERVICE_RUNNING", "SERVICE_WAITING", "SERVICE_ERROR"


#: The hot reads of the WHMCS status call, compiled once (see :class:`app.db.PreparedSelect`).
_ORDER_FOR_SERVICE = PreparedSelect(
    lambda service_id: Order.with_relations().where(Order.whmcs_service_id == service_id).limit(1), "service_id")
#: The status view's order: with its relations and extras (drift record, backups' outcome) in one statement.
_STATUS_ORDER = PreparedSelect(
    lambda service_id: with_extras(Order.with_relations()).where(Order.whmcs_service_id == service_id).limit(1),
    "service_id")
_RECENT_OPERATIONS = PreparedSelect(
    lambda order_id: Operation.select().where(Operation.order == order_id).order_by(Operation.id.desc()).limit(10),
    "order_id")


@dataclass(frozen=True)
class CatalogStatus:
    """Where the catalog comes from and how its last sync went (:class:`~app.models.CatalogSync`).

    ``last_error`` is the source's own text (URLs, server answers): private, for the log and admin keys.
    Times are naive UTC, ``None`` before the first attempt or success. ``sync_requested``: a sync was
    asked for (the GitLab webhook) after the last attempt.
    """

    source: str
    commit: str | None
    last_attempt_at: dt.datetime | None
    last_success_at: dt.datetime | None
    last_error: str | None
    sync_requested: bool


@dataclass(frozen=True)
class OrderFigures:
    """One order's figures in ``/metrics/orders`` (:meth:`OrderQueries.order_figures`).

    ``disk_bytes``/``memory_bytes`` are the usage sampler's last measure (``order_usage``), None while not sampled
    yet; ``failing`` whether the drift checker calls the order failing now (``order_drift.state``);
    ``failed_operations`` how many of its operations ended ``failed``, ever (never decreases);
    ``last_backup_at`` when its newest successful backup finished (Unix time, the rule of
    :meth:`OrderQueries.backup_figures`: succeeded or since deleted), None before its first.
    """

    order_id: int
    service_id: int
    instance: str
    product: str
    status: str
    disk_bytes: int | None
    memory_bytes: int | None
    failing: bool
    failed_operations: int
    last_backup_at: float | None


class OrderQueries:
    """The reads; built once by :func:`app.bootstrap.bootstrap` from the same components as the use cases.

    ``engine`` is pinged (engine checks); what runs comes from the engine mirror (``app/stacks/mirror.py``)
    and usage from the table the worker's sampler writes, never from the engine; ``runner`` takes and restores
    backups.
    """

    def __init__(self, settings: Settings, db: peewee.Database, catalog: Catalog, engine: Engine,
                 runner: OperationRunner, ingress: IngressService | None = None):
        self.settings = settings
        self.db = db
        self.catalog = catalog
        self.engine = engine
        self.runner = runner
        self.ingress = ingress or IngressService(None, catalog, settings.base_domain)

    # -- orders ---------------------------------------------------------------
    def order(self, order_id: int) -> Order:
        """The order with database id ``order_id``; raises NotFound (``no order <id>``)."""
        return _get(Order, order_id, "order")

    def order_for_service(self, service_id: int, *, required: bool = True) -> Order | None:
        """The order of WHMCS service ``service_id``, with its product, revision and customer.

        Raises OrderNotFound when there is none and ``required``; else returns None.
        """
        order = _ORDER_FOR_SERVICE.first(service_id=int(service_id))
        if order is None and required:
            raise OrderNotFound(f"no order for WHMCS service {service_id}")
        return order

    def order_by_reference(self, reference: str | int) -> Order:
        """An order by id, instance identifier or ``service:<WHMCS service id>`` (the CLI's ORDER argument).

        Raises NotFound (``no order '<reference>'``), also for a number no id can be (above :data:`MAX_ID`).
        """
        text = str(reference).strip()
        if text.startswith("service:") and text[8:].isdecimal():
            number = int(text[8:])
            order = Order.get_or_none(Order.whmcs_service_id == number) if number <= MAX_ID else None
        elif text.isdecimal():
            order = Order.get_or_none(Order.id == int(text)) if int(text) <= MAX_ID else None
        else:
            order = Order.get_or_none(Order.instance == text)
        if order is None:
            raise NotFound(f"no order {text!r}")
        return order

    def order_view(self, order: Order, *, include_secrets: bool = False, include_private: bool = False,
                   include_local_urls: bool = False, mirror: MirrorReading | None = None,
                   new: Operation | None = None, extras: OrderExtras | None = None) -> dict[str, Any]:
        """The order as :func:`app.presenters.order_view` shows it, with this installation's public scheme and its
        ``runtime`` from the engine mirror (``mirror``, else read now: one query).

        ``new``: the create operation of an order the caller's use case has just created (its only operation;
        no backups, no drift record yet), which saves reading them. ``extras``: its drift record and backups'
        outcome when the caller read them (:func:`app.presenters.with_extras`), else read now (one query)."""
        if mirror is None:
            mirror = self.mirror_readings([order.id])[order.id]
        return order_view(order, self.catalog, self.settings.public_address, include_secrets=include_secrets,
                          include_private=include_private, include_local_urls=include_local_urls,
                          recent=None if new is None else [new], ingress=self.ingress.enabled, mirror=mirror,
                          extras=OrderExtras.NONE if new is not None else extras)

    # -- the engine mirror ------------------------------------------------------------
    def mirror_freshness(self) -> MirrorFreshness:
        """How fresh the engine mirror is (:func:`app.stacks.mirror.freshness`, LIVE_MIRROR_STALE_SECONDS)."""
        return freshness(self.settings.deployment, stale_seconds=self.settings.mirror_stale_seconds)

    def mirror_readings(self, order_ids: list[int]) -> dict[int, MirrorReading]:
        """The mirror's reading of each order (its freshness and rows by service): one query whatever their number."""
        return readings(self.settings.deployment, order_ids, stale_seconds=self.settings.mirror_stale_seconds)

    def order_page(self, *, status: str | None, product: str | None, customer_id: int | None,
                   service_id: int | None, page: int, per_page: int, **flags: bool) -> dict[str, Any]:
        """Orders newest first, filtered by each given value: ``{"page", "per_page", "total", "items"}``.

        ``flags`` are :meth:`order_view`'s.
        """
        orders = Order.select().join(Product).switch(Order).order_by(Order.id.desc())
        if status:
            orders = orders.where(Order.status == status)
        if product:
            orders = orders.where(Product.slug == product)
        if customer_id:
            orders = orders.where(Order.customer == customer_id)
        if service_id:
            orders = orders.where(Order.whmcs_service_id == service_id)
        rows = list(with_extras(orders).paginate(page, per_page))
        mirror = self.mirror_readings([o.id for o in rows])
        return {**_page(orders, page, per_page),
                "items": [self.order_view(o, mirror=mirror[o.id], extras=extras_of(o), **flags) for o in rows]}

    def order_views(self, status: str | None = None, **flags: bool) -> list[dict[str, Any]]:
        """Every order oldest first, or those with ``status``; ``flags`` are :meth:`order_view`'s."""
        query = with_extras(Order.select()).order_by(Order.id)
        if status:
            query = query.where(Order.status == status)
        rows = list(query)
        mirror = self.mirror_readings([o.id for o in rows])
        return [self.order_view(order, mirror=mirror[order.id], extras=extras_of(order), **flags) for order in rows]

    def product_orders(self, slug: str, *, require_product: bool = False) -> list[Order]:
        """The orders of product ``slug`` that are not terminated, oldest first, read in full.

        With ``require_product`` an unknown slug raises the catalog's NotFound (naming the products
        that take orders); otherwise it has no orders.
        """
        if require_product:
            self.catalog.product(slug)
        return list(Order.select().join(Product).where((Product.slug == slug) & (Order.status != OrderStatus.TERMINATED))
                    .order_by(Order.id))

    def service_info(self, service_id: int) -> dict[str, Any]:
        """The order of WHMCS service ``service_id`` for the client area (``ServiceInfoOut``).

        With its generated passwords, its 10 most recent operations (``recent_operations``) and public
        error texts only: the client area shows it to the customer. Raises OrderNotFound.
        """
        order = _STATUS_ORDER.first(service_id=int(service_id))  # with its extras: one statement
        if order is None:
            raise OrderNotFound(f"no order for WHMCS service {service_id}")
        # Read once: the recent operations also tell which one is in progress (unless more than 10 are queued).
        recent = _RECENT_OPERATIONS.rows(order_id=order.id)
        # The client area shows this to the customer: public error texts only, never the private detail.
        view = order_view(order, self.catalog, self.settings.public_address, include_secrets=True,
                          include_private=False, recent=recent if len(recent) < 10 else None,
                          ingress=self.ingress.enabled, mirror=self.mirror_readings([order.id])[order.id],
                          extras=extras_of(order))
        view["recent_operations"] = [operation_view(op, include_private=False) for op in recent]
        return view

    # -- operations and events --------------------------------------------------
    def operation_view(self, operation_id: int, *, include_private: bool = False) -> dict[str, Any]:
        """One operation with its progress steps; raises NotFound (``no operation <id>``)."""
        return operation_view(_get(Operation, operation_id, "operation"), include_private=include_private)

    def order_operations(self, order: Order, *, include_private: bool = False,
                         limit: int | None = None) -> list[dict[str, Any]]:
        """The order's operations newest first (the ``limit`` newest when given)."""
        operations = Operation.select().where(Operation.order == order).order_by(Operation.id.desc())
        if limit is not None:
            operations = operations.limit(limit)
        return [operation_view(op, include_private=include_private) for op in operations]

    def order_events(self, order: Order, *, page: int = 1, per_page: int,
                     include_private: bool = False) -> dict[str, Any]:
        """The order's event log newest first: ``{"page", "per_page", "total", "items"}``."""
        events = Event.select().where(Event.order == order).order_by(Event.id.desc())
        return {**_page(events, page, per_page),
                "items": [event_view(e, include_private=include_private) for e in events.paginate(page, per_page)]}

    @staticmethod
    def wait_for_operation(operation: Operation, seconds: float, poll_seconds: float) -> Operation:
        """The operation once it ended, or as it is after ``seconds``; reads it every ``poll_seconds``.

        Holds the calling thread all along: a web request only calls it with a slot of the app's
        ``WaitSlots``.
        """
        deadline = time.monotonic() + seconds
        while operation.state in UNFINISHED_STATES and time.monotonic() < deadline:
            time.sleep(poll_seconds)
            operation = Operation.get_by_id(operation.id)
        return operation

    @staticmethod
    def failures(since: dt.datetime | None) -> dict[str, Any]:
        """Operations that failed since ``since`` (default: the last 24 hours), oldest first, and the orders the
        drift checker calls failing now (``failing_orders``, :func:`app.presenters.failing_orders`) (``FailuresOut``).
        ``backup_kind`` names the backup whose failure failed the operation (``scheduled``, ``pre_change``...),
        ``None`` when no backup failed in it.

        An aware ``since`` is converted to UTC; a naive one is taken as UTC. Errors are the public texts.
        """
        if since is None:
            since = utcnow() - dt.timedelta(hours=24)
        elif since.tzinfo is not None:
            since = since.astimezone(dt.timezone.utc).replace(tzinfo=None)
        failed = list(Operation.select(Operation, Order).join(Order)
                      .where((Operation.state == OperationState.FAILED) & (Operation.finished_at >= since))
                      .order_by(Operation.finished_at))
        # Which backup failed an operation (a backup's own, or the one a change, restore or terminate takes first):
        # the last failed backup attempt of each operation, one query whatever their number.
        backup_kinds = dict(Backup.select(Backup.operation, Backup.kind)
                            .where(Backup.operation.in_([op.id for op in failed]) & (Backup.state == BackupState.FAILED))
                            .order_by(Backup.id).tuples()) if failed else {}
        return {"since": timestamp(since), "failures": [
            {"service_id": op.order.whmcs_service_id, "instance": op.order.instance, "order_status": op.order.status,
             "operation_id": op.id, "kind": op.kind, "error": op.error or "",  # public text; the detail stays private
             "finished_at": timestamp(op.finished_at), "backup_kind": backup_kinds.get(op.id)}
            for op in failed], "failing_orders": failing_orders()}

    # -- backups ------------------------------------------------------------------------
    @property
    def backups(self) -> BackupService:
        """The backup service the runner takes and restores backups with (its store is the truth)."""
        return self.runner.backups

    def order_backups(self, order: Order) -> dict[str, Any]:
        """The order's backups for its owner (``BackupsOut``)::

            {"order_id", "instance", "backups": [BackupOut, newest first],
             "restorable": [BackupOut of the final backups of the same customer's terminated orders of the same
                            product, newest first: what staff may restore into this order],
             "last_success_at": iso | None, "last_failure": {"at", "kind", "error"} | None}

        ``backups`` and ``restorable`` come from the store (one listing per order: this one and each terminated
        one), ``last_*`` from the order's Backup rows (:func:`app.presenters.backup_summary`). Raises
        BackupStoreError when the store cannot be read.
        """
        own = [backup_view(manifest, order.whmcs_service_id) for manifest in reversed(self.backups.list(order))]
        terminated = (Order.select().where((Order.customer == order.customer_id) & (Order.product == order.product_id)
                                           & (Order.status == OrderStatus.TERMINATED) & (Order.id != order.id))
                      .order_by(Order.id))
        restorable = [(manifest, other.whmcs_service_id) for other in list(terminated)
                      for manifest in self.backups.list(other)
                      if manifest.kind in FINAL_KINDS and manifest.product == order.product.slug]
        restorable.sort(key=lambda item: (item[0].created_at, item[0].backup_id), reverse=True)
        return {"order_id": order.id, "instance": order.instance, "backups": own,
                "restorable": [backup_view(manifest, service_id) for manifest, service_id in restorable],
                **backup_summary(order)}

    def store_backups(self) -> list[dict[str, Any]]:
        """Every committed backup in the store, newest first, read from the manifests alone (no database: it works
        for a store without its bridge): ``BackupOut`` with ``service_id`` None, plus ``instance``. Raises
        BackupStoreError."""
        return [{**backup_view(manifest, None), "instance": manifest.instance}
                for manifest in reversed(self.backups.store.list())]

    def find_backup(self, backup_id: str) -> Manifest:
        """The manifest of the committed backup ``backup_id``, whatever order it was taken of. Raises NotFound
        (no such backup, or not a backup id: its public text never names the store) and BackupStoreError."""
        try:
            return self.backups.find(backup_id)
        except NotFound as exc:
            raise NotFound(str(exc), public=f"no backup {backup_id!r}") from None

    def backup_policy(self, order: Order) -> ResolvedPolicy:
        """The order's resolved backup policy (schedule, keep, verify, services)."""
        return self.runner.policy(order)

    def orders_with_backups(self) -> tuple[list[Order], list[str]]:
        """The orders the store holds backups of, by id, and the ``<instance>/<backup_id>`` of backups whose order
        this database does not have (another installation's, or a deleted database's). Raises BackupStoreError."""
        manifests = self.backups.store.list()
        known = {order.id: order for order in
                 Order.select().where(Order.id.in_(sorted({m.order_id for m in manifests}))).order_by(Order.id)}
        orders = {m.order_id: known[m.order_id] for m in manifests
                  if m.order_id in known and known[m.order_id].instance == m.instance}
        unknown = [f"{m.instance}/{m.backup_id}" for m in manifests
                   if m.order_id not in orders or orders[m.order_id].instance != m.instance]
        return [orders[order_id] for order_id in sorted(orders)], unknown

    def check_backup_store(self) -> None:
        """Return when the backup store answers; raises BackupStoreError otherwise (``/readyz``)."""
        self.backups.store.check()

    @staticmethod
    def backup_figures() -> tuple[list[tuple[str, float, int]], list[tuple[str, int]]]:
        """What ``/metrics`` shows of backups, in two grouped queries whatever the number of orders:
        ``([(instance, last success as a Unix time, its size in bytes)] for each order not terminated that has a
        successful backup, [(kind, failed attempts)] for every BackupKind)``."""
        succeeded = Backup.state.in_((BackupState.SUCCEEDED, BackupState.DELETED))
        newest = (Backup.select(Backup.order.alias("order_id"), peewee.fn.MAX(Backup.finished_at).alias("at"))
                  .where(succeeded).group_by(Backup.order).alias("newest"))
        rows = (Backup.select(Order.instance, Backup.finished_at, Backup.size, Backup.id)
                .join(newest, on=((Backup.order == newest.c.order_id) & (Backup.finished_at == newest.c.at)))
                .switch(Backup).join(Order, on=(Backup.order == Order.id))
                .where(succeeded & (Order.status != OrderStatus.TERMINATED)).order_by(Backup.id).tuples())
        last = {instance: (_unix_time(at), size or 0)
                for instance, at, size, _ in rows}  # two rows of the same instant: the later id wins
        failed = dict(Backup.select(Backup.kind, peewee.fn.COUNT(Backup.id)).where(Backup.state == BackupState.FAILED)
                      .group_by(Backup.kind).tuples())
        kinds = [str(kind) for kind in BackupKind] + sorted(set(failed) - {str(kind) for kind in BackupKind})
        return ([(instance, at, size) for instance, (at, size) in sorted(last.items())],
                [(kind, failed.get(kind, 0)) for kind in kinds])

    # -- products and customers ---------------------------------------------------
    def products(self) -> list[dict[str, Any]]:
        """Every product by slug, as :func:`app.presenters.product_view` shows it."""
        return [product_view(p, self.catalog) for p in Product.select().order_by(Product.slug)]

    def product(self, slug: str) -> dict[str, Any]:
        """One product as :func:`app.presenters.product_view` shows it; raises the catalog's NotFound."""
        return product_view(self.catalog.product(slug), self.catalog)

    def product_revisions(self, slug: str) -> list[dict[str, Any]]:
        """Every recorded revision of product ``slug``, newest first; raises the catalog's NotFound."""
        product = self.catalog.product(slug)
        revisions = ProductRevision.select().where(ProductRevision.product == product).order_by(ProductRevision.id.desc())
        return [revision_view(r) for r in revisions]

    def whmcs_products(self) -> list[dict[str, Any]]:
        """Products by slug with their plan names, for the WHMCS module's dropdowns (``ProductListOut``)."""
        items = []
        for product in Product.select().order_by(Product.slug):
            plans = []
            if product.current_revision_id is not None:
                plans = sorted(self.catalog.definition(product.current_revision).plans)
            items.append({"slug": product.slug, "name": product.name, "valid": product.valid, "plans": plans})
        return items

    @staticmethod
    def product_summaries() -> list[dict[str, Any]]:
        """Products by slug: ``{"slug", "name", "valid", "revision" (label or None), "errors"}`` (``live products list``)."""
        rows = []
        for product in Product.select().order_by(Product.slug):
            revision = product.current_revision
            rows.append({"slug": product.slug, "name": product.name, "valid": product.valid,
                         "revision": revision.label if revision else None, "errors": product.errors})
        return rows

    def product_definition(self, slug: str) -> tuple[Product, ProductDefinition | None]:
        """The product and its current revision's definition (None without a valid revision); raises NotFound."""
        product = self.catalog.product(slug)
        if not product.current_revision_id:
            return product, None
        return product, self.catalog.definition(product.current_revision)

    def revision_usage(self, slug: str) -> tuple[Product, list[tuple[ProductRevision, int]]]:
        """The product and its revisions newest first, each with how many orders (not terminated) are on it."""
        product = self.catalog.product(slug)
        revisions = []
        for revision in product.revisions.order_by(ProductRevision.id.desc()):
            on = Order.select().where((Order.revision == revision) & (Order.status != OrderStatus.TERMINATED)).count()
            revisions.append((revision, on))
        return product, revisions

    @staticmethod
    def customer_page(email: str | None, page: int, per_page: int) -> dict[str, Any]:
        """Customers by id, only the one with ``email`` (any case) when given: ``{"page", "per_page", "total", "items"}``."""
        customers = Customer.select().order_by(Customer.id)
        if email:
            customers = customers.where(Customer.email == email.strip().lower())
        return {**_page(customers, page, per_page),
                "items": [customer_view(c) for c in customers.paginate(page, per_page)]}

    @staticmethod
    def customer(customer_id: int) -> dict[str, Any]:
        """One customer; raises NotFound (``no customer <id>``)."""
        return customer_view(_get(Customer, customer_id, "customer"))

    # -- catalog --------------------------------------------------------------------
    def catalog_status(self) -> CatalogStatus:
        """The catalog's source and last sync (see :class:`CatalogStatus`); raises peewee's errors."""
        state = self.catalog.status()
        return CatalogStatus(source=state.source or self.catalog.source.describe(), commit=state.commit,
                             last_attempt_at=state.last_attempt_at, last_success_at=state.last_success_at,
                             last_error=state.last_error, sync_requested=self.catalog.sync_requested())

    # -- the container engine ----------------------------------------------------------
    @staticmethod
    def serves_hostname(hostname: str) -> bool:
        """Whether ``hostname`` is the hostname of an order that is not terminated: the proxy may hold a
        certificate for it (``GET /ingress/v1/ask``). Compared as hostnames are stored
        (:func:`app.naming.normalize_hostname`: any case, a trailing dot, the Unicode or the IDNA form);
        a name that is no hostname (an IP address, invalid characters) is never served."""
        try:
            name = normalize_hostname(hostname)
        except NamingError:
            return False
        return Order.select().where((Order.hostname == name) & (Order.status != OrderStatus.TERMINATED)).exists()

    def ingress_status(self) -> IngressStatus:
        """Whether the proxy answers and holds the bridge's routes, and how many are pending (``/readyz``)."""
        return self.ingress.status()

    def ping_engine(self) -> None:
        """Raises the engine's LiveError (e.g. EngineUnavailable) when the container engine does not answer."""
        self.engine.ping()

    def connection_checks(self) -> dict[str, Any]:
        """What WHMCS TestConnection reports: ``{"products": <valid products>, "docker": "ok" | "unreachable"}``.

        An engine that does not answer is reported, not raised (the connection to the bridge itself works);
        its error goes to the log only.
        """
        try:
            self.ping_engine()
            docker = "ok"
        except Exception as exc:  # reported, not raised: the connection to the bridge itself works
            log.warning("test-connection: Docker engine unreachable: %s", exc)  # the detail is for the log only
            docker = "unreachable"
        return {"products": Product.select().where(Product.valid == True).count(),  # noqa: E712
                "docker": docker}

    @staticmethod
    def accounts(after: int, limit: int) -> dict[str, Any]:
        """Every order the bridge knows (terminated ones too), ``limit`` at a time by WHMCS service id above ``after``
        (keyset paging on the unique index of ``whmcs_service_id``: each page costs the same, whatever its place):
        ``{"items": [AccountOut, ascending service id], "next": the last item's service id | None on the last page}``.
        One query (``limit + 1`` rows read: the one more says whether a next page exists; whether the order's create
        ever succeeded, for its WHMCS status, is a subquery on the operations' order index)."""
        created = peewee.fn.EXISTS(Operation.select(Operation.id).where(
            (Operation.order == Order.id) & (Operation.kind == OperationKind.CREATE)
            & (Operation.state == OperationState.SUCCEEDED)))
        rows = list(Order.select(Order.whmcs_service_id, Order.instance, Order.hostname, Order.status, Order.plan,
                                 Order.created_at, Customer.email, Customer.whmcs_client_id, Product.slug, created)
                    .join(Customer).switch(Order).join(Product)
                    .where(Order.whmcs_service_id > after).order_by(Order.whmcs_service_id).limit(limit + 1).tuples())
        items = [account_view(*row) for row in rows[:limit]]
        return {"items": items, "next": items[-1]["service_id"] if len(rows) > limit else None}

    @staticmethod
    def usage(service_ids: list[int] | None = None) -> list[dict[str, Any]]:
        """Disk, memory and CPU of every order not terminated (or of those services), by order id (``UsageOut``), as
        the worker's usage sampler last measured them, with ``sampled_at``/``disk_sampled_at`` (None: not sampled
        yet, the figures None too). One query; never asks the engine (:func:`app.orders.usage.usage_answers`)."""
        return usage_answers(service_ids)

    def geocat_live_services(self, instance: str) -> list[dict[str, str]]:
        """The endpoints of the order ``instance`` for GeoCat Live 1.0: ``[{"application", "url", "status"}]``.

        ``status`` is RUNNING, WAITING or ERROR from the order's status, its operations in progress and its
        containers as the engine mirror has them (``app/stacks/mirror.py``; no engine call). A mirror that is not
        fresh (no worker, the engine's stream down) gives WAITING for an active order: GeoCat Live 1.0 has no
        "unknown", and WAITING ("ask again") is the one that claims nothing; never a stale RUNNING. Raises NotFound
        for an unknown or terminated order.
        """
        order = Order.get_or_none(Order.instance == instance)
        if order is None or order.status == OrderStatus.TERMINATED:
            raise NotFound(f"no order with instance identifier {instance!r}")
        reading = self.mirror_readings([order.id])[order.id]
        containers = reading.containers if reading.freshness.fresh else None
        busy = Operation.select().where((Operation.order == order) & Operation.state.in_(UNFINISHED_STATES)).exists()
        services = []
        for endpoint in endpoint_views(order, self.catalog, self.settings.public_address):
            services.append({"application": endpoint["application"], "url": endpoint["url"],
                             "status": _live_status(order, busy, containers, endpoint["service"])})
        return services

    # -- health ------------------------------------------------------------------------
    def pending_migrations(self) -> list[str]:
        """The migrations not applied yet (see :func:`app.db.pending_migrations`); raises peewee's errors."""
        return pending_migrations(self.db)

    @staticmethod
    def worker_status() -> WorkerStatus:
        """Whether a worker runs the operations (the rule of :mod:`app.orders.heartbeat`)."""
        return worker_status()

    @staticmethod
    def order_counts() -> list[tuple[str, int]]:
        """``[(status, orders)]`` for every order status in use."""
        return list(Order.select(Order.status, peewee.fn.COUNT(Order.id)).group_by(Order.status).tuples())

    @staticmethod
    def order_figures() -> list[OrderFigures]:
        """Every order that is not terminated with its status, usage, failing flag, failed operations and last
        successful backup, by order id (:class:`OrderFigures`), for ``/metrics/orders``: five queries whatever the
        number of orders (the orders; their usage; the failing ones; failed operations counted by order; the newest
        successful backup by order), never the engine."""
        orders = list(Order.select(Order.id, Order.whmcs_service_id, Order.instance, Order.status, Product.slug)
                      .join(Product).where(Order.status != OrderStatus.TERMINATED).order_by(Order.id).tuples())
        usage = {order_id: (disk, memory) for order_id, disk, memory in
                 OrderUsage.select(OrderUsage.order, OrderUsage.disk_bytes, OrderUsage.memory_bytes).tuples()}
        failing = {order_id for (order_id,) in
                   OrderDrift.select(OrderDrift.order).where(OrderDrift.state == DriftState.FAILING).tuples()}
        failed = dict(Operation.select(Operation.order, peewee.fn.COUNT(Operation.id))
                      .where(Operation.state == OperationState.FAILED).group_by(Operation.order).tuples())
        backed_up = dict(Backup.select(Backup.order, peewee.fn.MAX(Backup.finished_at))
                         .where(Backup.state.in_((BackupState.SUCCEEDED, BackupState.DELETED))
                                & Backup.finished_at.is_null(False))
                         .group_by(Backup.order).tuples())
        figures = []
        for order_id, service_id, instance, status, product in orders:
            disk, memory = usage.get(order_id, (None, None))
            at = backed_up.get(order_id)
            figures.append(OrderFigures(order_id=order_id, service_id=service_id, instance=instance, product=product,
                                        status=status, disk_bytes=disk, memory_bytes=memory,
                                        failing=order_id in failing, failed_operations=failed.get(order_id, 0),
                                        last_backup_at=_unix_time(at) if at is not None else None))
        return figures

    @staticmethod
    def operation_counts() -> list[tuple[str, str, int]]:
        """``[(kind, state, operations)]`` for every kind and state in use."""
        return list(Operation.select(Operation.kind, Operation.state, peewee.fn.COUNT(Operation.id))
                    .group_by(Operation.kind, Operation.state).tuples())


def _unix_time(at: dt.datetime) -> float:
    """A stored (naive UTC) time as a Unix time."""
    return at.replace(tzinfo=dt.timezone.utc).timestamp()


def _get(model: type[peewee.Model], ident: int, what: str):
    row = model.get_or_none(model.id == ident)
    if row is None:
        raise NotFound(f"no {what} {ident}")
    return row


def _page(query: peewee.ModelSelect, page: int, per_page: int) -> dict[str, int]:
    return {"page": page, "per_page": per_page, "total": query.count()}


def _live_status(order: Order, busy: bool, containers, service: str) -> str:
    """The GeoCat Live 1.0 word of ``order``'s endpoint ``service``: ``containers`` its mirror rows by service (None:
    the mirror is not fresh), ``busy`` whether an operation is under way (docs/MIRROR.md)."""
    if order.status in (OrderStatus.FAILED, OrderStatus.SUSPENDED):
        return ERROR
    if order.status == OrderStatus.PENDING:
        return WAITING
    if containers is None:
        return WAITING  # the mirror is not fresh: claim nothing, the client asks again
    container = containers.get(service)
    if container is None or container.state not in RUNNING_STATES or container.health == "unhealthy":
        return WAITING if busy else ERROR
    if container.state != "running" or container.health == "starting" or busy:
        return WAITING  # restarting: the engine is bringing it back (``runtime`` says degraded)
    return RUNNING
