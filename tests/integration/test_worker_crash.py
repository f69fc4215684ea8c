"""The real worker process, killed with SIGKILL mid-operation, converges after a restart."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from app.config import PROJECT_ROOT
from app.models import Operation, Order
from tests.support.live_service import settings_env

pytestmark = pytest.mark.usefixtures("docker_engine", "stack_cleanup")


def start_worker(settings, log_path):
    env = settings_env(settings, LIVE_WORKER_POLL_SECONDS="0.1", LIVE_RETRY_BASE_SECONDS="0.2",
                       LIVE_HEALTH_TIMEOUT_SECONDS="30")
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "live", "worker"], cwd=PROJECT_ROOT,
                                env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_for(predicate, timeout=60.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not reached in time")


def operation_state(operation_id):
    return Operation.get_by_id(operation_id)


@pytest.mark.parametrize("kill_after_step", [0, 2, 4])
def test_worker_killed_mid_create_converges(live, settings, docker_engine, deployed_objects, make_customer, tmp_path,
                                            kill_after_step):
    """Kill at several points (claimed only, networks/volumes made, some containers made)."""
    outcome = live.orders.create(service_id=500 + kill_after_step, customer=make_customer(), product="busybox-demo",
                                 plan="small", username=f"crash{kill_after_step}")
    operation_id = outcome.operation.id
    log_path = tmp_path / "worker.log"
    worker = start_worker(settings, log_path)
    try:
        wait_for(lambda: (op := operation_state(operation_id)).state == "running" and len(op.steps) >= kill_after_step)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    interrupted = operation_state(operation_id)
    assert interrupted.state == "running", "the kill left the operation unfinished"

    worker = start_worker(settings, log_path)
    try:
        finished = wait_for(lambda: (op := operation_state(operation_id)).state in ("succeeded", "failed") and op, timeout=90)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert finished.state == "succeeded", (finished.error, log_path.read_text()[-3000:])
    assert finished.attempts == 2
    order = Order.get_by_id(outcome.order.id)
    assert order.status == "active"
    prefix = f"{settings.deployment}-{order.instance}"
    # Exactly one container per service, no duplicates, no orphans; all running.
    assert deployed_objects() == {
        "containers": [f"{prefix}-app", f"{prefix}-db", f"{prefix}-web"],
        "networks": [f"{prefix}_default"],
        "volumes": [f"{prefix}_app-state", f"{prefix}_db-data"],
    }
    states = {c.name: c.status for c in docker_engine.containers.list(all=True, filters={"label": f"live.deployment={settings.deployment}"})}
    assert set(states.values()) == {"running"}


def test_second_worker_refuses_to_start(live, settings, tmp_path):
    first = start_worker(settings, tmp_path / "first.log")
    try:
        time.sleep(1.5)
        assert first.poll() is None
        second = start_worker(settings, tmp_path / "second.log")
        assert second.wait(timeout=30) != 0
        assert "another worker is already running" in (tmp_path / "second.log").read_text()
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=30)
