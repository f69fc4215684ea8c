"""Plain-dict views of orders, operations, products and customers.

One place decides what a caller sees (the HTTP API and the CLI both use it);
secrets are only included when the caller asks and is allowed to, and so is
the private detail of errors (``include_private``): customers, the WHMCS
module and read-scope keys get the public text only; admin-scope keys and the
CLI get the detail too. Callers decide and pass the flag; nothing here infers it.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

import peewee

from app.backups.service import BackupState
from app.catalog.catalog import Catalog
from app.config import PublicAddress
from app.db import PreparedSelect
from app.models import Backup, Customer, Event, Operation, Order, OrderDrift, Product, ProductRevision
from app.orders.lifecycle import FINISHED_STATES, OrderStatus, public_params

if TYPE_CHECKING:
    from app.backups.store import Manifest
    from app.stacks.mirror import MirrorReading

#: The keys of an order's ``detached_volumes`` entries that views show (``DetachedVolumeOut``).
_DETACHED_VOLUME_KEYS = ("volume", "revision", "at")
#: The key of an event's ``data`` that holds private error detail (see event_view).
PRIVATE_EVENT_DATA = "error_detail"


def timestamp(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds") + "Z"


def endpoint_views(order: Order, catalog: Catalog, public: PublicAddress, *, local_urls: bool = False,
                   busy: bool = True) -> list[dict[str, Any]]:
    """The order's endpoints: ``[{"application", "service", "url"}]``, plus ``local_url`` for staff.

    ``url`` is the public one (``<scheme>://<hostname>[:<port>]<path>``, no trailing slash; ``public``
    gives the scheme and port, :meth:`app.config.PublicAddress.url`). With ``local_urls``
    (staff only: the developer API and the CLI; never the WHMCS endpoints, whose client area customers
    see) each endpoint also has ``local_url``: ``http://127.0.0.1:<port><path>`` on the Docker host while
    the order's containers run, else ``None``. "Run" is read from the database, not asked of the engine:
    the order is ``active`` and no operation is in progress (``busy`` False). A port is kept for an
    order's whole life, but once its containers stop another order may take it, so a link shown then
    could open another customer's stack.
    """
    definition = catalog.definition(order.revision)
    running = order.status == OrderStatus.ACTIVE and not busy
    views = []
    for endpoint in definition.endpoints:
        path = endpoint.path.rstrip("/")
        view = {"application": endpoint.application, "service": endpoint.service,
                "url": public.url(order.hostname, path)}
        if local_urls:
            port = (order.published_ports or {}).get(f"{endpoint.service}:{endpoint.port}")
            view["local_url"] = f"http://127.0.0.1:{port}{path or '/'}" if port and running else None
        views.append(view)
    return views


def operation_view(operation: Operation, *, include_private: bool = False) -> dict[str, Any]:
    """An operation; ``error`` is public, ``error_detail`` (private) only with ``include_private``."""
    view = {
        "id": operation.id,
        "order_id": operation.order_id,
        "kind": operation.kind,
        "state": operation.state,
        # Keys starting with "_" are the worker's own bookkeeping (a restore keeps the order's previous secrets
        # there until it succeeded): never shown.
        "params": public_params(operation.params),
        "attempts": operation.attempts,
        "max_attempts": operation.max_attempts,
        "steps": operation.steps or [],
        "error": operation.error,
        "requested_by": operation.requested_by,
        "created_at": timestamp(operation.created_at),
        "started_at": timestamp(operation.started_at),
        "finished_at": timestamp(operation.finished_at),
    }
    if include_private:
        view["error_detail"] = operation.error_detail
    return view


def current_operation(order: Order, recent: list[Operation] | None = None) -> Operation | None:
    """The oldest operation in progress, else the most recent one (``recent``: newest first, if already read)."""
    if recent is None:
        unfinished = (Operation.select().where((Operation.order == order) & Operation.state.not_in(FINISHED_STATES))
                      .order_by(Operation.id).first())
        return unfinished or Operation.select().where(Operation.order == order).order_by(Operation.id.desc()).first()
    unfinished = [op for op in recent if op.state not in FINISHED_STATES]
    return unfinished[-1] if unfinished else (recent[0] if recent else None)


#: The order's ``runtime.state`` (:func:`runtime_view`).
RUNTIME_RUNNING, RUNTIME_STARTING, RUNTIME_DEGRADED, RUNTIME_STOPPED, RUNTIME_UNKNOWN = (
    "running", "starting", "degraded", "stopped", "unknown")


def runtime_view(order: Order, catalog: Catalog, reading: MirrorReading | None,
                 expected: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """What runs of the order, from the engine mirror (``app/stacks/mirror.py``), never from the engine::

        {"state": "running" | "starting" | "degraded" | "stopped" | "unknown",
         "observed_at": ISO time of the mirror's last beat (UTC) | None, "age_seconds": its age | None,
         "services": [{"service", "state", "health"}]}

    The services (by name) are what should run of the order: ``expected``, the drift record the last successful
    deploy made (``order_drift.expected``, ``{service: {"config_hash", "one_shot"}}``, see
    :func:`app.orders.drift.expected_services`); when that is empty or absent (not deployed yet, suspended,
    terminated) the compose services of the order's revision (none once terminated); plus any other service the
    mirror has a container of. A service the mirror has no container of is ``missing``. Per service
    ``state``/``health`` are the container's (``running``, ``exited``, ``created``, ``paused``, ``restarting``,
    ``dead``; ``healthy``, ``unhealthy``, ``starting`` or None), and the order's:

    - ``unknown``: the mirror is not fresh (no worker follows the engine, its stream is down, or its beat is older
      than LIVE_MIRROR_STALE_SECONDS); every service is ``unknown`` too: never a stale ``running``;
    - ``stopped``: no service runs or is starting (suspended, terminated, not deployed yet, or everything stopped);
    - ``running``: every service runs (healthy where it has a healthcheck), or exited 0 if it is a one-shot job;
    - ``starting``: the others are created or running with their health ``starting``;
    - ``degraded``: some run, others are missing, exited with an error, dead, paused, restarting or unhealthy.

    One-shot jobs are those ``expected`` marks so, the drift checker's own rule (a service another one waits for
    with ``condition: service_completed_successfully``, :func:`app.compose.model.one_shot_services`); before a deploy
    recorded them (a first deploy under way) any service that exited 0 counts as one. A one-shot job that exited 0,
    or whose container is ``missing`` (removed after it finished: the deploy that recorded it waited for its exit 0),
    is not bad.
    """
    fresh = reading is not None and reading.freshness.fresh
    age = reading.freshness.age_seconds if reading is not None else None
    view: dict[str, Any] = {"state": RUNTIME_UNKNOWN,
                            "observed_at": timestamp(reading.freshness.beat_at) if reading is not None else None,
                            "age_seconds": age, "services": []}
    containers = reading.containers if reading is not None else {}
    if expected:
        wanted: Any = expected
        one_shot = {name for name, service in expected.items() if service.get("one_shot")}
    else:
        # Parsed only when no deploy recorded what runs (the hot status path reads ``expected``).
        wanted = {} if order.status == OrderStatus.TERMINATED else (
            catalog.definition(order.revision).compose.get("services") or {})
        one_shot = None  # not recorded yet: any exit 0 is taken for a finished job
    names = sorted(set(wanted) | set(containers))
    if not fresh:
        view["services"] = [{"service": name, "state": RUNTIME_UNKNOWN, "health": None} for name in names]
        return view
    running = starting = bad = 0
    for name in names:
        row = containers.get(name)
        state, health = (row.state, row.health) if row is not None else ("missing", None)
        view["services"].append({"service": name, "state": state, "health": health})
        if state == "running" and health in (None, "healthy"):
            running += 1
        elif state == "created" or (state == "running" and health == "starting"):
            starting += 1
        elif one_shot is not None and name in one_shot and row is None:
            pass  # a finished job's container, removed since (``docker rm``, ``docker container prune``)
        elif not ((one_shot is None or name in one_shot) and state == "exited" and row.exit_code == 0):
            bad += 1
    if not running and not starting:
        view["state"] = RUNTIME_STOPPED
    elif bad:
        view["state"] = RUNTIME_DEGRADED
    elif starting:
        view["state"] = RUNTIME_STARTING
    else:
        view["state"] = RUNTIME_RUNNING
    return view


# -- what an order view adds from other tables: its drift record and its backups' outcome -----------------------
#: Backup rows that were a successful backup: still in the store, or pruned since.
_SUCCEEDED_BACKUPS = (BackupState.SUCCEEDED, BackupState.DELETED)
_LAST_FAILED_BACKUP = Backup.alias("last_failed_backup")
#: The drift record's columns views use (not ``baseline``: the checker's own).
_DRIFT_COLUMNS = (OrderDrift.state, OrderDrift.problems, OrderDrift.detected_at, OrderDrift.failing_since,
                  OrderDrift.failing_reason, OrderDrift.repairs, OrderDrift.expected_at, OrderDrift.expected)


def with_extras(query: peewee.ModelSelect) -> peewee.ModelSelect:
    """``query`` (a select of :class:`~app.models.Order` rows) with what :func:`order_view` reads from other tables,
    in the same statement: the order's drift record (left-joined), when its newest successful backup finished and
    its newest failed backup (correlated subqueries on ``backup``'s ``order_id`` index). :func:`extras_of` reads
    them from each order the query returns. Works on SQLite and PostgreSQL alike."""
    success = (Backup.select(peewee.fn.MAX(Backup.finished_at))
               .where((Backup.order == Order.id) & Backup.state.in_(_SUCCEEDED_BACKUPS)))
    failure = (Backup.select(Backup.id).where((Backup.order == Order.id) & (Backup.state == BackupState.FAILED))
               .order_by(Backup.id.desc()).limit(1))
    failed = _LAST_FAILED_BACKUP
    return (query.select_extend(*_DRIFT_COLUMNS, failed.started_at, failed.finished_at, failed.kind, failed.error,
                                success.alias("last_backup_success_at"))
            .switch(Order).join(OrderDrift, peewee.JOIN.LEFT_OUTER, on=(OrderDrift.order == Order.id), attr="drift_row")
            .switch(Order).join(failed, peewee.JOIN.LEFT_OUTER, on=(failed.id == failure), attr="last_failed_backup")
            .switch(Order))


@dataclass(frozen=True)
class OrderExtras:
    """What an order view shows from other tables than the order's own (:func:`with_extras`)."""

    drift: OrderDrift | None  # its drift record; None when no deploy recorded one yet
    last_success_at: dt.datetime | None  # when its newest successful backup finished (UTC)
    last_failure: Backup | None  # its newest failed backup (started_at, finished_at, kind, error)

    #: An order created in the caller's own transaction: no backup, no drift record yet.
    NONE: ClassVar["OrderExtras"]


OrderExtras.NONE = OrderExtras(None, None, None)


def extras_of(order: Order) -> OrderExtras:
    """The extras of an order read by a :func:`with_extras` query."""
    # A subquery's column gets no field conversion: SQLite gives the time as text (PostgreSQL a datetime).
    return OrderExtras(order.drift_row, Backup.finished_at.python_value(order.last_backup_success_at),
                       order.last_failed_backup)


_ORDER_EXTRAS = PreparedSelect(lambda order_id: with_extras(Order.select(Order.id)).where(Order.id == order_id),
                               "order_id")


def read_extras(order: Order) -> OrderExtras:
    """The extras of ``order`` read now (one indexed query); for an order read without :func:`with_extras`."""
    row = _ORDER_EXTRAS.first(order_id=order.id)
    return OrderExtras.NONE if row is None else extras_of(row)


def order_view(order: Order, catalog: Catalog, public: PublicAddress, *, include_secrets: bool = False,
               include_private: bool = False, include_local_urls: bool = False,
               recent: list[Operation] | None = None, ingress: bool = False,
               mirror: MirrorReading | None = None, extras: OrderExtras | None = None) -> dict[str, Any]:
    """An order with its endpoints and current operation.

    ``runtime`` is what runs of it, from ``mirror`` (its :class:`~app.stacks.mirror.MirrorReading`; None: unknown),
    see :func:`runtime_view`.

    ``ingress`` says whether a proxy is configured: then ``ingress`` is ``applied`` (the proxy holds the
    order's route as the order is now) or ``pending`` (not yet, or the proxy was down: the worker's
    resync applies it), else ``off``.
    ``include_secrets`` adds the generated passwords; ``include_private`` the
    private error detail (``last_error_detail``, the operation's ``error_detail``);
    ``include_local_urls`` (staff only, never the WHMCS endpoints) each endpoint's
    ``local_url``, set only while the order runs (see :func:`endpoint_views`).
    ``extras``: its drift record and backups' outcome (:class:`OrderExtras`: :func:`extras_of` an order read with
    :func:`with_extras`, or ``OrderExtras.NONE`` for an order the caller has just created); None reads them now (one
    query).
    """
    if extras is None:
        extras = read_extras(order)
    operation = current_operation(order, recent)
    busy = operation is not None and operation.state not in FINISHED_STATES
    view = {
        "id": order.id,
        "service_id": order.whmcs_service_id,
        "instance": order.instance,
        "hostname": order.hostname,
        "status": order.status,
        "product": order.product.slug,
        "plan": order.plan,
        "revision": order.revision.label,
        "customer": {"id": order.customer_id, "email": order.customer.email},
        "endpoints": endpoint_views(order, catalog, public, local_urls=include_local_urls, busy=busy),
        "ingress": ("pending" if order.ingress_pending else "applied") if ingress else "off",
        "operation": operation_view(operation, include_private=include_private) if operation is not None else None,
        "last_error": order.last_error,
        "created_at": timestamp(order.created_at),
        "updated_at": timestamp(order.updated_at),
        "terminated_at": timestamp(order.terminated_at),
        "detached_volumes": [{key: entry[key] for key in _DETACHED_VOLUME_KEYS if key in entry}
                             for entry in order.detached_volumes or []],
        "backups": backup_summary(order, extras),
        "node": {"id": order.node, "hostname": order.node_name or order.node} if order.node else None,
        "runtime": runtime_view(order, catalog, mirror, extras.drift.expected if extras.drift is not None else None),
        "drift": drift_view(extras.drift),
    }
    if include_secrets:
        view["secrets"] = answered_secrets(order, catalog)
    if include_private:
        view["last_error_detail"] = order.last_error_detail
    return view


def answered_secrets(order: Order, catalog: Catalog) -> dict[str, str]:
    """The order's generated passwords as answers show them: without the customer's own password (the product's
    credential variable, and the value its last change replaced: WHMCS holds it, and no answer, log or event
    repeats it)."""
    credential = catalog.definition(order.revision).credential
    # A key with a dot is never a variable: a value a change replaced (``<variable>.previous``), hidden also once
    # the order's revision no longer declares the credential.
    return {name: value for name, value in (order.secrets or {}).items()
            if "." not in name and (credential is None or not credential.owns(name))}


def drift_view(row: OrderDrift | None) -> dict[str, Any] | None:
    """What the drift checker made of the order's containers (``app/orders/drift.py``), from its drift record ``row``
    (:class:`OrderExtras`): ``{"state": ok | drifted | repairing | failing, "problems": [{"service", "kind",
    "detail"}], "detected_at", "failing_since", "reason", "repairs", "expected_at"}``; ``reason`` says why it is
    failing (no log lines: those are in the private data of the ``drift_failing`` event), ``repairs`` counts the
    redeploys the checker queued within LIVE_DRIFT_WINDOW_SECONDS, ``expected_at`` when what should run was last
    recorded. None for an order no deploy recorded anything for yet (made before migration 0014 and not deployed
    since)."""
    if row is None:
        return None
    return {"state": row.state, "problems": [dict(p) for p in row.problems or []],
            "detected_at": timestamp(row.detected_at), "failing_since": timestamp(row.failing_since),
            "reason": row.failing_reason.split("\n", 1)[0] if row.failing_reason else None,
            "repairs": len(row.repairs or []), "expected_at": timestamp(row.expected_at)}


def failing_orders() -> list[dict[str, Any]]:
    """The orders the drift checker calls failing, longest failing first (``FailingOrderOut``; one query):
    ``[{"service_id", "instance", "order_status", "failing_since", "reason", "problems"}]``."""
    rows = (OrderDrift.select(OrderDrift, Order).join(Order)
            .where(OrderDrift.state == "failing").order_by(OrderDrift.failing_since))
    return [{"service_id": row.order.whmcs_service_id, "instance": row.order.instance, "order_status": row.order.status,
             "failing_since": timestamp(row.failing_since), "reason": (row.failing_reason or "").split("\n", 1)[0],
             "problems": [dict(p) for p in row.problems or []]} for row in rows]


#: An order's status in WHMCS's words (``WHMCS\\Service\\Status``), for Server Sync: a create that has not succeeded
#: (pending, or failed) is a Pending service to WHMCS. A failed order whose create once succeeded (a restore, a move
#: or a terminate failed afterwards) is still the customer's Active service to WHMCS: see :func:`whmcs_status`.
WHMCS_STATUS = {OrderStatus.PENDING: "Pending", OrderStatus.FAILED: "Pending", OrderStatus.ACTIVE: "Active",
                OrderStatus.SUSPENDED: "Suspended", OrderStatus.TERMINATED: "Terminated"}


def whmcs_status(status: str, was_created: bool) -> str:
    """``status`` in WHMCS's words (:data:`WHMCS_STATUS`); ``was_created``: a create operation of the order succeeded
    once. WHMCS's Server Sync *sets* a matched service's status to this one when staff tick Sync, so a failure after
    the order ran must not turn the customer's service back to Pending."""
    if OrderStatus(status) is OrderStatus.FAILED and was_created:
        return "Active"
    return WHMCS_STATUS[OrderStatus(status)]


def account_view(service_id: int, instance: str, hostname: str, status: str, plan: str, created_at: dt.datetime,
                 email: str, client_id: int | None, product: str, was_created: bool) -> dict[str, Any]:
    """One order as WHMCS's Server Sync compares it (``AccountOut``): ``{"service_id", "instance", "hostname",
    "email", "client_id", "product", "plan", "order_status", "whmcs_status", "created_at"}``; ``was_created``: a
    create of the order succeeded once (:func:`whmcs_status`)."""
    return {"service_id": service_id, "instance": instance, "hostname": hostname, "email": email,
            "client_id": client_id, "product": product, "plan": plan, "order_status": status,
            "whmcs_status": whmcs_status(status, bool(was_created)), "created_at": timestamp(created_at)}


def backup_summary(order: Order, extras: OrderExtras | None = None) -> dict[str, Any]:
    """How the order's backups went, from its :class:`~app.models.Backup` rows (``extras``, else read now: one
    indexed query): ``{"last_success_at": iso | None, "last_failure": {"at", "kind", "error"} | None}``.

    ``last_success_at`` is when the newest successful backup finished (pruned ones count: they succeeded);
    ``last_failure`` is the newest failed attempt, whenever it was (compare its ``at`` with ``last_success_at``),
    its ``error`` the public text (customers see it; the detail stays in the row).
    """
    if extras is None:
        extras = read_extras(order)
    failure = extras.last_failure
    return {"last_success_at": timestamp(extras.last_success_at),
            "last_failure": None if failure is None else {
                "at": timestamp(failure.finished_at or failure.started_at), "kind": failure.kind,
                "error": failure.error or f"{failure.kind} backup failed"}}


def backup_view(manifest: Manifest, service_id: int | None) -> dict[str, Any]:
    """A backup as its manifest describes it (``BackupOut``): ``{"backup_id", "created_at" (ISO, UTC), "kind",
    "size" (bytes, every artefact), "revision", "plan", "services", "artefacts": [{"name", "size", "sha256"}],
    "order_id", "service_id"}``. ``service_id`` is the WHMCS service of the order it was taken of (None when
    the database does not know that order). Nothing in it is private: no path, no store location."""
    return {"backup_id": manifest.backup_id,
            "created_at": manifest.created_at.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "kind": manifest.kind, "size": manifest.size, "revision": manifest.revision, "plan": manifest.plan,
            "services": list(manifest.services), "artefacts": [artefact.as_dict() for artefact in manifest.artefacts],
            "order_id": manifest.order_id, "service_id": service_id}


def event_view(event: Event, *, include_private: bool = False) -> dict[str, Any]:
    """An event; its message is public, the error detail and archive paths in its data only with
    ``include_private``."""
    data = dict(event.data or {})
    if not include_private:
        data.pop(PRIVATE_EVENT_DATA, None)
        # Terminates before issue 13 listed their loose archives (host paths: staff only); now a backup id.
        if isinstance(data.get("archives"), list):
            data["archives"] = [{k: v for k, v in archive.items() if k != "path"} if isinstance(archive, dict)
                                else archive for archive in data["archives"]]
    return {"id": event.id, "order_id": event.order_id, "operation_id": event.operation_id, "kind": event.kind,
            "message": event.message, "actor": event.actor, "data": data,
            "created_at": timestamp(event.created_at)}


def revision_view(revision: ProductRevision) -> dict[str, Any]:
    return {"revision": revision.label, "content_hash": revision.content_hash, "commit": revision.commit,
            "valid": revision.valid, "errors": revision.errors or [], "created_at": timestamp(revision.created_at)}


def product_view(product: Product, catalog: Catalog) -> dict[str, Any]:
    view: dict[str, Any] = {"slug": product.slug, "name": product.name, "description": product.description,
                            "valid": product.valid, "errors": product.errors or [], "revision": None,
                            "plans": {}, "endpoints": [], "services": []}
    if product.current_revision_id is not None:
        revision = product.current_revision
        definition = catalog.definition(revision)
        view.update({
            "revision": revision.label,
            "plans": {name: dict(values) for name, values in sorted(definition.plans.items())},
            "endpoints": [{"application": e.application, "service": e.service, "port": e.port, "path": e.path}
                          for e in definition.endpoints],
            "services": sorted(definition.compose.get("services", {})),
        })
    return view


def customer_view(customer: Customer) -> dict[str, Any]:
    return {"id": customer.id, "whmcs_client_id": customer.whmcs_client_id, "email": customer.email,
            "first_name": customer.first_name, "last_name": customer.last_name, "company": customer.company,
            "created_at": timestamp(customer.created_at), "updated_at": timestamp(customer.updated_at)}
