"""The engine mirror (app/stacks/mirror.py) on the in-memory engine: the listing, the events, only changed rows
written, deaths, reconnection with ``since``, freshness, and the views that read it (``runtime``, GeoCat Live)."""
from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time

import pytest

from app.models import EngineMirror, ObservedContainer, utcnow
from app.orders.service import CustomerInfo
from app.stacks.engine import LISTED, ContainerState, EngineEvent
from app.stacks.mirror import MirrorFollower, freshness, observed, readings, utc_of
from app.stacks.project import deployment_selector
from tests.conftest import HELPER_IMAGE
from tests.fakes import FakeEngine
from tests.support.waiting import wait_for
from tests.unit.test_operations_fake import run

SERVICES = ["app", "db", "web"]


@pytest.fixture
def live(fake_live):
    return fake_live


@pytest.fixture
def engine(fake_engine) -> FakeEngine:
    return fake_engine


def create(live, name="acme", service_id=1):
    outcome = live.orders.create(service_id=service_id, customer=CustomerInfo(email="ops@example.org"),
                                 product="busybox-demo", plan="small", username=name)
    run(live)
    return outcome.order


def follower(live, **kwargs) -> MirrorFollower:
    return MirrorFollower(live.engine, live.db, live.settings.deployment, "test:1", **kwargs)


class Stepper:
    """Drives a follower by hand: claim, open the stream from ``since``, list; then apply what the engine has."""

    def __init__(self, mirror: MirrorFollower):
        self.mirror = mirror
        self.context = None
        self.stream = None

    def connect(self) -> int:
        since = self.mirror._claim()
        self.context = self.mirror.engine.events(deployment_selector(self.mirror.deployment), since)
        self.stream = self.context.__enter__()
        return self.mirror.sync()

    def pump(self, beat: bool = True) -> int:
        """Apply every event the engine has recorded so far as one batch (as the follower's thread does), then beat
        (``beat`` false: the worker is killed before its beat); returns the rows written."""
        batch = []
        while self.stream.ready():
            batch.append(next(self.stream))
        written = self.mirror.apply_batch(batch)
        if beat:
            self.mirror.beat(force=True)
        return written

    def close(self):
        if self.context is not None:
            self.context.__exit__(None, None, None)
            self.context = None


@pytest.fixture
def stepper(live):
    stepper = Stepper(follower(live))
    yield stepper
    stepper.close()


@pytest.fixture
def mirrored(live, stepper):
    """busybox-demo's order ``acme``, deployed while the stepper's follower was connected, its events applied."""
    stepper.connect()
    order = create(live)
    stepper.pump()
    return order


def container(live, engine, service):
    return engine.container(f"{live.settings.deployment}-acme_{service}")


def rows(order_id) -> dict[str, ObservedContainer]:
    return observed([order_id]).get(order_id, {})


def states(order_id) -> dict[str, str]:
    return {service: row.state for service, row in rows(order_id).items()}


def test_the_first_listing_writes_every_container_and_a_second_one_nothing(live, engine, stepper):
    order = create(live)
    assert stepper.connect() == 3
    assert states(order.id) == {"app": "running", "db": "running", "web": "running"}
    row = rows(order.id)["web"]
    assert row.name.endswith("acme_web") and row.config_hash and row.deaths == 0
    assert freshness(live.settings.deployment).fresh
    assert stepper.mirror.sync() == 0  # nothing changed: nothing written
    stepper.pump()
    assert stepper.mirror.writes == 3  # the create's events were before the listing: the table already says so


def test_events_are_applied_and_only_changed_rows_written(live, engine, stepper, mirrored):
    order = mirrored
    assert states(order.id) == {"app": "running", "db": "running", "web": "running"}
    writes = stepper.mirror.writes
    web = container(live, engine, "web")
    engine.stop_container(web.id, 1)  # kill (kept on the row), die (exited, the kill used), stop (nothing new)
    stepper.pump()
    assert states(order.id)["web"] == "exited"
    assert stepper.mirror.writes == writes + 2
    assert rows(order.id)["web"].killed_at is None
    assert rows(order.id)["web"].deaths == 0  # a stop is no death
    engine.pause_container(container(live, engine, "app").id)
    stepper.pump()
    assert states(order.id)["app"] == "paused"
    engine.remove_container(web.id)
    stepper.pump()
    assert "web" not in rows(order.id)


def test_a_crash_is_a_death_and_a_restart_is_seen(live, engine, stepper, mirrored):
    order = mirrored
    db = container(live, engine, "db")
    engine.crash(db.id, 2)
    stepper.pump()
    row = rows(order.id)["db"]
    assert (row.state, row.exit_code, row.deaths) == ("exited", 2, 1)
    assert row.last_died_at is not None
    engine.start_container(db.id)
    engine.crash(db.id, 2)
    engine.start_container(db.id)
    stepper.pump()
    row = rows(order.id)["db"]
    assert (row.state, row.deaths) == ("running", 2)


def test_health_events_and_archive_helpers(live, engine, stepper, mirrored):
    order = mirrored
    web = container(live, engine, "web")
    engine.record(web, "health_status: unhealthy")
    stepper.pump()
    assert rows(order.id)["web"].health == "unhealthy"
    # A container without a service label (an archive helper of the order) is never a row.
    helper = engine._add_helper("db-data", HELPER_IMAGE, "helper", {"live.deployment": live.settings.deployment,
                                                                     "live.order": str(order.id),
                                                                     "live.role": "archive-helper"})
    engine.record(helper, "create")
    engine.record(helper, "die", exitCode="0")
    stepper.pump()
    stepper.mirror.sync()  # nor from a listing
    assert not ObservedContainer.select().where(ObservedContainer.container_id == helper.id).exists()


def test_a_reconnection_resumes_from_the_last_event_and_counts_deaths_once(live, engine, stepper, mirrored):
    order = mirrored
    db = container(live, engine, "db")
    engine.crash(db.id, 1)
    stepper.pump()
    assert rows(order.id)["db"].deaths == 1
    # The stream breaks (the engine restarted); meanwhile the container dies again and is started.
    engine.break_events()
    with pytest.raises(Exception):
        next(stepper.stream)
    stepper.close()
    engine.start_container(db.id)
    engine.crash(db.id, 1)
    # A new follower (the worker restarted) resumes from the table's last event time.
    again = Stepper(follower(live))
    again.connect()
    again.pump()
    assert rows(order.id)["db"].deaths == 2  # the death while away counted, the first one not again
    assert rows(order.id)["db"].state == "exited"
    again.close()


def test_a_batch_calls_the_engine_before_its_transaction(live, engine, stepper, mirrored, monkeypatch):
    """An engine call inside a transaction would hold SQLite's write lock for as long as the engine takes."""
    order = mirrored
    inspect = engine.inspect_container
    inspected = []

    def outside_transactions(container_id):
        assert not live.db.in_transaction(), "the engine was called inside a database transaction"
        inspected.append(container_id)
        return inspect(container_id)

    monkeypatch.setattr(engine, "inspect_container", outside_transactions)
    db = container(live, engine, "db")
    for _ in range(2):
        engine.crash(db.id, 1)
        engine.start_container(db.id)
    stepper.pump()
    assert inspected == [db.id]  # one inspect per started container, however many starts the batch has
    row = rows(order.id)["db"]
    assert (row.state, row.deaths) == ("running", 2)


def test_a_worker_killed_after_a_batch_resumes_after_it(live, engine, stepper, mirrored):
    """The batch's rows and the point to resume from commit together: a worker SIGKILLed before its next beat
    leaves no batch to replay, so its deaths are counted once."""
    order = mirrored
    db = container(live, engine, "db")
    engine.crash(db.id, 1)
    stepper.pump(beat=False)
    stepper.close()
    again = Stepper(follower(live))
    again.connect()
    again.pump()
    assert rows(order.id)["db"].deaths == 1
    again.close()


def test_a_batch_that_fails_is_replayed_whole(live, engine, stepper, mirrored, monkeypatch):
    """Rolled back: neither its rows nor its resume point stay, in the table or in memory; the reconnection
    applies it again, counting its death once."""
    order = mirrored
    mirror = stepper.mirror
    resume_point = EngineMirror.get().last_event_at
    db, web = container(live, engine, "db"), container(live, engine, "web")
    engine.crash(db.id, 1)
    engine.crash(web.id, 1)
    put = mirror._put

    def fails_at_the_second_row(cid, *args, **kwargs):
        if cid == web.id:
            raise RuntimeError("the database went away")
        return put(cid, *args, **kwargs)

    monkeypatch.setattr(mirror, "_put", fails_at_the_second_row)
    with pytest.raises(RuntimeError):
        stepper.pump()
    assert rows(order.id)["db"].deaths == 0 and EngineMirror.get().last_event_at == resume_point
    monkeypatch.setattr(mirror, "_put", put)
    stepper.close()
    stepper.connect()  # the same follower reconnects: from the committed point
    stepper.pump()
    assert (rows(order.id)["db"].deaths, rows(order.id)["web"].deaths) == (1, 1)


def test_a_stop_whose_kill_and_die_two_workers_saw_is_no_death(live, engine, stepper, mirrored):
    order = mirrored
    web = container(live, engine, "web")
    engine.stop_container(web.id, 1)
    batch = []
    while stepper.stream.ready():
        batch.append(next(stepper.stream))
    assert [e.action for e in batch] == ["kill", "die", "stop"]
    stepper.mirror.apply_batch(batch[:1])  # the first worker applies the kill, then is SIGKILLed
    assert rows(order.id)["web"].killed_at is not None
    stepper.close()
    again = Stepper(follower(live))  # the next worker sees the die
    again.connect()
    again.pump()
    row = rows(order.id)["web"]
    assert (row.state, row.deaths, row.killed_at) == ("exited", 0, None)
    again.close()


def test_a_kill_excuses_only_a_die_soon_after_it_and_before_a_start(live, engine, stepper, mirrored):
    from app.stacks.mirror import KILL_SECONDS

    order = mirrored
    web, db = container(live, engine, "web"), container(live, engine, "db")
    engine.record(web, "kill", signal="1")  # a signal the process handles: it keeps running
    engine.now += KILL_SECONDS + 1
    engine.crash(web.id, 1)  # long after: a death
    engine.record(db, "kill", signal="1")
    engine.stop_container(db.id, 1)  # kill, die: no death
    engine.start_container(db.id)  # a start forgets the kill
    stepper.pump()
    assert rows(order.id)["db"].killed_at is None
    engine.crash(db.id, 1)
    stepper.pump()
    assert (rows(order.id)["web"].deaths, rows(order.id)["db"].deaths) == (1, 1)


def test_a_listing_removes_rows_of_containers_gone_while_away(live, engine, stepper, mirrored):
    order = mirrored
    stepper.close()
    web = container(live, engine, "web")
    del engine.containers[web.id]  # gone without an event the follower could see (a lost engine buffer)
    again = Stepper(follower(live))
    again.connect()
    assert set(rows(order.id)) == {"app", "db"}
    again.close()


def test_listed_events_carry_a_whole_state(live, stepper):
    stepper.connect()
    labels = {"live.deployment": live.settings.deployment, "live.order": "7", "live.service": "web"}
    state = ContainerState(id="svc1", name="x_web", labels=labels, state="restarting", node="n1", error="boom")
    mirror = stepper.mirror
    assert mirror.apply(EngineEvent(time=1.0, action=LISTED, container_id="svc1", labels=labels, state=state))
    assert not mirror.apply(EngineEvent(time=2.0, action=LISTED, container_id="svc1", labels=labels, state=state))
    assert mirror.apply(EngineEvent(time=3.0, action="die", container_id="svc1", labels=labels,
                                    attributes={"exitCode": "1"}))
    row = rows(7)["web"]
    assert (row.node, row.error, row.deaths) == ("n1", "boom", 1)


def swarm_labels(live, order_id, service):
    return {"live.deployment": live.settings.deployment, "live.order": str(order_id), "live.service": service}


def test_deaths_out_of_time_order_on_one_stream_are_all_counted(live, stepper):
    # A swarm poll reads services one after the other: service b's failure (earlier) may come after a's.
    stepper.connect()
    mirror = stepper.mirror
    assert mirror.apply(EngineEvent(time=2_000_000_000.0, action="die", container_id="svc-a",
                                    labels=swarm_labels(live, 7, "a"), attributes={"exitCode": "1"}))
    assert mirror.apply(EngineEvent(time=1_999_999_999.0, action="die", container_id="svc-b",
                                    labels=swarm_labels(live, 7, "b"), attributes={"exitCode": "1"}))
    assert (rows(7)["a"].deaths, rows(7)["b"].deaths) == (1, 1)
    assert mirror._last_time == 2_000_000_000.0  # the point to resume from is the latest engine time


def test_a_swarm_death_takes_the_state_the_poll_read(live, stepper):
    stepper.connect()
    labels = swarm_labels(live, 7, "web")
    replaced = ContainerState(id="svc1", name="x_web", labels=labels, state="restarting", node="n1", error="boom")
    assert stepper.mirror.apply(EngineEvent(time=1.0, action="die", container_id="svc1", labels=labels,
                                            attributes={"exitCode": "1"}, state=replaced))
    row = rows(7)["web"]
    assert (row.state, row.error, row.deaths) == ("restarting", "boom", 1)


def test_bridge_clock_events_neither_move_the_resume_point_nor_are_skipped_as_replays(live, stepper):
    stepper.connect()
    mirror = stepper.mirror
    a, b = swarm_labels(live, 7, "a"), swarm_labels(live, 7, "b")
    state_of = {cid: ContainerState(id=cid, name=f"x_{labels['live.service']}", labels=labels, state="running")
                for cid, labels in (("svc-a", a), ("svc-b", b))}
    for cid, state in state_of.items():
        mirror.apply(EngineEvent(time=5_000.0, action=LISTED, container_id=cid, labels=state.labels, state=state,
                                 bridge_clock=True))
    mirror.apply(EngineEvent(time=1_000.0, action="die", container_id="svc-a", labels=a, attributes={"exitCode": "1"}))
    # The bridge's clock runs ahead of the manager's: a service gone, seen by the poll "at 5001".
    assert mirror.apply(EngineEvent(time=5_001.0, action="destroy", container_id="svc-a", labels=a,
                                    bridge_clock=True))
    assert mirror._last_time == 1_000.0
    mirror.beat(force=True)
    assert EngineMirror.get().last_event_at == utc_of(1_000.0)
    # A task failure of 1500 (engine time, after the last one) still counts.
    assert mirror.apply(EngineEvent(time=1_500.0, action="die", container_id="svc-b", labels=b,
                                    attributes={"exitCode": "1"}))
    assert rows(7)["b"].deaths == 1 and "a" not in rows(7)
    mirror.beat(force=True)
    # Resumed (a new stream from 1500): an engine event up to it is a replay, a bridge-clock one is not.
    again = Stepper(follower(live))
    assert again.mirror._claim() == pytest.approx(1_500.0, abs=1e-5)
    assert not again.mirror.apply(EngineEvent(time=1_500.0, action="die", container_id="svc-b", labels=b,
                                              attributes={"exitCode": "1"}))
    again.mirror.sync()
    assert again.mirror.apply(EngineEvent(time=1_000.0, action=LISTED, container_id="svc-b", labels=b, bridge_clock=True,
                                          state=ContainerState(id="svc-b", name="x_b", labels=b, state="exited")))
    assert again.mirror.apply(EngineEvent(time=1_000.0, action="destroy", container_id="svc-b", labels=b,
                                          bridge_clock=True))
    assert rows(7) == {}


def test_freshness_needs_a_connection_and_a_recent_beat(live, stepper):
    deployment = live.settings.deployment
    assert not freshness(deployment).fresh  # no follower yet
    assert freshness(deployment).age_seconds is None
    stepper.connect()
    assert freshness(deployment).fresh
    EngineMirror.update(beat_at=utcnow() - dt.timedelta(seconds=11)).execute()
    assert not freshness(deployment, stale_seconds=10).fresh
    assert freshness(deployment, stale_seconds=20).fresh
    EngineMirror.update(beat_at=utcnow(), connected=False).execute()
    assert not freshness(deployment).fresh


def test_order_views_show_the_runtime_and_unknown_when_stale(live, engine, stepper, mirrored):
    order = mirrored
    runtime = live.queries.order_view(order)["runtime"]
    assert runtime["state"] == "running"
    assert [s["service"] for s in runtime["services"]] == SERVICES
    assert runtime["age_seconds"] is not None and runtime["observed_at"].endswith("Z")
    engine.crash(container(live, engine, "db").id, 1)
    stepper.pump()
    assert live.queries.order_view(order)["runtime"]["state"] == "degraded"
    assert live.queries.service_info(order.whmcs_service_id)["runtime"]["state"] == "degraded"
    assert [s["status"] for s in live.queries.geocat_live_services("acme")] == ["SERVICE_RUNNING"]  # web's endpoint
    engine.crash(container(live, engine, "web").id, 1)
    stepper.pump()
    assert [s["status"] for s in live.queries.geocat_live_services("acme")] == ["SERVICE_ERROR"]
    # The stream down: every view says unknown, never a stale state.
    EngineMirror.update(connected=False).execute()
    runtime = live.queries.order_view(order)["runtime"]
    assert runtime["state"] == "unknown" and {s["state"] for s in runtime["services"]} == {"unknown"}
    assert live.queries.order_page(status=None, product=None, customer_id=None, service_id=None, page=1,
                                   per_page=10)["items"][0]["runtime"]["state"] == "unknown"
    assert [s["status"] for s in live.queries.geocat_live_services("acme")] == ["SERVICE_WAITING"]


def test_geocat_live_says_waiting_while_the_engine_restarts_the_endpoint(live, engine, stepper, mirrored):
    order = mirrored
    web = container(live, engine, "web")
    ObservedContainer.update(state="restarting").where(ObservedContainer.container_id == web.id).execute()
    assert [s["status"] for s in live.queries.geocat_live_services("acme")] == ["SERVICE_WAITING"]
    assert live.queries.order_view(order)["runtime"]["state"] == "degraded"
    ObservedContainer.update(state="running").where(ObservedContainer.container_id == web.id).execute()
    assert [s["status"] for s in live.queries.geocat_live_services("acme")] == ["SERVICE_RUNNING"]


def test_runtime_states_stopped_starting_and_missing(live, engine, stepper):
    stepper.connect()
    order = create(live)
    live.orders.suspend(order)
    run(live)
    stepper.pump()
    assert live.queries.order_view(order)["runtime"]["state"] == "stopped"
    live.orders.unsuspend(order)
    run(live)
    db = container(live, engine, "db")
    engine.record(db, "health_status: starting")  # db has a healthcheck: running, not healthy yet
    stepper.pump()
    runtime = live.queries.order_view(order)["runtime"]
    assert runtime["state"] == "starting"
    assert {"service": "db", "state": "running", "health": "starting"} in runtime["services"]
    engine.remove_container(container(live, engine, "app").id)
    stepper.pump()
    services = {s["service"]: s["state"] for s in live.queries.order_view(order)["runtime"]["services"]}
    assert services["app"] == "missing"


def test_runtime_takes_services_and_one_shot_jobs_from_what_the_deploy_recorded(live, engine, stepper, mirrored):
    """One rule of "one-shot" (the drift checker's, recorded at deploy): ``runtime`` and ``drift`` agree on a job
    that exited 0, and on one whose container was removed after it finished."""
    from app.orders.drift import record_expected

    order = mirrored
    record_expected(order, {"app": {"config_hash": None, "one_shot": True},
                            "db": {"config_hash": None, "one_shot": False},
                            "web": {"config_hash": None, "one_shot": False}})
    engine.crash(container(live, engine, "app").id, 0)  # a job that finished
    stepper.pump()
    view = live.queries.service_info(order.whmcs_service_id)
    assert view["runtime"]["state"] == "running"
    assert {"service": "app", "state": "exited", "health": None} in view["runtime"]["services"]
    assert [s["service"] for s in view["runtime"]["services"]] == SERVICES
    engine.remove_container(container(live, engine, "app").id)  # `docker container prune` after the job finished
    stepper.pump()
    view = live.queries.order_view(order)
    assert view["runtime"]["state"] == "running"
    assert {"service": "app", "state": "missing", "health": None} in view["runtime"]["services"]
    engine.crash(container(live, engine, "web").id, 0)  # not a job: exit 0 of a server is a stop
    stepper.pump()
    assert live.queries.order_view(order)["runtime"]["state"] == "degraded"
    engine.start_container(container(live, engine, "web").id)
    engine.remove_container(container(live, engine, "db").id)  # a server's container removed: degraded
    stepper.pump()
    assert live.queries.order_view(order)["runtime"]["state"] == "degraded"


def test_before_any_deploy_recorded_what_runs_the_compose_services_are_shown(live, engine, stepper, mirrored):
    from app.models import OrderDrift

    order = mirrored
    OrderDrift.delete().where(OrderDrift.order == order.id).execute()  # an order made before migration 0014
    engine.crash(container(live, engine, "app").id, 0)
    stepper.pump()
    view = live.queries.order_view(order)
    assert view["drift"] is None
    assert [s["service"] for s in view["runtime"]["services"]] == SERVICES
    assert view["runtime"]["state"] == "running"  # not recorded: an exit 0 is taken for a finished job


def test_the_status_view_is_three_statements_and_agrees_with_the_order_view(live, engine, stepper, mirrored):
    """The WHMCS status view reads the order with its relations, drift record and backups' outcome in one statement,
    then its recent operations and the mirror's reading: 3 in all, whatever the order has."""
    from app.models import Backup, utcnow

    order = mirrored
    Backup.create(order=order, kind="scheduled", state="succeeded", started_at=utcnow(), finished_at=utcnow())
    Backup.create(order=order, kind="manual", state="failed", started_at=utcnow(), error="store full")
    view, queries = counted(lambda: live.queries.service_info(order.whmcs_service_id))
    assert len(queries) == 3, queries
    full = live.queries.order_view(live.queries.order(order.id))
    for key in ("backups", "drift", "runtime", "status", "customer", "revision"):
        assert view[key] == {**full, "runtime": {**full["runtime"], "age_seconds": view["runtime"]["age_seconds"]}}[key]
    assert view["backups"]["last_failure"]["error"] == "store full" and view["backups"]["last_success_at"]
    assert view["drift"]["state"] == "ok"
    with pytest.raises(Exception, match="no order for WHMCS service 999"):
        live.queries.service_info(999)


def test_views_never_call_the_engine(live, engine, stepper, mirrored):
    order = mirrored
    calls = engine.api_calls
    live.queries.order_view(order)
    live.queries.service_info(order.whmcs_service_id)
    live.queries.geocat_live_services("acme")
    live.queries.order_views()
    assert engine.api_calls == calls


def test_the_follower_thread_reconnects_after_the_stream_breaks(live, engine):
    mirror = follower(live, backoff_base=0.01, beat_seconds=0.1)
    mirror.start()
    try:
        wait_for(lambda: freshness(live.settings.deployment).fresh, timeout=10, what="connected")
        order = create(live)
        wait_for(lambda: states(order.id) == {"app": "running", "db": "running", "web": "running"}, timeout=10,
                 what="the deploy mirrored")
        engine.reachable = False
        engine.break_events()
        wait_for(lambda: not freshness(live.settings.deployment).connected, timeout=10, what="disconnected")
        assert "fake engine" in (freshness(live.settings.deployment).error or "")
        assert live.queries.order_view(order)["runtime"]["state"] == "unknown"
        engine.crash(container(live, engine, "web").id, 3)
        engine.reachable = True
        wait_for(lambda: freshness(live.settings.deployment).fresh, timeout=10, what="reconnected")
        wait_for(lambda: rows(order.id)["web"].deaths == 1, timeout=10, what="the death while away counted")
        assert mirror.connections >= 2
    finally:
        mirror.stop()
    state = freshness(live.settings.deployment)
    assert not state.connected and "stopped" in state.error


def test_the_worker_runs_the_follower_with_its_name(live):
    worker = live.worker()
    assert worker.mirror is not None and worker.mirror.follower == worker.worker_id


def counted(fn):
    """``fn()``'s result and the SQL statements it ran."""
    from app.db import database

    queries = []
    original = database.obj.execute_sql

    def counting(sql, *args, **kwargs):
        queries.append(sql)
        return original(sql, *args, **kwargs)

    database.obj.execute_sql = counting
    try:
        return fn(), queries
    finally:
        database.obj.execute_sql = original


def test_observed_and_readings_are_one_query_for_many_orders(live, stepper):
    deployment = live.settings.deployment
    assert not readings(deployment, [1])[1].freshness.fresh  # no follower yet: nothing is fresh
    stepper.connect()
    for n in range(3):
        create(live, name=f"o{n}", service_id=10 + n)
    stepper.pump()
    ids = list(range(1, 10))
    found, queries = counted(lambda: observed(ids))
    assert len(queries) == 1 and len(found) == 3
    assert all(set(services) == set(SERVICES) for services in found.values())
    read, queries = counted(lambda: readings(deployment, ids))
    assert len(queries) == 1
    assert {i: {s: r.container_id for s, r in m.containers.items()} for i, m in read.items() if m.containers} == {
        i: {s: r.container_id for s, r in services.items()} for i, services in found.items()}
    assert all(m.freshness.fresh for m in read.values())
    assert readings(deployment, [])  == {} and readings(deployment, [99])[99].containers == {}
    assert readings(deployment, [99])[99].freshness.fresh


def test_time_is_kept_between_followers():
    from app.stacks.mirror import engine_time, utc_of

    now = time.time()
    assert abs(engine_time(utc_of(now)) - now) < 1e-5


def _silent_events(engine, monkeypatch):
    """The engine's stream stops delivering without breaking (a half-open connection, a hung swarm poll)."""
    hang = threading.Event()

    @contextlib.contextmanager
    def silent(labels, since=None):
        def stream():
            hang.wait()
            return
            yield
        yield stream()

    monkeypatch.setattr(engine, "events", silent)
    return hang


def test_a_silent_stream_is_corrected_by_the_periodic_listing_and_reconnected(live, engine, monkeypatch):
    order = create(live)
    hang = _silent_events(engine, monkeypatch)
    mirror = follower(live, beat_seconds=0.05, resync_seconds=0.3, backoff_base=0.01)
    mirror.start()
    try:
        wait_for(lambda: freshness(live.settings.deployment).fresh and states(order.id).get("web") == "running",
                 timeout=10, what="connected")
        engine.stop_container(container(live, engine, "web").id, timeout=1)  # the stream says nothing of it
        wait_for(lambda: states(order.id)["web"] == "exited", timeout=10, what="the listing corrected the row")
        wait_for(lambda: mirror.connections >= 2, timeout=10, what="a reconnection after the missed change")
    finally:
        hang.set()
        mirror.stop()


def test_no_beat_while_the_engine_does_not_answer(live, engine, monkeypatch):
    create(live)
    hang = _silent_events(engine, monkeypatch)
    mirror = follower(live, beat_seconds=0.05, backoff_base=0.01)
    mirror.start()
    try:
        wait_for(lambda: freshness(live.settings.deployment).fresh, timeout=10, what="connected")
        engine.reachable = False  # the stream stays open and quiet: only the ping tells
        wait_for(lambda: not freshness(live.settings.deployment, stale_seconds=0.5).fresh, timeout=10,
                 what="the mirror went stale")
        assert not freshness(live.settings.deployment).connected
    finally:
        engine.reachable = True
        hang.set()
        mirror.stop()


# -- operator signals: /metrics and `live doctor` ---------------------------------------------------------------
def mirror_metrics(live) -> dict[str, float]:
    from prometheus_client import CollectorRegistry, generate_latest

    from app.web.observability import DatabaseCollector

    registry = CollectorRegistry()
    registry.register(DatabaseCollector(live.queries))
    return {line.split(" ")[0]: float(line.split(" ")[1]) for line in generate_latest(registry).decode().splitlines()
            if line.startswith("live_mirror_")}


def test_metrics_show_whether_the_mirror_is_fresh_and_its_age(live, stepper):
    assert mirror_metrics(live) == {"live_mirror_age_seconds": -1.0, "live_mirror_fresh": 0.0}  # no follower ever
    stepper.connect()
    figures = mirror_metrics(live)
    assert figures["live_mirror_fresh"] == 1.0 and 0 <= figures["live_mirror_age_seconds"] < 10
    EngineMirror.update(beat_at=utcnow() - dt.timedelta(seconds=42)).execute()  # a worker killed 42 s ago
    figures = mirror_metrics(live)
    assert figures["live_mirror_fresh"] == 0.0 and 42 <= figures["live_mirror_age_seconds"] < 100
    EngineMirror.update(beat_at=utcnow(), connected=False).execute()
    assert mirror_metrics(live)["live_mirror_fresh"] == 0.0


def test_metrics_say_not_fresh_while_the_database_cannot_be_read(live, monkeypatch):
    import peewee

    def unreadable(*args, **kwargs):
        raise peewee.OperationalError("database is down")

    monkeypatch.setattr(live.queries, "mirror_freshness", unreadable)
    assert mirror_metrics(live) == {"live_mirror_fresh": 0.0}


def test_doctor_reports_the_mirror_as_a_warning_unless_fresh(live, engine, stepper):
    from app.doctor import OK, WARN, Doctor

    doctor = Doctor(live.settings, live.db, engine, live.catalog, store=live.backups.store)

    def check():
        calls = engine.api_calls
        finding = doctor.check_mirror()
        assert engine.api_calls == calls and finding.check == "mirror"  # the row, never the engine
        return finding

    none = check()
    assert none.status == WARN and none.finding.startswith("no worker has followed the engine yet")
    assert "start the worker" in none.fix
    stepper.connect()
    fresh = check()
    assert fresh.status == OK and fresh.finding.startswith("fresh: test:1 follows the engine, last beat ")
    EngineMirror.update(beat_at=utcnow() - dt.timedelta(minutes=7)).execute()
    stale = check()
    assert stale.status == WARN and stale.finding.startswith("stale: last beat 7 min ago by test:1")
    stepper.mirror._mark_disconnected("the worker stopped following the engine")
    stopped = check()
    assert stopped.status == WARN and "the worker stopped following the engine" in stopped.finding
