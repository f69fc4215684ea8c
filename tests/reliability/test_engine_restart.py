"""The Docker engine restarts while operations run: they fail over to retries and complete."""
from __future__ import annotations

import time

import pytest

from app.models import Operation, Order
from tests.conftest import unavailable
from tests.reliability.conftest import (dockerd_restartable, ensure_dockerd, start_dockerd, start_worker, stop_dockerd,
                                        stop_process, wait_for)

pytestmark = [pytest.mark.usefixtures("docker_engine", "stack_cleanup"), pytest.mark.timeout(240)]


def test_operations_survive_an_engine_restart(live, settings, docker_engine, make_customer, tmp_path):
    reason = dockerd_restartable()
    if reason:
        unavailable(f"cannot restart the Docker engine here: {reason}")
    outcomes = [live.orders.create(service_id=700 + n, customer=make_customer(), product="busybox-demo", plan="small",
                                   username=f"engine{n}") for n in range(3)]
    operation_ids = [o.operation.id for o in outcomes]
    log_path = tmp_path / "worker.log"
    worker = start_worker(settings, log_path)
    try:
        # Restart the engine while the creates are under way (containers made, health not reached yet).
        wait_for(lambda: any(len(Operation.get_by_id(i).steps or []) >= 3 for i in operation_ids), timeout=60,
                 interval=0.02, what="a create under way")
        try:
            started = time.monotonic()
            stop_dockerd()
            time.sleep(1)
            start_dockerd()
            print(f"engine down and back in {time.monotonic() - started:.1f}s")
        finally:
            ensure_dockerd()
        finished = wait_for(lambda: all(Operation.get_by_id(i).state in ("succeeded", "failed") for i in operation_ids)
                            and [Operation.get_by_id(i) for i in operation_ids], timeout=150, interval=0.2,
                            what="every create finished")
    finally:
        stop_process(worker)
    log_tail = log_path.read_text()[-4000:]
    assert [op.state for op in finished] == ["succeeded"] * 3, ([op.error for op in finished], log_tail)
    assert any(op.attempts > 1 for op in finished), "no operation was retried: the restart missed them"
    for outcome in outcomes:
        order = Order.get_by_id(outcome.order.id)
        assert order.status == "active"
        mine = docker_engine.api.containers(all=True, filters={"label": f"live.order={order.id}"})
        mine = [c for c in mine if c["Labels"].get("live.deployment") == settings.deployment]
        assert sorted(c["Labels"]["live.service"] for c in mine) == ["app", "db", "web"]
        assert {c["State"] for c in mine} == {"running"}
