"""A host port taken by someone else is moved away from, on the in-memory engine (real worker and databases).

Other installations on the same engine (or any process) may take a port between the moment Live chooses it
and the moment the engine binds it; each taken port is avoided in turn (``PORT_MOVES``). The real engine's
messages for both cases (another container, another process) are covered in ``test_lifecycle.py``.
"""
from __future__ import annotations

import pytest

from app.models import Operation, Order
from app.stacks.ports import FIRST_HOST_PORT, PORT_MOVES, PortAllocator
from tests.conftest import TEST_IMAGE
from tests.fakes import FakeContainer, FakeEngine


@pytest.fixture
def engine(live, monkeypatch):
    # The in-memory engine binds nothing on the host: which host ports are free is the fake's alone, so the
    # allocator's choices are known (the real host's ports are busy with other tests).
    monkeypatch.setattr("app.stacks.ports._is_free", lambda port: True)
    live.runner.ports = PortAllocator(start=FIRST_HOST_PORT)  # the lowest free port: not a random start
    fake = FakeEngine([TEST_IMAGE, live.settings.helper_image])
    live.deployer.engine = fake
    return fake


def squat(engine: FakeEngine, port: int) -> None:
    """A running container of another installation that publishes ``port``."""
    name = f"other-{port}"
    engine.containers[name] = FakeContainer(id=name, name=name, image=TEST_IMAGE, payload={}, networks={},
                                            volumes=[], state="running", host_ports={"80/tcp": port})


def run(live) -> Operation:
    live.worker().run_until_idle(timeout=60)
    return Operation.select().order_by(Operation.id.desc()).first()


def suspended_order(live, make_customer, service_id: int, username: str) -> tuple[Order, str, int]:
    """An order created and suspended on the fake engine; its one endpoint and the host port it had."""
    outcome = live.orders.create(service_id=service_id, customer=make_customer(), product="busybox-demo",
                                 plan="small", username=username)
    run(live)
    order = Order.get_by_id(outcome.order.id)
    (endpoint, port), = order.published_ports.items()
    live.orders.suspend(order)
    run(live)
    return order, endpoint, port


def test_each_port_taken_meanwhile_is_moved_away_from(live, engine, make_customer):
    order, endpoint, first = suspended_order(live, make_customer, 150, "moves")
    taken = [first, first + 1, first + 2]  # the order's port, then the next two the allocator will choose
    for port in taken:
        squat(engine, port)
    live.orders.unsuspend(Order.get_by_id(order.id))
    operation = run(live)
    order = Order.get_by_id(order.id)
    assert operation.state == "succeeded" and order.status == "active", order.last_error_detail
    assert order.published_ports[endpoint] not in taken
    steps = [step["message"] for step in operation.steps]
    moves = [f"host port {port} is taken by another process; moving the endpoint to a free port" for port in taken]
    assert [step for step in steps if step.startswith("host port ")] == moves


def test_moving_stops_after_port_moves_and_names_the_port(live, engine, make_customer):
    order, _endpoint, first = suspended_order(live, make_customer, 151, "no-room")
    for port in range(first, first + PORT_MOVES + 1):
        squat(engine, port)
    live.orders.unsuspend(Order.get_by_id(order.id))
    operation = run(live)
    assert operation.state == "failed"
    assert f"Bind for 127.0.0.1:{first + PORT_MOVES} failed: port is already allocated" in operation.error_detail
    assert len([s for s in operation.steps if s["message"].startswith("host port ")]) == PORT_MOVES
