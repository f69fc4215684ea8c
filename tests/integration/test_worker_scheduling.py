"""Operations of one order run one at a time, in request order; different orders in parallel."""
from __future__ import annotations

import threading

import pytest

from app.models import Operation, Order

pytestmark = pytest.mark.usefixtures("docker_engine", "stack_cleanup")


class RecordingRunner:
    """Wraps the real runner to observe which operations overlap."""

    def __init__(self, runner):
        self._runner = runner
        self.running: dict[int, int] = {}
        self.overlaps: list[tuple[int, int]] = []
        self.max_parallel = 0
        self._lock = threading.Lock()

    def run(self, operation, progress):
        with self._lock:
            if operation.order_id in self.running:
                self.overlaps.append((operation.order_id, operation.id))
            self.running[operation.order_id] = operation.id
            self.max_parallel = max(self.max_parallel, len(self.running))
        try:
            self._runner.run(operation, progress)
        finally:
            with self._lock:
                del self.running[operation.order_id]

    def __getattr__(self, name):
        return getattr(self._runner, name)


def test_per_order_serial_and_cross_order_parallel(live, make_customer):
    orders = []
    for number in range(3):
        outcome = live.orders.create(service_id=300 + number, customer=make_customer(), product="busybox-demo",
                                     plan="small", username=f"sched{number}")
        orders.append(outcome.order)
        live.orders.suspend(outcome.order)
        live.orders.unsuspend(Order.get_by_id(outcome.order.id))
    recorder = RecordingRunner(live.runner)
    live.runner = recorder
    live.worker().run_until_idle(timeout=180)
    assert recorder.overlaps == []
    assert recorder.max_parallel >= 2, "orders of different customers were not deployed in parallel"
    for order in orders:
        ops = list(Operation.select().where(Operation.order == order).order_by(Operation.id))
        assert [op.kind for op in ops] == ["create", "suspend", "unsuspend"]
        assert all(op.state == "succeeded" for op in ops)
        finished = [op.finished_at for op in ops]
        assert finished == sorted(finished)
        assert Order.get_by_id(order.id).status == "active"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # only PostgreSQL connections are pooled
def test_deployer_threads_give_their_database_connections_back(live, make_customer):
    """Progress is written from the deployer's short-lived threads; a pooled connection must not leak."""
    for number in range(3):
        live.orders.create(service_id=320 + number, customer=make_customer(), product="busybox-demo", plan="small",
                           username=f"pool{number}")
    live.worker().run_until_idle(timeout=180)
    assert all(op.state == "succeeded" for op in Operation.select())
    in_use = live.db._in_use
    assert len(in_use) <= 1, f"{len(in_use)} pooled connections still checked out (the test's own may be one)"
