"""The worker's heartbeat in the database, on SQLite and PostgreSQL (app/orders/heartbeat.py)."""
from __future__ import annotations

import datetime as dt

import pytest

from app.errors import LiveError
from app.models import WorkerHeartbeat, utcnow
from app.orders.heartbeat import Heartbeat, worker_status


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_start_replaces_rows_of_dead_workers_and_stop_removes_its_own(live):
    WorkerHeartbeat.create(worker="old-host:17", started_at=utcnow(), beat_at=utcnow() - dt.timedelta(hours=2),
                           poll_seconds=1.0, concurrency=2)
    heartbeat = Heartbeat("host:42", poll_seconds=0.5, concurrency=8)
    assert heartbeat.start() == 1, "the row a SIGKILLed worker left is deleted: the lock proves it is gone"
    rows = list(WorkerHeartbeat.select().tuples())
    assert [(row[1], row[4], row[5]) for row in rows] == [("host:42", 0.5, 8)]
    status = worker_status()
    assert status.alive and status.worker == "host:42" and status.concurrency == 8 and status.stale_after == 15.0
    heartbeat.stop()
    assert worker_status().age_seconds is None and not worker_status().alive


def test_beats_are_one_update_at_most_once_a_second_and_recreate_a_missing_row(live):
    clock = Clock()
    heartbeat = Heartbeat("host:42", poll_seconds=0.1, concurrency=4, clock=clock)
    assert heartbeat.beat() is True, "the first beat writes (and inserts the row)"
    first = WorkerHeartbeat.get().beat_at
    clock.now += 0.5
    assert heartbeat.beat() is False, "a tick 0.5 s later writes nothing"
    assert heartbeat.beat(force=True) is True
    clock.now += 1.0
    assert heartbeat.beat() is True
    assert WorkerHeartbeat.get().beat_at >= first
    assert WorkerHeartbeat.select().count() == 1
    WorkerHeartbeat.delete().execute()  # e.g. an operator emptied the table
    clock.now += 1.0
    assert heartbeat.beat() is True and WorkerHeartbeat.get().worker == "host:42"


def test_alive_means_a_beat_younger_than_max_15s_or_ten_polls(live):
    at = utcnow()
    WorkerHeartbeat.create(worker="host:1", started_at=at, beat_at=at, poll_seconds=1.0, concurrency=4)
    assert worker_status(at + dt.timedelta(seconds=15)).alive
    assert not worker_status(at + dt.timedelta(seconds=15.5)).alive
    assert worker_status(at + dt.timedelta(seconds=15.5)).age_seconds == 15.5
    assert worker_status(at - dt.timedelta(seconds=3)).age_seconds == 0.0, "a clock behind counts as age 0"
    WorkerHeartbeat.update(poll_seconds=5.0).execute()
    assert worker_status(at + dt.timedelta(seconds=50)).alive and not worker_status(at + dt.timedelta(seconds=51)).alive


def test_the_newest_row_decides(live):
    at = utcnow()
    WorkerHeartbeat.create(worker="a:1", started_at=at, beat_at=at - dt.timedelta(minutes=10), poll_seconds=1.0,
                           concurrency=1)
    WorkerHeartbeat.create(worker="b:2", started_at=at, beat_at=at, poll_seconds=1.0, concurrency=2)
    status = worker_status(at)
    assert status.alive and status.worker == "b:2"


def test_a_dispatch_tick_beats(live):
    worker = live.worker()
    worker.dispatch_safely()
    status = worker_status()
    assert status.alive and status.worker == worker.worker_id and status.concurrency == worker.concurrency


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_worker_on_an_unmigrated_database_refuses_with_the_fix(settings):
    from app.bootstrap import bootstrap

    live = bootstrap(settings)
    try:
        with pytest.raises(LiveError, match=r"cannot record the worker's heartbeat: .*live db upgrade"):
            Heartbeat("host:1", poll_seconds=1.0, concurrency=1).start()
    finally:
        live.db.close()
