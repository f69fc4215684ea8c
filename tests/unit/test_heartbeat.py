"""The worker heartbeat's rule (app/orders/heartbeat.py): when a worker counts as gone, and ages in words."""
from __future__ import annotations

import pytest

from app.orders.heartbeat import describe_seconds, stale_after


@pytest.mark.parametrize(("poll", "threshold"), [(0.05, 15.0), (0.1, 15.0), (1.0, 15.0), (1.5, 15.0), (2.0, 20.0),
                                                 (5.0, 50.0), (60.0, 600.0)])
def test_a_worker_is_gone_after_ten_missed_polls_but_never_before_fifteen_seconds(poll, threshold):
    assert stale_after(poll) == threshold


@pytest.mark.parametrize(("seconds", "words"), [(None, "-"), (0.0, "0.0 s"), (0.44, "0.4 s"), (9.94, "9.9 s"),
                                                (42.4, "42 s"), (119, "119 s"), (120, "2 min"), (7199, "120 min"),
                                                (7200, "2 h"), (172799, "48 h"), (172800, "2 d")])
def test_ages_are_said_in_the_largest_fitting_unit(seconds, words):
    assert describe_seconds(seconds) == words


def test_no_beat_recreates_the_row_once_the_worker_stopped(monkeypatch):
    """The scheduler stops without waiting for a dispatch tick that may still beat (found by test_run_script)."""
    from app.orders import heartbeat as module

    writes: list[str] = []
    beat = module.Heartbeat("host:1", poll_seconds=1.0, concurrency=1)
    monkeypatch.setattr(beat, "_write", lambda: writes.append("write"))
    monkeypatch.setattr(module.WorkerHeartbeat, "delete", lambda: _Deleted(writes))
    assert beat.beat(force=True) is True
    beat.stop()
    assert beat.beat(force=True) is False
    assert writes == ["write", "delete"]


class _Deleted:
    def __init__(self, writes):
        self.writes = writes

    def where(self, *_):
        return self

    def execute(self):
        self.writes.append("delete")
        return 1
