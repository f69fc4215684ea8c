"""The real worker process, killed with SIGKILL mid-operation, converges after a restart."""
from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import time

import pytest

from app.config import PROJECT_ROOT
from app.models import Operation, Order
from tests.conftest import BOTH_MODES
from tests.support.live_service import settings_env
from tests.support.observed import Observer
from tests.support.waiting import wait_for

pytestmark = pytest.mark.usefixtures("docker_engine", "stack_cleanup")


def start_worker(settings, log_path):
    env = settings_env(settings, LIVE_WORKER_POLL_SECONDS="0.1", LIVE_RETRY_BASE_SECONDS="0.2",
                       LIVE_HEALTH_TIMEOUT_SECONDS="30")
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "live", "worker"], cwd=PROJECT_ROOT,
                                env=env, stdout=log, stderr=subprocess.STDOUT)


def operation_state(operation_id):
    return Operation.get_by_id(operation_id)


@BOTH_MODES
@pytest.mark.parametrize("kill_after_step", [0, 2, 4])
def test_worker_killed_mid_create_converges(live, settings, docker_engine, make_customer, tmp_path, kill_after_step,
                                            orchestrator):
    """Kill at several points (claimed only, networks/volumes made, some containers or swarm services made), on
    one engine and on a swarm."""
    outcome = live.orders.create(service_id=500 + kill_after_step, customer=make_customer(), product="busybox-demo",
                                 plan="small", username=f"crash{kill_after_step}")
    operation_id = outcome.operation.id
    log_path = tmp_path / "worker.log"
    worker = start_worker(settings, log_path)
    try:
        wait_for(lambda: (op := operation_state(operation_id)).state == "running" and len(op.steps) >= kill_after_step,
                 interval=0.02)
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
    observer = Observer(docker_engine, settings.deployment, orchestrator)
    objects = observer.objects()
    # Exactly one container (swarm: one service with one task) per service, no duplicates, no orphans; all running.
    stacked = objects["services"] if orchestrator == "swarm" else objects["containers"]
    assert stacked == [f"{prefix}_app", f"{prefix}_db", f"{prefix}_web"]
    assert objects["networks"] == [f"{prefix}_default"]
    assert objects["volumes"] == [f"{prefix}_app-state", f"{prefix}_db-data"]
    services = observer.services(order.id)
    assert sorted(services) == ["app", "db", "web"] and all(s.running for s in services.values())
    if orchestrator == "swarm":  # one task container per service runs; a killed attempt left no second one
        running = docker_engine.containers.list(filters={"label": f"live.deployment={settings.deployment}"})
        assert len(running) == 3


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


def test_after_a_kill_the_bridge_says_no_worker_runs_and_a_new_worker_takes_over(live, settings, tmp_path):
    """Issue 10: after `kill -9` of the worker, /readyz and lifecycle answers say so; nothing is lost."""
    from app import create_app
    from app.apikeys import create_key
    from app.models import WorkerHeartbeat
    from app.orders.heartbeat import worker_status

    log_path = tmp_path / "worker.log"
    worker = start_worker(settings, log_path)
    try:
        first = wait_for(lambda: (status := worker_status()).alive and status, timeout=60)
        assert first.worker.endswith(f":{worker.pid}")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert WorkerHeartbeat.select().count() == 1, "a killed worker cannot remove its heartbeat"
    # Time passes: the beat gets older than max(15 s, 10 x 0.1 s).
    WorkerHeartbeat.update(beat_at=WorkerHeartbeat.get().beat_at - dt.timedelta(seconds=16)).execute()

    app = create_app(settings)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {create_key('whmcs-crash', 'whmcs')[1]}"}
    ready = client.get("/readyz").json
    assert ready["checks"]["worker"]["ok"] is False
    assert ready["checks"]["worker"]["detail"].startswith("no heartbeat for ")
    assert ready["status"] in ("degraded", "unavailable")  # unavailable only when the engine is missing
    body = {"client": {"id": 5, "email": "c5@example.org"}, "product": "busybox-demo", "plan": "small",
            "username": "afterkill", "wait": 0.5}
    answer = client.post("/whmcs/v1/services/590/create", json=body, headers=headers)
    assert answer.status_code == 202 and answer.json["result"] == "queued", answer.json
    assert answer.json["worker"]["alive"] is False and answer.json["worker"]["heartbeat_age_seconds"] >= 16
    assert "the bridge's worker is not running" in answer.json["message"]
    operation_id = answer.json["operation"]["id"]

    worker = start_worker(settings, log_path)
    try:
        status = wait_for(lambda: (current := worker_status()).alive and current, timeout=60)
        assert status.worker.endswith(f":{worker.pid}")
        assert WorkerHeartbeat.select().count() == 1, "the new worker removed the dead one's row"
        finished = wait_for(lambda: (op := operation_state(operation_id)).state in ("succeeded", "failed") and op,
                            timeout=90)
        assert finished.state == "succeeded", (finished.error, log_path.read_text()[-3000:])
        assert client.get("/readyz").json["checks"]["worker"]["ok"] is True
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    assert worker.returncode == 0
    assert worker_status().age_seconds is None, "a clean shutdown removes the heartbeat"
