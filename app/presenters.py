"""Plain-dict views of orders, operations, products and customers.

One place decides what a caller sees (the HTTP API and the CLI both use it);
secrets are only included when the caller asks and is allowed to, and so is
the private detail of errors (``include_private``): customers, the WHMCS
module and read-scope keys get the public text only; admin-scope keys and the
CLI get the detail too. Callers decide and pass the flag; nothing here infers it.
"""
from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

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


def runtime_view(order: Order, catalog: Catalog, reading: MirrorReading | None) -> dict[str, Any]:
    """What runs of the order, from the engine mirror (``app/stacks/mirror.py``), never from the engine::

        {"state": "running" | "starting" | "degraded" | "stopped" | "unknown",
         "observed_at": ISO time of the mirror's last beat (UTC) | None, "age_seconds": its age | None,
         "services": [{"service", "state", "health"}]}

    The services (by name) are the compose services of the order's revision (none once terminated) and any other
    the mirror has a container of; a service the mirror has no container of is ``missing``. Per service ``state``/``health`` are the container's (``running``, ``exited``, ``created``,
    ``paused``, ``restarting``, ``dead``; ``healthy``, ``unhealthy``, ``starting`` or None), and the order's:

    - ``unknown``: the mirror is not fresh (no worker follows the engine, its stream is down, or its beat is older
      than LIVE_MIRROR_STALE_SECONDS); every service is ``unknown`` too: never a stale ``running``;
    - ``stopped``: no service runs or is starting (suspended, terminated, not deployed yet, or everything stopped);
    - ``running``: every service runs (healthy where it has a healthcheck), or exited 0 if it is a one-shot job (a
      service another one waits for with ``condition: service_completed_successfully``);
    - ``starting``: the others are created or running with their health ``starting``;
    - ``degraded``: some run, others are missing, exited with an error, dead, paused, restarting or unhealthy.
    """
    fresh = reading is not None and reading.freshness.fresh
    age = reading.freshness.age_seconds if reading is not None else None
    view: dict[str, Any] = {"state": RUNTIME_UNKNOWN,
                            "observed_at": timestamp(reading.freshness.beat_at) if reading is not None else None,
                            "age_seconds": age, "services": []}
    containers = reading.containers if reading is not None else {}
    compose = {} if order.status == OrderStatus.TERMINATED else (catalog.definition(order.revision).compose.get(
        "services") or {})
    # One-shot jobs: services another one waits for to complete (depends_on condition service_completed_successfully).
    one_shot = {name for service in compose.values() if isinstance(service, dict)
                and isinstance(service.get("depends_on"), dict)
                for name, wait in service["depends_on"].items()
                if isinstance(wait, dict) and wait.get("condition") == "service_completed_successfully"}
    names = sorted(set(compose) | set(containers))
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
        elif not (name in one_shot and state == "exited" and row.exit_code == 0):
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


def order_view(order: Order, catalog: Catalog, public: PublicAddress, *, include_secrets: bool = False,
               include_private: bool = False, include_local_urls: bool = False,
               recent: list[Operation] | None = None, ingress: bool = False,
               mirror: MirrorReading | None = None, new: bool = False) -> dict[str, Any]:
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
    ``new``: the order was created in the caller's own transaction, so it has no backups and no drift record yet
    (neither is read).
    """
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
        "backups": {"last_success_at": None, "last_failure": None} if new else backup_summary(order),
        "node": {"id": order.node, "hostname": order.node_name or order.node} if order.node else None,
        "runtime": runtime_view(order, catalog, mirror),
        "drift": None if new else drift_view(order),
    }
    if include_secrets:
        view["secrets"] = dict(order.secrets or {})
    if include_private:
        view["last_error_detail"] = order.last_error_detail
    return view


def drift_view(order: Order) -> dict[str, Any] | None:
    """What the drift checker made of the order's containers (``app/orders/drift.py``; one indexed query):
    ``{"state": ok | drifted | repairing | failing, "problems": [{"service", "kind", "detail"}], "detected_at",
    "failing_since", "reason", "repairs", "expected_at"}``; ``reason`` says why it is failing (no log lines:
    those are in the private data of the ``drift_failing`` event), ``repairs`` counts the redeploys the checker
    queued within LIVE_DRIFT_WINDOW_SECONDS, ``expected_at`` when what should run was last recorded. None for an
    order no deploy recorded anything for yet (made before migration 0014 and not deployed since)."""
    row = (OrderDrift.select(OrderDrift.state, OrderDrift.problems, OrderDrift.detected_at, OrderDrift.failing_since,
                             OrderDrift.failing_reason, OrderDrift.repairs, OrderDrift.expected_at)
           .where(OrderDrift.order == order.id).first())
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


#: Backup rows that were a successful backup: still in the store, or pruned since.
_SUCCEEDED_BACKUPS = (BackupState.SUCCEEDED, BackupState.DELETED)


_LAST_BACKUP_SUCCESS = PreparedSelect(
    lambda order_id: Backup.select(Backup.finished_at)
    .where((Backup.order == order_id) & Backup.state.in_(_SUCCEEDED_BACKUPS))
    .order_by(Backup.finished_at.desc()).limit(1), "order_id")
_LAST_BACKUP_FAILURE = PreparedSelect(
    lambda order_id: Backup.select(Backup.started_at, Backup.finished_at, Backup.kind, Backup.error)
    .where((Backup.order == order_id) & (Backup.state == BackupState.FAILED)).order_by(Backup.id.desc()).limit(1),
    "order_id")


def backup_summary(order: Order) -> dict[str, Any]:
    """How the order's backups went, from its :class:`~app.models.Backup` rows (two indexed queries):
    ``{"last_success_at": iso | None, "last_failure": {"at", "kind", "error"} | None}``.

    ``last_success_at`` is when the newest successful backup finished (pruned ones count: they succeeded);
    ``last_failure`` is the newest failed attempt, whenever it was (compare its ``at`` with ``last_success_at``),
    its ``error`` the public text (customers see it; the detail stays in the row).
    """
    success = _LAST_BACKUP_SUCCESS.first(order_id=order.id)
    failure = _LAST_BACKUP_FAILURE.first(order_id=order.id)
    return {"last_success_at": timestamp(success.finished_at) if success else None,
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
