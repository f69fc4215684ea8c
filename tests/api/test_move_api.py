"""POST /api/v1/orders/{id}/move (issue 14): the admin call that queues moving an order to another swarm node.

The engine's nodes are stubbed (``Engine.nodes``): the call is checked up to the recorded operation and its
refusals; the move itself runs on the in-memory swarm in tests/unit/test_move_order.py and on the real two-node
swarm in tests/integration/test_swarm_move.py.
"""
from __future__ import annotations

import pytest

from app.models import Operation, Order, utcnow
from app.stacks.engine import NodeState
from tests.api.conftest import client_payload

GIB = 1024 ** 3


def swarm_node(name: str, *, free_gib: float = 8, ready: bool = True) -> NodeState:
    return NodeState(id=f"id-{name}", hostname=name, labels={}, ready=ready, active=True,
                     memory_bytes=int(8 * GIB), reserved_bytes=int((8 - free_gib) * GIB), engine="")


@pytest.fixture
def nodes(api, monkeypatch):
    """The swarm's nodes as the engine answers them (a list the test may change)."""
    found = [swarm_node("n1"), swarm_node("n2")]
    monkeypatch.setattr(api.app.extensions["live"].engine, "nodes", lambda: list(found))
    return found


def placed_order(api, service_id: int = 901, status: str = "active", node: str | None = "id-n1") -> Order:
    """An order of service ``service_id`` whose create is done, in ``status``, placed on ``node``."""
    answer = api.post(f"/whmcs/v1/services/{service_id}/create", client_payload(username=f"mv{service_id}"))
    assert answer.status_code == 202, answer.json
    Operation.update(state="succeeded", finished_at=utcnow()).where(
        Operation.id == answer.json["operation"]["id"]).execute()
    Order.update(status=status, node=node, node_name=node and node.removeprefix("id-")).where(
        Order.whmcs_service_id == service_id).execute()
    return Order.get(Order.whmcs_service_id == service_id)


def move(api, order: Order, node: str, scope: str = "admin", **body):
    return api.post(f"/api/v1/orders/{order.id}/move", {"node": node, **body}, scope=scope)


def test_a_move_is_queued_with_the_node_id_and_answered_like_a_lifecycle_call(api, nodes):
    order = placed_order(api)
    answer = move(api, order, "n2")
    assert answer.status_code == 202, answer.json
    body = answer.json
    assert body["result"] == "queued" and body["message"].startswith("move accepted")
    assert body["operation"]["kind"] == "move" and body["operation"]["params"] == {"node": "id-n2"}
    assert body["order"]["node"] == {"id": "id-n1", "hostname": "n1"}
    again = move(api, order, "id-n2")  # the same move, by id: the queued operation
    assert again.status_code == 202 and again.json["operation"]["id"] == body["operation"]["id"]
    assert again.json["message"].startswith("move already under way")
    operation = Operation.get_by_id(body["operation"]["id"])
    assert operation.requested_by == "key:test-admin"


def test_a_suspended_order_moves_too(api, nodes):
    order = placed_order(api, 902, status="suspended")
    assert move(api, order, "n2").status_code == 202


@pytest.mark.parametrize(("node", "status", "code", "text"), [
    ("n9", 422, "validation_error", "no swarm node 'n9': the nodes are n1 (id-n1), n2 (id-n2)"),
    ("n1", 422, "validation_error", "is on node n1 already: nothing to move"),
])
def test_an_unknown_node_or_its_own_node_is_refused(api, nodes, node, status, code, text):
    order = placed_order(api)
    answer = move(api, order, node)
    assert answer.status_code == status, answer.json
    assert answer.json["error"]["code"] == code and text in answer.json["error"]["message"]
    assert not Operation.select().where(Operation.kind == "move").exists()


def test_a_node_without_room_is_no_capacity_naming_it(api, nodes):
    order = placed_order(api)
    nodes[1] = swarm_node("n2", ready=False)
    answer = move(api, order, "n2")
    assert answer.status_code == 503, answer.json
    assert answer.json["error"]["code"] == "no_capacity"
    assert answer.json["error"]["details"] == {"detail": "node n2 cannot take orders: not ready"}  # admins see why
    assert not Operation.select().where(Operation.kind == "move").exists()


def test_one_engine_refuses_a_move(api):
    order = placed_order(api, node=None)
    answer = move(api, order, "anything")
    assert answer.status_code == 422, answer.json
    assert "needs Docker Swarm" in answer.json["error"]["message"]


@pytest.mark.parametrize("status", ["pending", "failed"])
def test_only_active_and_suspended_orders_move(api, nodes, status):
    order = placed_order(api, status=status)
    answer = move(api, order, "n2")
    assert answer.status_code == 409, answer.json
    assert answer.json["error"]["message"].startswith(f"order mv901 is {status}")


def test_the_call_needs_an_admin_key_a_node_and_an_order(api, nodes):
    order = placed_order(api)
    assert move(api, order, "n2", scope="read").status_code == 403
    assert move(api, order, "n2", scope="whmcs").status_code == 403
    assert api.post(f"/api/v1/orders/{order.id}/move", {}, scope="admin").status_code == 422
    assert api.post("/api/v1/orders/999999/move", {"node": "n2"}, scope="admin").status_code == 404
