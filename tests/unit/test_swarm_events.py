"""SwarmEngine.events (app/stacks/swarm_engine.py) on the JSON shapes of Docker Engine 20.10, without a swarm: the
poll reports changed services, failed tasks once (those before ``since`` not at all) and removed services, and a
manager stream that breaks raises EngineUnavailable."""
from __future__ import annotations

import threading

import pytest

from app.errors import EngineUnavailable
from app.stacks.engine import LISTED
from app.stacks.swarm_engine import SwarmEngine
from tests.unit.test_swarm_state import service, task


class FakeManagerApi:
    """GET /services, GET /tasks and GET /events of a manager, as docker-py's APIClient answers them."""

    def __init__(self):
        self.services_list = [service(healthcheck=False)]
        self.tasks_list = [task("running", index=20)]
        self.closed = threading.Event()
        self.breaks = threading.Event()
        self.polls = threading.Semaphore(0)

    def services(self, filters=None):
        self.polls.release()
        return list(self.services_list)

    def tasks(self, filters=None):
        return list(self.tasks_list)

    def events(self, filters=None, decode=None, since=None):
        api = self

        class Stream:
            def __iter__(self):
                while not api.closed.is_set():
                    if api.breaks.wait(0.01):
                        raise ConnectionError("connection reset by peer")
                return
                yield

            def close(self):
                api.closed.set()

        return Stream()


def failed(index, when, exit_code=1):
    """A task that failed at ``when`` (RFC 3339), swarm having replaced it."""
    found = task("failed", desired="shutdown", index=index, exit_code=exit_code)
    found["Status"]["Timestamp"] = when
    return found


@pytest.fixture
def swarm(monkeypatch):
    engine = SwarmEngine("unix:///nonexistent.sock", mirror_poll_seconds=0.01)
    api = FakeManagerApi()
    monkeypatch.setattr(SwarmEngine, "api", property(lambda self: api))  # stands in for docker-py's client
    return engine, api


def test_polls_report_changes_failed_tasks_and_removals(swarm):
    engine, api = swarm
    old_failure = failed(5, "2020-01-01T00:00:00.000000001Z")
    api.tasks_list.append(old_failure)
    with engine.events({"live.deployment": "t"}, since=1_600_000_000.0) as stream:
        first = next(stream)
        assert (first.action, first.container_id, first.state.state) == (LISTED, "svc1", "running")
        # The task fails; swarm starts another one.
        api.tasks_list = [old_failure, failed(20, "2030-01-01T00:00:00Z", exit_code=3), task("starting", index=21)]
        died = next(stream)
        assert (died.action, died.attributes["exitCode"]) == ("die", "3")
        assert died.time == pytest.approx(1893456000.0)
        changed = next(stream)
        assert changed.action == LISTED and changed.state.state == "restarting"
        api.services_list = []
        gone = next(stream)
        assert (gone.action, gone.container_id) == ("destroy", "svc1")
    assert api.closed.is_set()


def test_a_failure_before_since_is_not_reported_and_a_broken_stream_raises(swarm):
    engine, api = swarm
    old_failure = failed(5, "2020-01-01T00:00:00Z")
    api.tasks_list.append(old_failure)
    with engine.events({"live.deployment": "t"}, since=1_700_000_000.0) as stream:
        assert next(stream).action == LISTED  # no die: that failure is older than since
        api.breaks.set()
        with pytest.raises(EngineUnavailable, match="event stream broke"):
            next(stream)


def test_a_poll_reports_failures_in_time_order_then_what_it_saw_on_the_bridge_clock(swarm):
    engine, api = swarm
    other = service(healthcheck=False)
    other["ID"] = "svc2"
    api.services_list = [service(healthcheck=False), other]
    with engine.events({"live.deployment": "t"}, since=1_600_000_000.0) as stream:
        assert [next(stream).action for _ in range(2)] == [LISTED, LISTED]
        # Both fail; svc1 (listed first) failed later than svc2.
        late, early = failed(20, "2030-01-01T00:00:02Z"), failed(30, "2030-01-01T00:00:01Z")
        early["ServiceID"] = "svc2"
        api.tasks_list = [late, task("starting", index=21), early]
        events = [next(stream) for _ in range(3)]
    assert [(e.action, e.container_id) for e in events] == [("die", "svc2"), ("die", "svc1"), (LISTED, "svc1")]
    assert events[0].time < events[1].time and not events[0].bridge_clock and not events[1].bridge_clock
    assert events[1].state.state == "restarting"  # the service as the same poll read it
    assert events[2].bridge_clock


def test_removed_services_are_reported_on_the_bridge_clock(swarm):
    engine, api = swarm
    with engine.events({"live.deployment": "t"}) as stream:
        assert next(stream).bridge_clock
        api.services_list = []
        gone = next(stream)
    assert (gone.action, gone.bridge_clock) == ("destroy", True)
