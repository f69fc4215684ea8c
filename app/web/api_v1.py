"""The developer REST API: orders, operations, events, products, customers."""
from __future__ import annotations

from typing import TYPE_CHECKING

from apiflask import APIBlueprint
from flask.views import MethodView

from app.collaborators import catalog, logs, orders, queries
from app.errors import DataRiskError
from app.orders.lifecycle import CallResult
from app.presenters import timestamp
from app.web.auth import actor, auth, current_principal
from app.web.errors import caller_sees_detail
from app.web.log_answer import LOG_ERRORS, LOG_OUTPUT, log_answer
from app.web.schemas import (
    ApiLifecycleOut,
    BackupsOut,
    CustomerOut,
    CustomerPageOut,
    CatalogStatusOut,
    ChangePlanIn,
    CustomerQuery,
    EventPageOut,
    LogsQuery,
    MoveIn,
    OperationListOut,
    OperationOut,
    OrderOut,
    OrderPageOut,
    OrderQuery,
    PageQuery,
    ProductUpgradeIn,
    ProductUpgradeOut,
    ProductOut,
    ProductsOut,
    RevisionsOut,
    SyncOut,
    UpgradeIn,
    UpgradeOut,
    WaitIn,
)

if TYPE_CHECKING:
    from app.models import Order

bp = APIBlueprint("api_v1", __name__, url_prefix="/api/v1", tag="Developer API")
NOT_FOUND = {404: "Not found"}
# What read keys see instead of the catalog source's error text (admin keys get that as last_error_detail).
CATALOG_SYNC_FAILED = "the catalog source could not be read; the last good catalog stays in use"
ID = "<int(min=1, max=2147483647):{}>"  # database ids are 32-bit; larger ones are 404


def _view_flags() -> dict[str, bool]:
    """What this caller sees of an order (:meth:`OrderQueries.order_view`'s flags)."""
    # Generated passwords and private error detail only for admin keys; read keys never see them.
    # Local URLs are for staff (read and admin keys), never for the WHMCS endpoints.
    return {"include_secrets": "admin" in current_principal().grants, "include_private": caller_sees_detail(),
            "include_local_urls": True}


def _order_view(order: Order) -> dict:
    return queries.order_view(order, **_view_flags())


@bp.get("/orders")
@bp.auth_required(auth, roles=["read"])
@bp.input(OrderQuery, location="query", arg_name="query")
@bp.output(OrderPageOut)
@bp.doc(summary="List orders, newest first, with filters")
def list_orders(query: dict):
    return queries.order_page(status=query["status"], product=query["product"], customer_id=query["customer_id"],
                              service_id=query["service_id"], page=query["page"], per_page=query["per_page"],
                              **_view_flags())


@bp.get(f"/orders/{ID.format('order_id')}")
@bp.auth_required(auth, roles=["read"])
@bp.output(OrderOut)
@bp.doc(summary="One order", responses=NOT_FOUND)
def get_order(order_id: int):
    return _order_view(queries.order(order_id))


@bp.get(f"/orders/{ID.format('order_id')}/operations")
@bp.auth_required(auth, roles=["read"])
@bp.output(OperationListOut)
@bp.doc(summary="The order's operations, newest first", responses=NOT_FOUND)
def order_operations(order_id: int):
    return {"items": queries.order_operations(queries.order(order_id), include_private=caller_sees_detail())}


@bp.get(f"/orders/{ID.format('order_id')}/events")
@bp.auth_required(auth, roles=["read"])
@bp.input(PageQuery, location="query", arg_name="query")
@bp.output(EventPageOut)
@bp.doc(summary="The order's event log, newest first", responses=NOT_FOUND)
def order_events(order_id: int, query: dict):
    order = queries.order(order_id)
    # An event's error detail (in its data) is for admin keys only.
    return queries.order_events(order, page=query["page"], per_page=query["per_page"],
                                include_private=caller_sees_detail())


@bp.get(f"/orders/{ID.format('order_id')}/logs")
@bp.auth_required(auth, roles=["read"])
@bp.input(LogsQuery, location="query", arg_name="query")
@bp.output(**LOG_OUTPUT)
@bp.doc(summary="The order's service logs as plain text, streamed: the last `tail` lines of one service or of each, "
                "since a time; the order's secrets (its generated passwords) masked", responses=LOG_ERRORS)
def order_logs(order_id: int, query: dict):
    return log_answer(logs.open(queries.order(order_id), service=query["service"], tail=query["tail"],
                                since=query["since"], include_private=caller_sees_detail()))


class OrderBackups(MethodView):
    """``/orders/{id}/backups``: one rule for both methods, so an id out of range is a 404 for each (two rules of
    one path make Werkzeug answer 405 for the method whose rule comes second)."""

    @bp.auth_required(auth, roles=["read"])
    @bp.output(BackupsOut)
    @bp.doc(summary="The order's backups, newest first, and the final backups that may be restored into it",
            responses={404: "Not found", 503: "The backup store cannot be reached (code backup_store)"})
    def get(self, order_id: int):
        return queries.order_backups(queries.order(order_id))

    @bp.auth_required(auth, roles=["admin"])
    @bp.input(WaitIn, arg_name="body")
    @bp.output(ApiLifecycleOut)
    @bp.doc(summary="Back the order's data up now (an on_demand backup operation)",
            responses={202: "Queued, or still running after the wait", 404: "Not found",
                       409: "The order has no data to back up yet, or is terminated (code conflict)"})
    def post(self, order_id: int, body: dict):
        from app.web.whmcs import lifecycle_answer

        outcome = orders.back_up(queries.order(order_id), requested_by=actor())
        return lifecycle_answer(outcome, body["wait"], include_private=caller_sees_detail(), include_local_urls=True)


bp.add_url_rule(f"/orders/{ID.format('order_id')}/backups", view_func=OrderBackups.as_view("order_backups"))


@bp.post(f"/orders/{ID.format('order_id')}/backups/<string(maxlength=64):backup_id>/restore")
@bp.auth_required(auth, roles=["admin"])
@bp.input(WaitIn, arg_name="body")
@bp.output(ApiLifecycleOut)
@bp.doc(summary="Replace the order's data with a backup's: its own, or a final backup of the same customer's "
                "terminated order of the same product (a safety backup first; rolled back if it fails)",
        responses={202: "Queued, or still running after the wait",
                   404: "No such order or backup (another customer's backup is not found either)",
                   409: "The order is not active (code conflict)",
                   422: "The backup is of another product, or of another order that is not terminated",
                   503: "The backup store cannot be reached (code backup_store)"})
def restore_order(order_id: int, backup_id: str, body: dict):
    from app.web.whmcs import lifecycle_answer

    order = queries.order(order_id)
    manifest = queries.find_backup(backup_id)
    outcome = orders.restore(order, backup_id, product=manifest.product, source_order_id=manifest.order_id,
                             requested_by=actor())
    return lifecycle_answer(outcome, body["wait"], include_private=caller_sees_detail(), include_local_urls=True)


@bp.post(f"/orders/{ID.format('order_id')}/move")
@bp.auth_required(auth, roles=["admin"])
@bp.input(MoveIn, arg_name="body")
@bp.output(ApiLifecycleOut)
@bp.doc(summary="Move the order to another swarm node (LIVE_ORCHESTRATOR=swarm): a backup, restored on the node, "
                "and the order run there; a failure leaves it running where it was",
        responses={202: "Queued, or still running after the wait", 404: "Not found",
                   409: "The order is neither active nor suspended (code conflict)",
                   422: "One engine (no swarm), an unknown node, or the order's own node",
                   503: "The node is not ready, active and reachable, or has no room for the order (code "
                        "no_capacity)"})
def move_order(order_id: int, body: dict):
    from app.web.whmcs import lifecycle_answer

    outcome = orders.move(queries.order(order_id), body["node"], requested_by=actor())
    return lifecycle_answer(outcome, body["wait"], include_private=caller_sees_detail(), include_local_urls=True)


@bp.get(f"/operations/{ID.format('operation_id')}")
@bp.auth_required(auth, roles=["read"])
@bp.output(OperationOut)
@bp.doc(summary="One operation, with its progress steps", responses=NOT_FOUND)
def get_operation(operation_id: int):
    return queries.operation_view(operation_id, include_private=caller_sees_detail())


@bp.get("/products")
@bp.auth_required(auth, roles=["read"])
@bp.output(ProductsOut)
@bp.doc(summary="Products with plans, endpoints and validation errors")
def list_products():
    return {"items": queries.products()}


@bp.get("/products/<slug>")
@bp.auth_required(auth, roles=["read"])
@bp.output(ProductOut)
@bp.doc(summary="One product", responses=NOT_FOUND)
def get_product(slug: str):
    return queries.product(slug)


@bp.get("/products/<slug>/revisions")
@bp.auth_required(auth, roles=["read"])
@bp.output(RevisionsOut)
@bp.doc(summary="Every recorded revision of a product, newest first", responses=NOT_FOUND)
def product_revisions(slug: str):
    return {"items": queries.product_revisions(slug)}


@bp.post("/products/sync")
@bp.auth_required(auth, roles=["admin"])
@bp.output(SyncOut)
@bp.doc(summary="Read the config repository now and record new revisions")
def sync_products():
    return vars(catalog.sync())


@bp.post(f"/orders/{ID.format('order_id')}/upgrade")
@bp.auth_required(auth, roles=["admin"])
@bp.input(UpgradeIn, arg_name="body")
@bp.output(UpgradeOut)
@bp.doc(summary="Move an order to another revision of its product (or preview it with dry_run)",
        responses={202: "Accepted, or still running after the wait", 404: "Not found",
                   409: "The revision would leave the order's data behind (code data_risk); see allow_data_risk",
                   422: "Invalid revision"})
def upgrade_order(order_id: int, body: dict):
    return _upgrade(queries.order(order_id), body["revision"], body["dry_run"], body["wait"],
                    body["allow_data_risk"])


@bp.post(f"/orders/{ID.format('order_id')}/change-plan")
@bp.auth_required(auth, roles=["admin"])
@bp.input(ChangePlanIn, arg_name="body")
@bp.output(UpgradeOut)
@bp.doc(summary="Move an order to another plan, product or domain (or preview it with dry_run)",
        responses={202: "Accepted, or still running after the wait", 404: "Not found",
                   409: "The change would leave the order's data behind (code data_risk; see allow_data_risk), "
                        "or the hostname belongs to another order (hostname_taken)",
                   422: "Unknown product or plan (named with the valid choices), invalid domain"})
def change_plan(order_id: int, body: dict):
    from app.web.whmcs import lifecycle_answer

    order = queries.order(order_id)
    if body["dry_run"]:
        plan, preview = orders.preview_change_plan(order, body["plan"], body["product"])
        return {"result": CallResult.PREVIEW, "message": f"plan {order.plan} -> {plan}, revision {preview['from']} -> "
                                                f"{preview['to']}",
                "order": _order_view(order), "operation": None, "preview": preview}, 200
    outcome = orders.change_plan(order, body["plan"], body["product"], requested_by=actor(), domain=body["domain"],
                                 allow_data_risk=body["allow_data_risk"])
    answer, status = lifecycle_answer(outcome, body["wait"], include_private=caller_sees_detail())
    return {**answer, "preview": None}, status


@bp.post("/products/<slug>/upgrade")
@bp.auth_required(auth, roles=["admin"])
@bp.input(ProductUpgradeIn, arg_name="body")
@bp.output(ProductUpgradeOut)
@bp.doc(summary="Move every order of a product to a revision (or preview it with dry_run)", responses=NOT_FOUND)
def upgrade_product(slug: str, body: dict):
    answers = []
    for order in queries.product_orders(slug, require_product=True):
        try:
            answers.append(_upgrade(order, body["revision"], body["dry_run"], 0, body["allow_data_risk"])[0])
        except DataRiskError as exc:  # one order's data risk does not stop the others
            answers.append({"result": CallResult.REFUSED, "message": str(exc), "order": _order_view(order),
                            "operation": None, "preview": None})
    return {"orders": answers}


def _upgrade(order: Order, revision: str | None, dry_run: bool, wait: float, allow_data_risk: bool):
    from app.web.whmcs import lifecycle_answer

    if dry_run:
        preview = orders.preview_upgrade(order, revision)
        return {"result": CallResult.PREVIEW, "message": f"revision {preview['from']} -> {preview['to']}",
                "order": _order_view(order), "operation": None, "preview": preview}, 200
    outcome = orders.upgrade(order, revision, requested_by=actor(), allow_data_risk=allow_data_risk)
    body, status = lifecycle_answer(outcome, wait, include_private=caller_sees_detail(), include_local_urls=True)
    return {**body, "preview": None}, status


@bp.get("/catalog")
@bp.auth_required(auth, roles=["read"])
@bp.output(CatalogStatusOut)
@bp.doc(summary="Where the catalog comes from and how its last sync went")
def catalog_status():
    state = queries.catalog_status()
    # The source's address (a host path, GitLab's URL and project) is for admin keys; others see its kind.
    source = state.source if caller_sees_detail() else state.source.split(" ", 1)[0]
    view = {"source": source, "commit": state.commit,
            "last_attempt_at": timestamp(state.last_attempt_at), "last_success_at": timestamp(state.last_success_at),
            "last_error": CATALOG_SYNC_FAILED if state.last_error else None,
            "sync_requested": state.sync_requested}
    if caller_sees_detail():
        view["last_error_detail"] = state.last_error
    return view


@bp.get("/customers")
@bp.auth_required(auth, roles=["read"])
@bp.input(CustomerQuery, location="query", arg_name="query")
@bp.output(CustomerPageOut)
@bp.doc(summary="List customers")
def list_customers(query: dict):
    return queries.customer_page(query["email"], query["page"], query["per_page"])


@bp.get(f"/customers/{ID.format('customer_id')}")
@bp.auth_required(auth, roles=["read"])
@bp.output(CustomerOut)
@bp.doc(summary="One customer", responses=NOT_FOUND)
def get_customer(customer_id: int):
    return queries.customer(customer_id)
