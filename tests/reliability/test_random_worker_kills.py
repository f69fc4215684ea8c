"""30 lifecycle operations while the worker is SIGKILLed at random moments and restarted each time.

At the end every order is in its intended state with exactly its containers, nothing
orphaned, and data written before a suspend is still there after the unsuspend.
"""
from __future__ import annotations

import os
import random
import signal
import threading
import time

import pytest

from app.models import Operation, Order
from tests.reliability.conftest import start_worker, stop_process

pytestmark = [pytest.mark.usefixtures("docker_engine", "stack_cleanup"), pytest.mark.timeout(240)]

SERVICES = ("app", "db", "web")
# Five orders, six operations each: 30 operations. ("mark" writes into the db volume, "check" reads it back.)
SCRIPTS = {
    "alpha": ["create", "mark", "suspend", "unsuspend", "check", ("change_plan", "large"), "redeploy", "suspend"],
    "bravo": ["create", ("change_plan", "large"), "mark", "suspend", "unsuspend", "check", "redeploy", "terminate"],
    "charlie": ["create", "mark", "suspend", "unsuspend", "check", "restart", "mark", "suspend", "unsuspend", "check"],
    "delta": ["create", "redeploy", "mark", "suspend", "unsuspend", "check", "suspend", "terminate"],
    "echo": ["create", "mark", "suspend", ("change_plan", "large"), "unsuspend", "check", "restart", "redeploy"],
}
INTENDED = {"alpha": "suspended", "bravo": "terminated", "charlie": "active", "delta": "terminated", "echo": "active"}


class Summary:
    def __init__(self, data: dict):
        self.id, self.name = data["Id"], data["Names"][0].lstrip("/")
        self.labels, self.status = data.get("Labels") or {}, data["State"]


def test_random_sigkills_during_30_operations(live, settings, docker_engine, make_customer, tmp_path):
    seed = int(os.environ.get("LIVE_CHAOS_SEED", random.SystemRandom().randrange(1 << 30)))
    print(f"chaos seed: {seed} (LIVE_CHAOS_SEED={seed} replays the kill times)")
    chaos = random.Random(seed)
    selector = {"label": f"live.deployment={settings.deployment}"}
    log_path = tmp_path / "worker.log"

    def containers(order=None):
        # The low-level list: no inspect per container, which would race with other orders' removals.
        found = [Summary(c) for c in docker_engine.api.containers(all=True, filters=selector)]
        return [c for c in found if order is None or c.labels.get("live.order") == str(order.id)]

    def db_container(order):
        summary = next(c for c in containers(order) if c.labels.get("live.service") == "db")
        return docker_engine.containers.get(summary.id)

    orders: dict[str, Order] = {}
    steps = {name: list(script) for name, script in SCRIPTS.items()}
    waiting: dict[str, int | None] = {name: None for name in SCRIPTS}  # operation id in flight
    markers: dict[str, str] = {}
    problems: list[str] = []
    submitted = 0

    def advance(name: str) -> None:
        nonlocal submitted
        while steps[name]:
            step = steps[name][0]
            order = orders.get(name)
            if order is not None:
                order = orders[name] = Order.get_by_id(order.id)
            if step == "mark":
                markers[name] = f"{name}-{time.time_ns()}"
                result = db_container(order).exec_run(["sh", "-c", f"echo {markers[name]} > /data/marker"])
                assert result.exit_code == 0, result.output
                steps[name].pop(0)
                continue
            if step == "check":
                result = db_container(order).exec_run(["cat", "/data/marker"])
                if result.output.decode().strip() != markers[name]:
                    problems.append(f"{name}: data written before suspend is gone: {result.output!r}")
                steps[name].pop(0)
                continue
            kind, arg = (step, None) if isinstance(step, str) else step
            if kind == "create":
                outcome = live.orders.create(service_id=900 + len(orders), customer=make_customer(),
                                             product="busybox-demo", plan="small", username=name)
                orders[name] = outcome.order
            elif kind == "change_plan":
                outcome = live.orders.change_plan(order, arg)
            else:
                outcome = getattr(live.orders, kind)(order)
            assert outcome.operation is not None, f"{name}: {kind} did nothing: {outcome.message}"
            submitted += 1
            waiting[name] = outcome.operation.id
            steps[name].pop(0)
            return

    worker = start_worker(settings, log_path)
    stop_killing = threading.Event()
    kills = []
    lock = threading.Lock()

    def killer():
        nonlocal worker
        while not stop_killing.wait(chaos.uniform(0.3, 3.0)):
            with lock:
                worker.send_signal(signal.SIGKILL)
                worker.wait(timeout=10)
                kills.append(time.monotonic())
                worker = start_worker(settings, log_path)

    thread = threading.Thread(target=killer, daemon=True)
    try:
        for name in SCRIPTS:
            advance(name)
        thread.start()
        deadline = time.monotonic() + 180
        while any(waiting.values()) and time.monotonic() < deadline:
            for name, operation_id in waiting.items():
                if operation_id is None:
                    continue
                operation = Operation.get_by_id(operation_id)
                if operation.state == "failed":
                    problems.append(f"{name}: {operation.kind} failed: {operation.error}")
                    waiting[name] = None
                elif operation.state == "succeeded":
                    waiting[name] = None
                    advance(name)
            if len(kills) >= 12:  # enough chaos; let the rest finish
                stop_killing.set()
            time.sleep(0.1)
    finally:
        stop_killing.set()
        thread.join(timeout=30)
        with lock:
            stop_process(worker)
    print(f"{submitted} operations, {len(kills)} SIGKILLs")
    log_tail = log_path.read_text()[-3000:]
    assert not any(waiting.values()), f"unfinished operations: {waiting}\n{log_tail}"
    assert problems == [], "\n".join(problems) + "\n" + log_tail
    assert submitted == 30
    assert len(kills) >= 3, "the worker was hardly killed: raise the operation count or lower the interval"

    known = {str(order.id) for order in orders.values()}
    for name, order in orders.items():
        order = Order.get_by_id(order.id)
        assert order.status == INTENDED[name], (name, order.status, order.last_error)
        mine = containers(order)
        if order.status == "terminated":
            assert mine == [], f"{name}: terminated but containers remain"
            assert docker_engine.volumes.list(filters={"label": f"live.order={order.id}"}) == [] or all(
                v.attrs["Labels"].get("live.deployment") != settings.deployment
                for v in docker_engine.volumes.list(filters={"label": f"live.order={order.id}"}))
            continue
        prefix = f"{settings.deployment}-{order.instance}"
        assert sorted(c.name for c in mine) == [f"{prefix}_{s}" for s in SERVICES], f"{name}: {[c.name for c in mine]}"
        expected = "running" if order.status == "active" else "exited"
        assert {c.status for c in mine} == {expected}, (name, {c.name: c.status for c in mine})
        if name in markers and order.status == "active":
            assert db_container(order).exec_run(["cat", "/data/marker"]).output.decode().strip() == markers[name]
    orphans = [c.name for c in containers() if c.labels.get("live.order") not in known
               or c.labels.get("live.service") not in SERVICES]
    assert orphans == [], f"orphan containers: {orphans}"


def test_terminate_after_a_kill_during_archiving(live, settings, docker_engine, make_customer):
    """What a SIGKILL between creating and removing the archive helper leaves behind, then terminate again."""
    outcome = live.orders.create(service_id=990, customer=make_customer(), product="busybox-demo", plan="small",
                                 username="helper")
    worker = live.worker()
    worker.run_until_idle(timeout=90)
    order = Order.get_by_id(outcome.order.id)
    assert order.status == "active"
    project = live.runner.project(order)
    docker_engine.api.create_container("live-test/busybox:latest", command=["true"], name=f"{project.prefix}-archive",
                                       labels={**project.base_labels(), "live.role": "archive-helper"})
    terminate = live.orders.terminate(order)
    worker.run_until_idle(timeout=90)
    finished = Operation.get_by_id(terminate.operation.id)
    assert finished.state == "succeeded", finished.error
