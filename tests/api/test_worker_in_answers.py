"""Issue 10 over HTTP: lifecycle answers, /readyz and /metrics say whether a worker runs the operations.

The worker's heartbeat rows are written here directly (no worker process), fresh or old, so each
answer is deterministic; tests/integration/test_worker_crash.py does the same with a real worker killed.
"""
from __future__ import annotations

import datetime as dt

import pytest

from app.models import Operation, WorkerHeartbeat, utcnow
from tests.api.conftest import client_payload

HOST = "bridge-host-7.internal"


def beat(seconds_ago: float, poll_seconds: float = 1.0) -> None:
    """One worker's heartbeat row, ``seconds_ago`` old."""
    at = utcnow() - dt.timedelta(seconds=seconds_ago)
    WorkerHeartbeat.create(worker=f"{HOST}:4242", started_at=at - dt.timedelta(hours=1), beat_at=at,
                           poll_seconds=poll_seconds, concurrency=4)


def create(api, service_id: int, **extra):
    return api.post(f"/whmcs/v1/services/{service_id}/create", client_payload(username=f"hb{service_id}", **extra))


def test_queued_with_a_live_worker(api):
    beat(0.5)
    created = create(api, 601)
    assert created.status_code == 202
    body = created.json
    assert (body["result"], body["message"]) == ("queued", "order hb601 accepted")
    assert body["operation"]["state"] == "pending"
    assert body["worker"]["alive"] is True and 0.5 <= body["worker"]["heartbeat_age_seconds"] < 60


def test_running_only_once_a_worker_started_the_operation(api):
    beat(0.5)
    operation_id = create(api, 602).json["operation"]["id"]
    Operation.update(state="running", attempts=1, started_at=utcnow(),
                     steps=[{"at": "2026-01-01T00:00:00Z", "attempt": 1, "message": "create volume db-data"}]).where(
        Operation.id == operation_id).execute()
    repeat = create(api, 602)
    assert repeat.status_code == 202
    assert (repeat.json["result"], repeat.json["message"]) == ("running", "provisioning is already under way")
    waited = create(api, 602, wait=0.3)
    assert (waited.json["result"], waited.json["message"]) == ("running", "create still running: create volume db-data")
    assert waited.json["worker"]["alive"] is True


def test_a_running_operation_whose_worker_died_says_so(api):
    """A worker killed with SIGKILL leaves its operation running and its heartbeat old."""
    beat(3600)
    operation_id = create(api, 603).json["operation"]["id"]
    Operation.update(state="running", attempts=1, started_at=utcnow()).where(Operation.id == operation_id).execute()
    answer = create(api, 603, wait=0.2)
    assert answer.status_code == 202 and answer.json["result"] == "running"
    # Nothing can change without a worker, so the call does not wait (found by an operator: it held a slot 20 s).
    assert answer.json["message"] == ("provisioning is already under way; the bridge's worker stopped during it: it "
                                      "resumes once the worker runs again")
    assert answer.json["worker"]["alive"] is False and answer.json["worker"]["heartbeat_age_seconds"] >= 3600
    assert HOST not in answer.get_data(as_text=True), "the worker's host name is not for WHMCS"


def test_without_a_live_worker_a_call_answers_at_once_and_holds_no_wait_slot(api, monkeypatch):
    def no_wait(*_args, **_kwargs):
        raise AssertionError("waited although no worker can change the operation")

    monkeypatch.setattr(api.app.extensions["live"].queries, "wait_for_operation", no_wait)
    monkeypatch.setattr(api.app.extensions["wait_slots"], "slot", no_wait)
    created = create(api, 605, wait=30)  # no heartbeat at all
    assert created.status_code == 202 and created.json["result"] == "queued"
    assert created.json["message"] == ("order hb605 accepted; the bridge's worker is not running: it starts once the "
                                       "worker runs again (it is recorded)")
    beat(3600)
    stale = create(api, 605, wait=30)
    assert stale.json["result"] == "queued" and stale.json["worker"]["alive"] is False


def test_an_operation_waiting_for_its_retry_is_queued(api):
    beat(0.5)
    operation_id = create(api, 604).json["operation"]["id"]
    Operation.update(state="pending", attempts=1, error="the container platform is unavailable right now",
                     next_attempt_at=utcnow() + dt.timedelta(hours=1)).where(Operation.id == operation_id).execute()
    answer = create(api, 604, wait=0.2)
    assert answer.status_code == 202 and answer.json["result"] == "queued"
    assert answer.json["message"] == ("create waiting for attempt 2 of 3 after: the container platform is unavailable "
                                      "right now")


def test_the_stale_threshold_follows_the_workers_poll_interval(api):
    beat(30, poll_seconds=5.0)  # alive up to 50 s
    assert create(api, 605).json["worker"]["alive"] is True
    WorkerHeartbeat.update(beat_at=utcnow() - dt.timedelta(seconds=51)).execute()
    assert create(api, 605).json["worker"]["alive"] is False


def test_answers_without_an_operation_report_the_worker_too(api):
    unknown = api.post("/whmcs/v1/services/699/terminate", {})
    assert unknown.status_code == 200 and unknown.json["result"] == "unchanged"
    assert unknown.json["worker"] == {"alive": False, "heartbeat_age_seconds": None}


@pytest.mark.usefixtures("docker_engine")
def test_readyz_is_degraded_without_a_live_worker(api):
    none = api.client.get("/readyz")
    assert none.status_code == 200 and none.json["status"] == "degraded"
    assert none.json["checks"]["worker"] == {"ok": False, "detail": "no worker is running (none has a heartbeat)"}

    beat(0.5)
    ready = api.client.get("/readyz")
    assert ready.status_code == 200 and ready.json["status"] == "ready", ready.json
    worker = ready.json["checks"]["worker"]
    assert worker["ok"] is True and worker["detail"].startswith("heartbeat ")

    WorkerHeartbeat.update(beat_at=utcnow() - dt.timedelta(minutes=7)).execute()
    stale = api.client.get("/readyz")
    assert stale.status_code == 200 and stale.json["status"] == "degraded"
    detail = stale.json["checks"]["worker"]["detail"]
    assert detail.startswith("no heartbeat for 7 min (last at ")
    assert detail.endswith("operations wait until a worker runs")
    assert HOST not in stale.get_data(as_text=True), "readyz answers anyone: no host names"


def test_metrics_show_the_heartbeat_age_and_whether_a_worker_is_alive(api):
    text = api.client.get("/metrics").get_data(as_text=True)
    assert "live_worker_heartbeat_age_seconds -1.0" in text.splitlines()
    assert "live_worker_alive 0.0" in text.splitlines()
    beat(42)
    lines = {line.split(" ")[0]: float(line.split(" ")[1]) for line in api.client.get("/metrics").get_data(
        as_text=True).splitlines() if line.startswith("live_worker_")}
    assert 42 <= lines["live_worker_heartbeat_age_seconds"] < 120
    assert lines["live_worker_alive"] == 0.0, "42 s is older than max(15 s, 10 x 1 s)"
    WorkerHeartbeat.update(beat_at=utcnow()).execute()
    assert "live_worker_alive 1.0" in api.client.get("/metrics").get_data(as_text=True).splitlines()
