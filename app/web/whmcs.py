"""The WHMCS server-module callbacks, one endpoint each, keyed by the WHMCS service id.

Calls record an operation and answer at once; ``wait`` blocks until the
operation ends or the wait runs out. Every call is idempotent: a repeat gets
the same order and operation, or ``unchanged`` when there is nothing to do.
Every lifecycle answer says whether a worker runs the operations (``worker``),
so the module never reports success for work nobody will do.
"""
from __future__ import annotations

import datetime as dt
import logging
import time

from apiflask import APIBlueprint
from flask import current_app

from app.errors import OrderNotFound
from app.models import Operation, Order, Product, utcnow
from app.orders.heartbeat import WorkerStatus, worker_status
from app.orders.service import CustomerInfo, Outcome
from app.orders.usage import collect_usage
from app.presenters import operation_view, order_view, timestamp
from app.web.auth import actor, auth, current_principal
from app.web.schemas import (
    ChangePackageIn,
    CreateIn,
    LifecycleOut,
    FailureQuery,
    FailuresOut,
    ServiceInfoOut,
    ProductListOut,
    SuspendIn,
    TestConnectionOut,
    UsageOut,
    UsageQuery,
    WaitIn,
)

log = logging.getLogger(__name__)
bp = APIBlueprint("whmcs", __name__, url_prefix="/whmcs/v1", tag="WHMCS")
VERSION = "1.0"
SERVICE = "/services/<int(min=1, max=2147483647):service_id>"  # WHMCS ids are 32-bit; larger ones are 404
POLL_SECONDS = 0.2
LIFECYCLE_RESPONSES = {202: "Queued (not started yet) or running (started, not finished); see worker.alive",
                       409: "Conflicts with the order's state, a hostname held by another order (hostname_taken), or "
                            "a change that would leave the customer's data behind (data_risk)",
                       404: "No order for this service (code order_not_found)",
                       422: "Invalid request: unknown product or plan (named with the valid choices), invalid domain"}


def _live():
    return current_app.extensions["live"]


def _order(service_id: int) -> Order:
    order = Order.with_relations().where(Order.whmcs_service_id == service_id).first()
    if order is None:
        raise OrderNotFound(f"no order for WHMCS service {service_id}")
    return order


def _wait_for(operation: Operation, seconds: float) -> Operation:
    """The operation once it ended, or as it is after ``seconds``; polls the database every POLL_SECONDS.

    Holds the calling thread all along: only call it with a slot of the app's ``WaitSlots``.
    """
    deadline = time.monotonic() + seconds
    while operation.state in ("pending", "running") and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        operation = Operation.get_by_id(operation.id)
    return operation


def lifecycle_answer(outcome: Outcome | None, wait: float, unchanged: str = "", *, include_private: bool = False,
                     include_local_urls: bool = False):
    """The uniform answer of every lifecycle call (``LifecycleOut``) and its HTTP status.

    ``result`` follows the operation's state once the call stops waiting: ``queued`` while it is
    ``pending`` (not started, or waiting for a retry), ``running`` once a worker started it (both
    202), ``succeeded`` or ``failed`` when it ended, ``unchanged`` when there was nothing to do
    (200). ``worker`` is ``{"alive": bool, "heartbeat_age_seconds": float | None}``
    (``app/orders/heartbeat.py``): with ``alive`` false, a queued or running operation waits for a
    worker, and ``message`` says so.

    ``wait`` (seconds) waits for the operation only with a free slot of the process's
    ``WaitSlots`` (LIVE_WAIT_SLOTS); without one the call answers at once, as with 0.
    Errors are public texts (the WHMCS client area shows them); ``include_private``
    adds the private detail, for the developer API's admin-only callers, and
    ``include_local_urls`` the endpoints' ``local_url``, for the developer API's staff
    (never for the WHMCS endpoints: the client area shows customers what they answer).
    """
    live = _live()
    if outcome is None:
        return {"result": "unchanged", "message": unchanged, "order": None, "operation": None,
                "worker": _worker_view(worker_status())}, 200
    operation = outcome.operation
    if operation is None:
        order = Order.get_by_id(outcome.order.id)
        return {"result": "unchanged", "message": outcome.message,
                "order": order_view(order, live.catalog, live.settings.public_scheme, include_private=include_private,
                                    include_local_urls=include_local_urls),
                "operation": None, "worker": _worker_view(worker_status())}, 200
    # A waiting call holds a thread: only WaitSlots' bound may wait; past it, answer at once as with wait 0.
    waited = False
    if wait > 0:
        with current_app.extensions["wait_slots"].slot() as waited:
            if waited:
                operation = _wait_for(operation, wait)
    worker = worker_status()  # read after the wait: the answer tells how things are now
    if operation.state == "succeeded":
        result, message = "succeeded", f"{operation.kind} succeeded"
    elif operation.state == "failed":
        # operation.error is the public text; the detail stays in error_detail.
        result, message = "failed", operation.error or f"{operation.kind} failed (operation {operation.id})"
    else:
        result = "running" if operation.state == "running" else "queued"
        message = _unfinished_message(operation, outcome.message, wait, waited, worker)
    order = Order.get_by_id(operation.order_id)
    body = {"result": result, "message": message,
            "order": order_view(order, live.catalog, live.settings.public_scheme, include_private=include_private,
                                include_local_urls=include_local_urls),
            "operation": operation_view(operation, include_private=include_private),
            "worker": _worker_view(worker)}
    return body, 202 if result in ("queued", "running") else 200


def _unfinished_message(operation: Operation, recorded: str, wait: float, waited: bool, worker: WorkerStatus) -> str:
    """The message of a ``queued`` or ``running`` answer, for billing staff (public words only).

    ``recorded`` is the use case's message (``order acme accepted``, ``suspend already under way``),
    used when the call did not wait; ``waited`` tells whether it did.
    """
    kind = operation.kind
    if not waited:
        busy = " (not waited: the bridge is already waiting on its maximum of calls)" if wait > 0 else ""
        message = recorded + busy
    elif operation.state == "running":
        steps = operation.steps or []
        message = f"{kind} still running" + (f": {steps[-1]['message']}" if steps else "")
    elif operation.attempts:
        message = f"{kind} waiting for attempt {operation.attempts + 1} of {operation.max_attempts}" + (
            f" after: {operation.error}" if operation.error else "")
    else:
        message = f"{kind} queued: not started yet"
    if worker.alive:
        return message
    if operation.state == "running":
        return message + "; the bridge's worker stopped during it: it resumes once the worker runs again"
    return message + "; the bridge's worker is not running: it starts once the worker runs again (it is recorded)"


def _worker_view(worker: WorkerStatus) -> dict:
    """The ``worker`` object of a lifecycle answer (``WorkerOut``): never the worker's host name."""
    return {"alive": worker.alive, "heartbeat_age_seconds": worker.age_seconds}


@bp.post("/test-connection")
@bp.auth_required(auth, roles=["whmcs"])
@bp.output(TestConnectionOut)
@bp.doc(summary="Check the URL and the key (WHMCS TestConnection)")
def test_connection():
    live = _live()
    try:
        live.engine.ping()
        docker = "ok"
    except Exception as exc:  # reported, not raised: the connection to the bridge itself works
        log.warning("test-connection: Docker engine unreachable: %s", exc)  # the detail is for the log only
        docker = "unreachable"
    return {"ok": True, "version": VERSION, "key": current_principal().name,
            "products": Product.select().where(Product.valid == True).count(),  # noqa: E712
            "docker": docker}


@bp.get("/products")
@bp.auth_required(auth, roles=["whmcs"])
@bp.output(ProductListOut)
@bp.doc(summary="Products and plans, for the module's config option dropdowns")
def products():
    live = _live()
    items = []
    for product in Product.select().order_by(Product.slug):
        plans = []
        if product.current_revision_id is not None:
            plans = sorted(live.catalog.definition(product.current_revision).plans)
        items.append({"slug": product.slug, "name": product.name, "valid": product.valid, "plans": plans})
    return {"products": items}


@bp.post(f"{SERVICE}/create")
@bp.auth_required(auth, roles=["whmcs"])
@bp.input(CreateIn, arg_name="body")
@bp.output(LifecycleOut)
@bp.doc(summary="Create the order and deploy its stack (WHMCS CreateAccount)", responses=LIFECYCLE_RESPONSES)
def create(service_id: int, body: dict):
    client = body["client"]
    outcome = _live().orders.create(
        service_id=service_id, product=body["product"], plan=body["plan"], username=body.get("username"),
        domain=body.get("domain"), requested_by=actor(),
        customer=CustomerInfo(email=client["email"], whmcs_client_id=client["id"], first_name=client["firstname"],
                              last_name=client["lastname"], company=client["companyname"]),
    )
    return lifecycle_answer(outcome, body["wait"])


@bp.post(f"{SERVICE}/suspend")
@bp.auth_required(auth, roles=["whmcs"])
@bp.input(SuspendIn, arg_name="body")
@bp.output(LifecycleOut)
@bp.doc(summary="Stop the stack, keep its data (WHMCS SuspendAccount)", responses=LIFECYCLE_RESPONSES)
def suspend(service_id: int, body: dict):
    return lifecycle_answer(_live().orders.suspend(_order(service_id), requested_by=actor()), body["wait"])


@bp.post(f"{SERVICE}/unsuspend")
@bp.auth_required(auth, roles=["whmcs"])
@bp.input(WaitIn, arg_name="body")
@bp.output(LifecycleOut)
@bp.doc(summary="Start the stack again (WHMCS UnsuspendAccount)", responses=LIFECYCLE_RESPONSES)
def unsuspend(service_id: int, body: dict):
    return lifecycle_answer(_live().orders.unsuspend(_order(service_id), requested_by=actor()), body["wait"])


@bp.post(f"{SERVICE}/terminate")
@bp.auth_required(auth, roles=["whmcs"])
@bp.input(WaitIn, arg_name="body")
@bp.output(LifecycleOut)
@bp.doc(summary="Archive the data, then remove the stack (WHMCS TerminateAccount)", responses=LIFECYCLE_RESPONSES)
def terminate(service_id: int, body: dict):
    order = _live().orders.by_service_id(service_id)
    outcome = _live().orders.terminate(order, requested_by=actor())
    return lifecycle_answer(outcome, body["wait"], unchanged=f"no order for WHMCS service {service_id}: nothing to terminate")


@bp.post(f"{SERVICE}/change-package")
@bp.auth_required(auth, roles=["whmcs"])
@bp.input(ChangePackageIn, arg_name="body")
@bp.output(LifecycleOut)
@bp.doc(summary="Move to another plan or product (WHMCS ChangePackage)", responses=LIFECYCLE_RESPONSES)
def change_package(service_id: int, body: dict):
    outcome = _live().orders.change_plan(_order(service_id), body["plan"], body.get("product"), requested_by=actor(),
                                         domain=body.get("domain"))
    return lifecycle_answer(outcome, body["wait"])


@bp.post(f"{SERVICE}/restart")
@bp.auth_required(auth, roles=["whmcs"])
@bp.input(WaitIn, arg_name="body")
@bp.output(LifecycleOut)
@bp.doc(summary="Restart every container of the stack (custom button)", responses=LIFECYCLE_RESPONSES)
def restart(service_id: int, body: dict):
    return lifecycle_answer(_live().orders.restart(_order(service_id), requested_by=actor()), body["wait"])


@bp.post(f"{SERVICE}/redeploy")
@bp.auth_required(auth, roles=["whmcs"])
@bp.input(WaitIn, arg_name="body")
@bp.output(LifecycleOut)
@bp.doc(summary="Converge the stack to its definition (admin button)", responses=LIFECYCLE_RESPONSES)
def redeploy(service_id: int, body: dict):
    return lifecycle_answer(_live().orders.redeploy(_order(service_id), requested_by=actor()), body["wait"])


@bp.get(SERVICE)
@bp.auth_required(auth, roles=["whmcs"])
@bp.output(ServiceInfoOut)
@bp.doc(summary="Status, endpoints, progress, last error and recent operations (client area, admin tab)",
        responses={404: "No order for this service"})
def service_info(service_id: int):
    live = _live()
    order = _order(service_id)
    # Read once: the recent operations also tell which one is in progress (unless more than 10 are queued).
    recent = list(Operation.select().where(Operation.order == order).order_by(Operation.id.desc()).limit(10))
    # The client area shows this to the customer: public error texts only, never the private detail.
    view = order_view(order, live.catalog, live.settings.public_scheme, include_secrets=True, include_private=False,
                      recent=recent if len(recent) < 10 else None)
    view["recent_operations"] = [operation_view(op, include_private=False) for op in recent]
    return view


@bp.get("/failures")
@bp.auth_required(auth, roles=["whmcs"])
@bp.input(FailureQuery, location="query", arg_name="query")
@bp.output(FailuresOut)
@bp.doc(summary="Operations that failed since a time, for the module's cron hook to report")
def failures(query: dict):
    since = query.get("since")
    if since is None:
        since = utcnow() - dt.timedelta(hours=24)
    elif since.tzinfo is not None:
        since = since.astimezone(dt.timezone.utc).replace(tzinfo=None)
    failed = (Operation.select(Operation, Order).join(Order)
              .where((Operation.state == "failed") & (Operation.finished_at >= since))
              .order_by(Operation.finished_at))
    return {"since": timestamp(since), "failures": [
        {"service_id": op.order.whmcs_service_id, "instance": op.order.instance, "order_status": op.order.status,
         "operation_id": op.id, "kind": op.kind, "error": op.error or "",  # public text; the detail stays private
         "finished_at": timestamp(op.finished_at)}
        for op in failed]}


@bp.get("/usage")
@bp.auth_required(auth, roles=["whmcs"])
@bp.input(UsageQuery, location="query", arg_name="query")
@bp.output(UsageOut)
@bp.doc(summary="Disk, memory and CPU per service, for all services in one request (UsageUpdate)")
def usage(query: dict):
    live = _live()
    orders = Order.select().where(Order.status != "terminated").order_by(Order.id)
    if query.get("service_id"):
        orders = orders.where(Order.whmcs_service_id.in_(query["service_id"]))
    orders = list(orders)
    limits = {order.id: _memory_limit_mb(live, order) for order in orders}
    items = collect_usage(live.engine, live.settings.deployment, orders, limits)
    return {"services": [vars(item) for item in items]}


def _memory_limit_mb(live, order: Order) -> float | None:
    """Sum of the services' memory limits; None when one service is unlimited."""
    services = live.runner.target(order).stack.services.values()
    limits = [service.mem_limit for service in services]
    return None if not limits or any(limit is None for limit in limits) else round(sum(limits) / 1024 / 1024, 2)

