"""The placement policy (app/stacks/placement.py) and the runner placing a new order (OperationRunner.place),
on the in-memory engine with nodes modelled as a swarm's."""
from __future__ import annotations

import pytest

from app.errors import NoCapacity
from app.models import Event, Order
from app.stacks.engine import NodeState
from app.stacks.placement import MIB, choose_node, eligible_nodes, order_reservation
from tests.unit.test_operations_fake import create, run

GIB = 1024 * MIB


def node(name, memory_gib=8, reserved_gib=0.0, *, ready=True, active=True, engine="", pool=None, labels=None):
    labels = dict(labels or {})
    if pool is not None:
        labels["live.pool"] = pool
    return NodeState(id=f"id-{name}", hostname=name, labels=labels, ready=ready, active=active,
                     memory_bytes=int(memory_gib * GIB), reserved_bytes=int(reserved_gib * GIB), engine=engine)


def test_the_node_with_most_unreserved_memory_wins():
    nodes = [node("a", 8, 6), node("b", 16, 13), node("c", 8, 2)]
    assert choose_node(nodes, 1 * GIB).hostname == "c"  # free: a 2, b 3, c 6 GiB


def test_ties_go_to_the_least_reserved_node_then_the_hostname():
    assert choose_node([node("b", 8, 4), node("a", 4, 0)], 0).hostname == "a"  # both 4 GiB free, a reserves less
    assert choose_node([node("b", 4), node("a", 4)], 0).hostname == "a"


def test_nodes_not_ready_not_active_or_unreachable_are_never_chosen():
    nodes = [node("down", 64, ready=False), node("drained", 64, active=False), node("noengine", 64, engine=None),
             node("ok", 2)]
    assert [n.hostname for n in eligible_nodes(nodes)] == ["ok"]
    assert choose_node(nodes, 0).hostname == "ok"


def test_a_pool_restricts_placement_to_its_labelled_nodes():
    nodes = [node("big", 64, pool="large"), node("small1", 8, pool="small"), node("plain", 32)]
    assert choose_node(nodes, 0, pool="small").hostname == "small1"
    assert choose_node(nodes, 0).hostname == "big"


def test_no_eligible_node_names_every_node_and_why():
    nodes = [node("a", ready=False), node("b", active=False), node("c", pool="large")]
    with pytest.raises(NoCapacity) as caught:
        choose_node(nodes, 0, pool="small")
    message = str(caught.value)
    assert "pool 'small'" in message
    assert "a (not ready)" in message and "b (not active)" in message and "c (live.pool=large)" in message
    assert caught.value.public == "no machine has room for this service right now"  # no node names for customers


def test_an_order_larger_than_every_node_is_refused_with_the_figures():
    with pytest.raises(NoCapacity, match=r"no node has 3072 MiB unreserved for the order; the most is 2048 MiB "
                                         r"on a \(8192 MiB, 6144 MiB reserved\)"):
        choose_node([node("a", 8, 6)], 3 * GIB)


def test_the_order_reserves_its_services_reservations_or_limits(live):
    order = create(live, run_it=False)
    stack = live.runner.project(order).stack
    expected = sum(s.mem_reservation or s.mem_limit or 0 for s in stack.services.values())
    assert order_reservation(stack) == expected
    stack.services["web"].mem_reservation, stack.services["web"].mem_limit = 64 * MIB, 128 * MIB
    stack.services["app"].mem_reservation, stack.services["app"].mem_limit = None, 32 * MIB
    stack.services["db"].mem_reservation = stack.services["db"].mem_limit = None
    assert order_reservation(stack) == 96 * MIB


# -- the runner ------------------------------------------------------------------------------------------------
@pytest.fixture
def live(fake_live):
    return fake_live


def test_a_new_order_is_placed_once_and_everything_it_creates_goes_there(fake_live, fake_engine):
    fake_engine.swarm_nodes = [node("n1", 8, 4), node("n2", 8, 1)]
    order = create(fake_live)
    assert order.status == "active"
    assert (order.node, order.node_name) == ("id-n2", "n2")
    placed = {name: where for name, where in fake_engine.placements.items() if order.instance in name}
    assert placed and set(placed.values()) == {"id-n2"}  # every container and volume of the order
    event = Event.get(Event.kind == "order.placed")
    assert event.data == {"node": "id-n2", "node_name": "n2"} and "placed on node n2" in event.message
    steps = [step["message"] for step in order.operations.first().steps]
    assert any(step.startswith("place the order on node n2") for step in steps)
    assert fake_live.queries.order_view(order)["node"] == {"id": "id-n2", "hostname": "n2"}  # every view shows it

    fake_engine.swarm_nodes = [node("n1", 64), node("n2", 8, 7)]  # n1 is emptier now: the order stays on n2
    fake_live.orders.redeploy(Order.get_by_id(order.id))
    run(fake_live)
    assert Order.get_by_id(order.id).node == "id-n2"
    assert Event.select().where(Event.kind == "order.placed").count() == 1


def test_no_room_fails_the_create_with_a_clear_error_and_nothing_made(fake_live, fake_engine):
    fake_engine.swarm_nodes = [node("n1", 1, 1, labels={"live.pool": "x"})]
    order = create(fake_live)
    assert order.status == "failed"
    assert order.node is None
    assert "no node has" in order.last_error_detail or "no ready" in order.last_error_detail
    assert order.last_error.startswith("no machine has room for this service right now")
    assert not [c for c in fake_engine.containers.values() if order.instance in c.name]


def test_on_one_engine_no_node_is_recorded(fake_live, fake_engine):
    order = create(fake_live)
    assert order.status == "active" and order.node is None and order.node_name is None
    assert set(fake_engine.placements.values()) == {None}
    assert fake_live.queries.order_view(order)["node"] is None


def test_orders_placed_at_the_same_time_count_each_other_until_their_services_exist(fake_live, fake_engine):
    """nodes() counts only services the swarm holds: an order placed whose deploy is under way is counted by
    the runner itself, so two creates in parallel threads do not both take the emptiest node."""
    import threading

    fake_engine.swarm_nodes = [node("n1", 8, 3), node("n2", 8, 2)]  # n2 is emptier by 1 GiB
    first = create(fake_live, "first", service_id=11, run_it=False)
    second = create(fake_live, "second", service_id=12, run_it=False)
    need = order_reservation(fake_live.runner.project(first).stack)
    assert need > 0
    fake_engine.swarm_nodes = [node("n1", 8, 3), node("n2", 8, 3 - need / GIB / 2)]  # n2 emptier by less than need
    steps = []
    threads = [threading.Thread(target=fake_live.runner.place, args=(Order.get_by_id(o.id), steps.append))
               for o in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    placed = sorted(Order.get_by_id(o.id).node for o in (first, second))
    assert placed == ["id-n1", "id-n2"]  # not both on n2
    run(fake_live)  # their deploys hold the reservations now: the runner forgets them
    assert fake_live.runner._placing == {}
