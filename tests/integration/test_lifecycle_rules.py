"""The order service refuses and accepts lifecycle calls by the transition table (app/orders/lifecycle.py) exactly as
it did before the table existed, and statuses, kinds and states are stored as plain text (SQLite and PostgreSQL).

No engine is needed: the calls only record operations; the order's status is set directly.
"""
from __future__ import annotations

import pytest

from app.errors import Conflict
from app.models import Operation, Order
from app.orders.lifecycle import OperationKind, OperationState, OrderStatus

ACCEPTED = "accepted"

# (status, kind) -> ACCEPTED, ("unchanged", message) or ("conflict", message); {i} is the instance. Written out by
# hand from the behaviour before issue 11 (docs/OPERATIONS.md, "Order life").
EXPECTED = {
    "pending": {"suspend": ACCEPTED, "unsuspend": ACCEPTED, "redeploy": ACCEPTED, "restart": ACCEPTED,
                "terminate": ACCEPTED},
    "active": {"suspend": ACCEPTED, "unsuspend": ("unchanged", "order already active"), "redeploy": ACCEPTED,
               "restart": ACCEPTED, "terminate": ACCEPTED},
    "suspended": {"suspend": ("unchanged", "order already suspended"), "unsuspend": ACCEPTED, "redeploy": ACCEPTED,
                  "restart": ("conflict", "order {i} is suspended; unsuspend it instead of restarting"),
                  "terminate": ACCEPTED},
    "failed": {"suspend": ACCEPTED, "unsuspend": ACCEPTED, "redeploy": ACCEPTED, "restart": ACCEPTED,
               "terminate": ACCEPTED},
    "terminated": {"suspend": ("conflict", "order {i} is terminated"), "unsuspend": ("conflict", "order {i} is terminated"),
                   "redeploy": ("conflict", "order {i} is terminated"), "restart": ("conflict", "order {i} is terminated"),
                   "terminate": ("unchanged", "order already terminated")},
}


def _order_in(live, make_customer, status: str, service_id: int = 901) -> Order:
    """An order of busybox-demo in ``status`` with no unfinished operation."""
    outcome = live.orders.create(service_id=service_id, customer=make_customer(), product="busybox-demo", plan="small",
                                 username=f"rules{service_id}")
    Operation.update(state=OperationState.SUCCEEDED).where(Operation.order == outcome.order).execute()
    Order.update(status=status).where(Order.id == outcome.order.id).execute()
    return Order.get_by_id(outcome.order.id)


def _call(live, order: Order, kind: str):
    if kind == "change_plan":
        return live.orders.change_plan(order, order.plan)
    if kind == "upgrade":
        return live.orders.upgrade(order)
    return getattr(live.orders, kind)(order)


@pytest.mark.parametrize("status", list(EXPECTED))
def test_each_call_from_each_status(live, make_customer, status):
    order = _order_in(live, make_customer, status)
    for kind, expected in EXPECTED[status].items():
        if expected == ACCEPTED:
            outcome = _call(live, order, kind)
            assert (outcome.message, outcome.operation.kind, outcome.operation.state) == (
                f"{kind} accepted", kind, "pending"), (status, kind)
            Operation.update(state=OperationState.SUCCEEDED).where(Operation.id == outcome.operation.id).execute()
        elif expected[0] == "unchanged":
            outcome = _call(live, order, kind)
            assert (outcome.operation, outcome.message) == (None, expected[1]), (status, kind)
        else:
            with pytest.raises(Conflict) as refused:
                _call(live, order, kind)
            assert (refused.value.message, refused.value.http_status) == (expected[1].format(i=order.instance), 409)
        assert Order.get_by_id(order.id).status == status  # a call only records intent


@pytest.mark.parametrize("status", list(EXPECTED))
def test_changes_to_what_the_order_has_already(live, make_customer, status):
    order = _order_in(live, make_customer, status)
    if status == "terminated":
        for kind in ("change_plan", "upgrade"):
            with pytest.raises(Conflict, match=f"^order {order.instance} is terminated$"):
                _call(live, order, kind)
        return
    assert _call(live, order, "change_plan").message == "order already on plan small"
    assert _call(live, order, "upgrade").message == f"order already at revision {order.revision.label}"


@pytest.mark.parametrize(("status", "message"), [
    ("pending", "order already pending"), ("active", "order already active"), ("suspended", "order already suspended"),
])
def test_a_repeated_create_of_a_live_order_changes_nothing(live, make_customer, status, message):
    order = _order_in(live, make_customer, status)
    again = live.orders.create(service_id=901, customer=make_customer(), product="busybox-demo", plan="small")
    assert (again.order.id, again.operation, again.message) == (order.id, None, message)


def test_a_repeated_create_retries_a_failed_order_and_refuses_a_terminated_one(live, make_customer):
    order = _order_in(live, make_customer, "failed")
    again = live.orders.create(service_id=901, customer=make_customer(), product="busybox-demo", plan="small")
    assert (again.order.id, again.message, again.operation.kind) == (order.id, "provisioning retried", "create")
    same = live.orders.create(service_id=901, customer=make_customer(), product="busybox-demo", plan="small")
    assert (same.operation.id, same.message) == (again.operation.id, "provisioning is already under way")
    _order_in(live, make_customer, "terminated", service_id=902)
    with pytest.raises(Conflict, match="^service 902 was terminated; create a new service to order again$"):
        live.orders.create(service_id=902, customer=make_customer(), product="busybox-demo", plan="small")


def test_a_queued_operation_is_found_before_a_refusal_except_on_a_terminated_order(live, make_customer):
    order = _order_in(live, make_customer, "active")
    restart = live.orders.restart(order)
    live.orders.suspend(order)
    Order.update(status=OrderStatus.SUSPENDED).where(Order.id == order.id).execute()  # the suspend ran first
    again = live.orders.restart(order)
    assert (again.operation.id, again.message) == (restart.operation.id, "restart already under way")
    Order.update(status=OrderStatus.TERMINATED).where(Order.id == order.id).execute()
    with pytest.raises(Conflict, match=f"^order {order.instance} is terminated$"):
        live.orders.suspend(order)
    assert live.orders.terminate(order).message == "order already terminated"


def test_unsuspend_of_an_active_order_with_a_queued_suspend_is_recorded(live, make_customer):
    order = _order_in(live, make_customer, "active")
    live.orders.suspend(order)
    assert live.orders.unsuspend(order).message == "unsuspend accepted"


def test_statuses_kinds_and_states_are_stored_as_plain_text(live, make_customer):
    outcome = live.orders.create(service_id=903, customer=make_customer(), product="busybox-demo", plan="small",
                                 username="stored")
    order, operation = outcome.order, outcome.operation
    assert (order.status, operation.kind, operation.state) == ("pending", "create", "pending")
    Operation.update(state=OperationState.RUNNING).where(Operation.id == operation.id).execute()
    order.status = OrderStatus.SUSPENDED
    order.save()
    change = live.orders.change_plan(Order.get_by_id(order.id), "large")
    assert change.operation.kind is OperationKind.CHANGE_PLAN  # as recorded, before it is read back
    cursor = live.db.execute_sql(
        "SELECT o.status, p.kind, p.state FROM live_order o JOIN operation p ON p.order_id = o.id "
        "WHERE o.id = %s ORDER BY p.id" % int(order.id))
    rows = cursor.fetchall()
    assert rows == [("suspended", "create", "running"), ("suspended", "change_plan", "pending")]
    assert all(type(value) is str for row in rows for value in row)
    assert live.db.execute_sql("SELECT COUNT(*) FROM live_order WHERE status = 'suspended'").fetchone()[0] == 1
    read = Order.get_by_id(order.id)
    assert type(read.status) is str and read.status == OrderStatus.SUSPENDED
