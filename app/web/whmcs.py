"""The WHMCS server-module callbacks, one endpoint each, keyed by the WHMCS service id.

Calls record an operation and answer at once; ``wait`` blocks until the
operation ends or the wait runs out. Every call is idempotent: a repeat gets
the same order and operation, or ``unchanged`` when there is nothing to do.
Every lifecycle answer says whether a worker runs the operations (``worker``),
so the module never reports success for work nobody will do.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from apiflask import APIBlueprint
from flask import jsonify
from flask.views import MethodView

from app.collaborators import logs, orders, queries, wait_slots
from app.orders.heartbeat import WorkerStatus
from app.orders.lifecycle import CallResult, OperationState
from app.orders.service import CustomerInfo, Outcome
from app.presenters import operation_view
from app.web.auth import actor, auth, current_principal
from app.web.log_answer import LOG_ERRORS, LOG_OUTPUT, log_answer
from app.web.schemas import (
    AccountPageOut,
    AccountsQuery,
    BackupsOut,
    ChangePackageIn,
    ChangePasswordIn,
    CreateIn,
    LifecycleOut,
    LogsQuery,
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

if TYPE_CHECKING:
    from app.models import Operation

bp = APIBlueprint("whmcs", __name__, url_prefix="/whmcs/v1", tag="WHMCS")
VERSION = "1.0"
SERVICE = "/services/<int(min=1, max=2147483647):service_id>"  # WHMCS ids are 32-bit; larger ones are 404
POLL_SECONDS = 0.2
LIFECYCLE_RESPONSES = {202: "Queued (not started yet) or running (started, not finished); see worker.alive",
                       409: "Conflicts with the order's state, a hostname held by another order (hostname_taken), or "
                            "a change that would leave the customer's data behind (data_risk)",
                       404: "No order for this service (code order_not_found)",
                       422: "Invalid request: unknown product or plan (named with the valid choices), invalid domain"}
#: Paths of one backup: ids look like 20261201T083452Z-3f2a9c1b (anything else is a 404).
BACKUP = "/backups/<string(maxlength=64):backup_id>"
BACKUP_STORE_DOWN = {503: "The backup store cannot be reached (code backup_store); nothing was recorded"}
RESTORE_RESPONSES = {**LIFECYCLE_RESPONSES, **BACKUP_STORE_DOWN,
                     404: "No order for this service (order_not_found), or no such backup (not_found)",
                     422: "The backup is of another product, or of another customer's order"}


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
    ``WaitSlots`` (LIVE_WAIT_SLOTS) and while a worker is alive; else the call answers at once, as with 0.
    Errors are public texts (the WHMCS client area shows them); ``include_private``
    adds the private detail, for the developer API's admin-only callers, and
    ``include_local_urls`` the endpoints' ``local_url``, for the developer API's staff
    (never for the WHMCS endpoints: the client area shows customers what they answer).

    The order is the one the use case returned (read in its transaction), read again only after
    a wait, during which the operation changed it.
    """
    if outcome is None:
        return {"result": CallResult.UNCHANGED, "message": unchanged, "order": None, "operation": None,
                "worker": _worker_view(queries.worker_status())}, 200
    operation = outcome.operation
    if operation is None:
        return {"result": CallResult.UNCHANGED, "message": outcome.message,
                "order": queries.order_view(outcome.order, include_private=include_private,
                                            include_local_urls=include_local_urls),
                "operation": None, "worker": _worker_view(queries.worker_status())}, 200
    # A waiting call holds a thread: only WaitSlots' bound may wait; past it, answer at once as with wait 0.
    # Without a live worker nothing will change during the wait: answer at once and hold no slot.
    waited = False
    worker = queries.worker_status()
    if wait > 0 and worker.alive:
        with wait_slots.slot() as waited:
            if waited:
                operation = queries.wait_for_operation(operation, wait, POLL_SECONDS)
        worker = queries.worker_status()  # read after the wait: the answer tells how things are now
    result = CallResult.of(operation.state)
    if result == CallResult.SUCCEEDED:
        message = f"{operation.kind} succeeded"
    elif result == CallResult.FAILED:
        # operation.error is the public text; the detail stays in error_detail.
        message = operation.error or f"{operation.kind} failed (operation {operation.id})"
    else:
        message = _unfinished_message(operation, outcome.message, wait, waited, worker)
    order = queries.order(operation.order_id) if waited else outcome.order
    # A new order's only operation is the one just recorded, and it has no backups: nothing to read back.
    new = operation if outcome.created and not waited else None
    body = {"result": result, "message": message,
            "order": queries.order_view(order, include_private=include_private, include_local_urls=include_local_urls,
                                        new=new),
            "operation": operation_view(operation, include_private=include_private),
            "worker": _worker_view(worker)}
    return body, 202 if result in (CallResult.QUEUED, CallResult.RUNNING) else 200


def _unfinished_message(operation: Operation, recorded: str, wait: float, waited: bool, worker: WorkerStatus) -> str:
    """The message of a ``queued`` or ``running`` answer, for billing staff (public words only).

    ``recorded`` is the use case's message (``order acme accepted``, ``suspend already under way``),
    used when the call did not wait; ``waited`` tells whether it did.
    """
    kind = operation.kind
    if not waited:
        busy = (" (not waited: the bridge is already waiting on its maximum of calls)" if wait > 0 and worker.alive
                else "")
        message = recorded + busy
    elif operation.state == OperationState.RUNNING:
        steps = operation.steps or []
        message = f"{kind} still running" + (f": {steps[-1]['message']}" if steps else "")
    elif operation.attempts:
        message = f"{kind} waiting for attempt {operation.attempts + 1} of {operation.max_attempts}" + (
            f" after: {operation.error}" if operation.error else "")
    else:
        message = f"{kind} queued: not started yet"
    if worker.alive:
        return message
    if operation.state == OperationState.RUNNING:
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
    checks = queries.connection_checks()
    return {"ok": True, "version": VERSION, "key": current_principal().name, "products": checks["products"],
            "docker": checks["docker"]}


@bp.get("/products")
@bp.auth_required(auth, roles=["whmcs"])
@bp.output(ProductListOut)
@bp.doc(summary="Products and plans, for the module's config option dropdowns")
def products():
    return {"products": queries.whmcs_products()}


@bp.post(f"{SERVICE}/create")
@bp.auth_required(auth, roles=["whmcs"])
@bp.input(CreateIn, arg_name="body")
@bp.output(LifecycleOut)
@bp.doc(summary="Create the order and deploy its stack (WHMCS CreateAccount)", responses=LIFECYCLE_RESPONSES)
def create(service_id: int, body: dict):
    client = body["client"]
    outcome = orders.create(
        service_id=service_id, product=body["product"], plan=body["plan"], username=body.get("username"),
        domain=body.get("domain"), password=body.get("password") or None, requested_by=actor(),
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
    return lifecycle_answer(orders.suspend(queries.order_for_service(service_id), requested_by=actor()), body["wait"])


@bp.post(f"{SERVICE}/unsuspend")
@bp.auth_required(auth, roles=["whmcs"])
@bp.input(WaitIn, arg_name="body")
@bp.output(LifecycleOut)
@bp.doc(summary="Start the stack again (WHMCS UnsuspendAccount)", responses=LIFECYCLE_RESPONSES)
def unsuspend(service_id: int, body: dict):
    return lifecycle_answer(orders.unsuspend(queries.order_for_service(service_id), requested_by=actor()), body["wait"])


@bp.post(f"{SERVICE}/terminate")
@bp.auth_required(auth, roles=["whmcs"])
@bp.input(WaitIn, arg_name="body")
@bp.output(LifecycleOut)
@bp.doc(summary="Archive the data, then remove the stack (WHMCS TerminateAccount)", responses=LIFECYCLE_RESPONSES)
def terminate(service_id: int, body: dict):
    order = queries.order_for_service(service_id, required=False)
    outcome = orders.terminate(order, requested_by=actor())
    return lifecycle_answer(outcome, body["wait"], unchanged=f"no order for WHMCS service {service_id}: nothing to terminate")


@bp.post(f"{SERVICE}/change-package")
@bp.auth_required(auth, roles=["whmcs"])
@bp.input(ChangePackageIn, arg_name="body")
@bp.output(LifecycleOut)
@bp.doc(summary="Move to another plan or product (WHMCS ChangePackage)", responses=LIFECYCLE_RESPONSES)
def change_package(service_id: int, body: dict):
    outcome = orders.change_plan(queries.order_for_service(service_id), body["plan"], body.get("product"),
                                 requested_by=actor(), domain=body.get("domain"))
    return lifecycle_answer(outcome, body["wait"])


@bp.post(f"{SERVICE}/change-password")
@bp.auth_required(auth, roles=["whmcs"])
@bp.input(ChangePasswordIn, arg_name="body")
@bp.output(LifecycleOut)
@bp.doc(summary="Apply a new customer password to the running stack (WHMCS ChangePassword)",
        responses={**LIFECYCLE_RESPONSES,
                   409: "The product declares no customer password (product.yml credential; nothing recorded), or "
                        "the order is not active",
                   422: "The password breaks the product's rules (length, symbols); the message names the rules"})
def change_password(service_id: int, body: dict):
    outcome = orders.change_password(queries.order_for_service(service_id), body["password"], requested_by=actor())
    return lifecycle_answer(outcome, body["wait"])


@bp.post(f"{SERVICE}/restart")
@bp.auth_required(auth, roles=["whmcs"])
@bp.input(WaitIn, arg_name="body")
@bp.output(LifecycleOut)
@bp.doc(summary="Restart every container of the stack (custom button)", responses=LIFECYCLE_RESPONSES)
def restart(service_id: int, body: dict):
    return lifecycle_answer(orders.restart(queries.order_for_service(service_id), requested_by=actor()), body["wait"])


@bp.post(f"{SERVICE}/redeploy")
@bp.auth_required(auth, roles=["whmcs"])
@bp.input(WaitIn, arg_name="body")
@bp.output(LifecycleOut)
@bp.doc(summary="Converge the stack to its definition (admin button)", responses=LIFECYCLE_RESPONSES)
def redeploy(service_id: int, body: dict):
    return lifecycle_answer(orders.redeploy(queries.order_for_service(service_id), requested_by=actor()), body["wait"])


class ServiceBackups(MethodView):
    """``/services/{id}/backups``: one rule for both methods, so an id out of range is a 404 for each (two rules of
    one path make Werkzeug answer 405 for the method whose rule comes second)."""

    @bp.auth_required(auth, roles=["whmcs"])
    @bp.output(BackupsOut)
    @bp.doc(summary="The service's backups, newest first, and the final backups staff may restore into it "
                    "(client area)",
            responses={404: "No order for this service (code order_not_found)", **BACKUP_STORE_DOWN})
    def get(self, service_id: int):
        return queries.order_backups(queries.order_for_service(service_id))

    @bp.auth_required(auth, roles=["whmcs"])
    @bp.input(WaitIn, arg_name="body")
    @bp.output(LifecycleOut)
    @bp.doc(summary="Back the service's data up now (client area and admin button \"Back up now\")",
            responses=LIFECYCLE_RESPONSES)
    def post(self, service_id: int, body: dict):
        return lifecycle_answer(orders.back_up(queries.order_for_service(service_id), requested_by=actor()),
                                body["wait"])


bp.add_url_rule(f"{SERVICE}/backups", view_func=ServiceBackups.as_view("service_backups"))


@bp.post(f"{SERVICE}{BACKUP}/restore")
@bp.auth_required(auth, roles=["whmcs"])
@bp.input(WaitIn, arg_name="body")
@bp.output(LifecycleOut)
@bp.doc(summary="Replace the service's data with a backup's: its own, or a final backup listed as restorable "
                "(after a safety backup; rolled back if it fails)", responses=RESTORE_RESPONSES)
def restore(service_id: int, backup_id: str, body: dict):
    order = queries.order_for_service(service_id)
    manifest = queries.find_backup(backup_id)
    outcome = orders.restore(order, backup_id, product=manifest.product, source_order_id=manifest.order_id,
                             requested_by=actor())
    return lifecycle_answer(outcome, body["wait"])


@bp.get(f"{SERVICE}/logs")
@bp.auth_required(auth, roles=["whmcs"])
@bp.input(LogsQuery, location="query", arg_name="query")
@bp.output(**LOG_OUTPUT)
@bp.doc(summary="The service's logs as plain text, streamed (client area: the last 100 lines of one service, "
                "`?service=<name>`; the services are in X-Live-Order-Services); the order's generated "
                "passwords masked, errors in public words", responses=LOG_ERRORS)
def service_logs(service_id: int, query: dict):
    return log_answer(logs.open(queries.order_for_service(service_id), service=query["service"], tail=query["tail"],
                                since=query["since"]))


@bp.get(SERVICE)
@bp.auth_required(auth, roles=["whmcs"])
@bp.output(ServiceInfoOut)
@bp.doc(summary="Status, endpoints, progress, last error and recent operations (client area, admin tab)",
        responses={404: "No order for this service"})
def service_info(service_id: int):
    # The flat serialiser: the presenters' dict already has ServiceInfoOut's shape and values
    # (tests/api/test_flat_status.py holds them equal to the schema's dump), so it is sent as it is,
    # without marshmallow's dump of the nested schemas; the schema above still documents it.
    return jsonify(queries.service_info(service_id))


@bp.get("/failures")
@bp.auth_required(auth, roles=["whmcs"])
@bp.input(FailureQuery, location="query", arg_name="query")
@bp.output(FailuresOut)
@bp.doc(summary="Operations that failed since a time, for the module's cron hook to report")
def failures(query: dict):
    return queries.failures(query.get("since"))


@bp.get("/usage")
@bp.auth_required(auth, roles=["whmcs"])
@bp.input(UsageQuery, location="query", arg_name="query")
@bp.output(UsageOut)
@bp.doc(summary="Disk, memory and CPU per service, for all services in one request (UsageUpdate)")
def usage(query: dict):
    return {"services": queries.usage(query.get("service_id"))}


@bp.get("/accounts")
@bp.auth_required(auth, roles=["whmcs"])
@bp.input(AccountsQuery, location="query", arg_name="query")
@bp.output(AccountPageOut)
@bp.doc(summary="Every order the bridge knows, a page at a time by WHMCS service id (WHMCS Server Sync: "
                "ListAccounts); follow `next` as `after` until it is null",
        responses={422: "A bad `after` (0 or more) or `limit` (1 to 1000): the message names the parameter"})
def accounts(query: dict):
    return queries.accounts(query["after"], query["limit"])
