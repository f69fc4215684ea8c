"""Drift (app/orders/drift.py): what should run recorded by the handlers, judged against the mirror's rows.

The application runs on the in-memory engine (``fake_live``); :func:`mirror` plays the worker's mirror: it writes
``observed_container`` rows from what the FakeEngine holds (deaths kept per container) and beats
``engine_mirror``. The checker runs with no settle time, so a pass judges what a test just did.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from types import SimpleNamespace

import pytest

from app.config import load_settings
from app.errors import ConfigError
from app.models import EngineMirror, Event, ObservedContainer, Operation, Order, OrderDrift, utcnow
from app.orders.drift import (
    MASK,
    DriftMode,
    DriftState,
    expected_services,
    mask_secrets,
    problems_of,
)
from app.presenters import PRIVATE_EVENT_DATA, event_view
from app.stacks.project import CONFIG_HASH_LABEL
from tests.unit.test_operations_fake import SERVICES, create, engine, live, run  # noqa: F401 (fixtures)


def mirror(live, engine, *, fresh: bool = True, beat_age: float = 0.0) -> None:
    """Write the mirror's rows as the worker's mirror would: every container of the deployment, deaths kept."""
    deaths = {row.container_id: (row.deaths, row.last_died_at) for row in ObservedContainer.select()}
    ObservedContainer.delete().execute()
    now = utcnow()
    for container in engine.list_containers({"live.deployment": live.settings.deployment}):
        died, last = deaths.get(container.id, (0, None))
        ObservedContainer.create(container_id=container.id, order_id=int(container.labels["live.order"]),
                                 service=container.service, name=container.name, state=container.state,
                                 health=container.health, exit_code=container.exit_code,
                                 config_hash=container.labels.get(CONFIG_HASH_LABEL), deaths=died,
                                 last_died_at=last, changed_at=now, observed_at=now)
    EngineMirror.delete().execute()
    EngineMirror.create(deployment=live.settings.deployment, follower="test:1", connected=fresh,
                        beat_at=now - dt.timedelta(seconds=beat_age))


def checker(live, **rules):
    """The worker's checker (bootstrap's), with no settle time and ``rules`` changed."""
    drift = live.drift_checker()
    drift.rules = dataclasses.replace(drift.rules, settle_seconds=0.0, confirm_seconds=0.0, **rules)
    return drift


def row_of(live, engine, order: Order, service: str) -> ObservedContainer:
    return ObservedContainer.get((ObservedContainer.order_id == order.id) & (ObservedContainer.service == service))


def kinds(order: Order, prefix: str = "drift_") -> list[str]:
    return [e.kind for e in Event.select().where((Event.order == order) & Event.kind.startswith(prefix)).order_by(Event.id)]


def operations(order: Order) -> list[tuple[str, str, str]]:
    return [(o.kind, o.state, o.requested_by) for o in Operation.select().where(Operation.order == order).order_by(Operation.id)]


def container(engine, order: Order, service: str):
    return next(c for c in engine.containers.values()
                if c.service == service and c.labels.get("live.order") == str(order.id))


def drift_key(live, order: Order) -> dict:
    return live.queries.order_view(Order.get_by_id(order.id))["drift"]


# -- what should run ----------------------------------------------------------------------------------
def test_each_deploy_records_what_should_run_and_suspend_that_nothing_should(live, engine):
    order = create(live)
    expected = OrderDrift.get(OrderDrift.order == order.id).expected
    assert sorted(expected) == SERVICES
    for service in SERVICES:
        assert expected[service] == {"config_hash": container(engine, order, service).labels[CONFIG_HASH_LABEL],
                                     "one_shot": False}
    live.orders.suspend(order)
    run(live)
    assert OrderDrift.get(OrderDrift.order == order.id).expected == {}
    live.orders.unsuspend(Order.get_by_id(order.id))
    run(live)
    assert sorted(OrderDrift.get(OrderDrift.order == order.id).expected) == SERVICES
    assert drift_key(live, order)["state"] == "ok"


def test_only_a_service_waited_for_to_complete_is_one_shot_not_one_restarted_on_failure():
    """A server restarted ``on-failure`` that exits 0 on SIGTERM (PostgreSQL) is no job: stopped, it is drift."""
    stack = SimpleNamespace(services={
        "migrate": SimpleNamespace(depends_on={}, restart={"Name": "no"}),
        "db": SimpleNamespace(depends_on={}, restart={"Name": "on-failure", "MaximumRetryCount": 3}),
        "web": SimpleNamespace(depends_on={"migrate": "service_completed_successfully", "db": "service_started"},
                               restart={"Name": "always"}),
    })
    expected = expected_services(stack, {"migrate": "h1", "web": "h2"})
    assert expected == {"db": {"config_hash": None, "one_shot": False},
                        "migrate": {"config_hash": "h1", "one_shot": True},
                        "web": {"config_hash": "h2", "one_shot": False}}
    now = utcnow()

    def row(service, state, code=None):
        return ObservedContainer(container_id=service, order_id=1, service=service, name=service, state=state,
                                 exit_code=code, config_hash=expected[service]["config_hash"], changed_at=now)

    containers = {"db": row("db", "exited", 0), "migrate": row("migrate", "exited", 0), "web": row("web", "running")}
    assert problems_of(expected, containers, now, SimpleNamespace(unhealthy_seconds=60.0, confirm_seconds=0.0)) == [
        {"service": "db", "kind": "exited", "detail": "exit code 0"}]


def test_a_one_shot_service_whose_container_was_removed_after_it_finished_is_no_drift():
    now = utcnow()
    rules = SimpleNamespace(unhealthy_seconds=60.0, confirm_seconds=0.0)
    expected = {"migrate": {"config_hash": "h", "one_shot": True}, "web": {"config_hash": "w", "one_shot": False}}
    web = ObservedContainer(container_id="w", order_id=1, service="web", name="web", state="running",
                            config_hash="w", changed_at=now)
    assert problems_of(expected, {"web": web}, now, rules) == []  # `docker container prune` after the job
    assert problems_of(expected, {}, now, rules) == [{"service": "web", "kind": "missing", "detail": "no container"}]


def test_a_one_shot_service_that_exited_0_is_no_drift_and_one_that_failed_is():
    now = utcnow()
    rules = SimpleNamespace(unhealthy_seconds=60.0, confirm_seconds=0.0)
    expected = {"migrate": {"config_hash": "h", "one_shot": True}, "web": {"config_hash": "w", "one_shot": False}}

    def row(state, code, service):
        return ObservedContainer(container_id=service, order_id=1, service=service, name=service, state=state,
                                 exit_code=code, config_hash=expected[service]["config_hash"], changed_at=now)

    assert problems_of(expected, {"migrate": row("exited", 0, "migrate"), "web": row("running", None, "web")},
                       now, rules) == []
    assert problems_of(expected, {"migrate": row("exited", 2, "migrate"), "web": row("exited", 0, "web")},
                       now, rules) == [{"service": "migrate", "kind": "exited", "detail": "exit code 2"},
                                       {"service": "web", "kind": "exited", "detail": "exit code 0"}]


# -- each kind of drift, repaired ------------------------------------------------------------------
def _missing(engine, order, row):
    engine.remove_container(row.container_id)


def _exited(engine, order, row):
    container(engine, order, "app").exit(1)


def _dead(engine, order, row):
    container(engine, order, "app").state = "dead"


def _paused(engine, order, row):
    engine.pause_container(row.container_id)


def _created(engine, order, row):
    container(engine, order, "app").state = "created"


def _config_changed(engine, order, row):
    container(engine, order, "app").payload["Labels"][CONFIG_HASH_LABEL] = "0" * 64


DRIFTS = {"missing": _missing, "exited": _exited, "dead": _dead, "paused": _paused, "created": _created,
          "config_changed": _config_changed}


@pytest.mark.parametrize("kind", sorted(DRIFTS))
def test_each_kind_of_drift_is_detected_shown_and_repaired_by_one_redeploy(live, engine, kind):
    order = create(live)
    mirror(live, engine)
    drift = checker(live)
    assert drift.check().detected == []
    DRIFTS[kind](engine, order, row_of(live, engine, order, "app"))
    mirror(live, engine)

    done = drift.check()

    assert done.detected == [order.id] and done.repaired == [order.id]
    view = drift_key(live, order)
    assert view["state"] == "repairing" and view["repairs"] == 1
    assert [p["kind"] for p in view["problems"]] == [kind] and view["problems"][0]["service"] == "app"
    assert operations(order)[-1] == ("redeploy", "pending", "drift")
    assert drift.check().detected == []  # an order being repaired is not judged again
    run(live)
    assert container(engine, order, "app").state == "running"
    mirror(live, engine)
    assert drift.check().cleared == [order.id]
    assert drift_key(live, order)["state"] == "ok"
    assert kinds(order) == ["drift_detected", "drift_repaired"]


def test_a_container_unhealthy_for_long_is_drift_and_a_short_while_is_not(live, engine):
    order = create(live)
    container(engine, order, "db").health = "unhealthy"
    mirror(live, engine)
    drift = checker(live, unhealthy_seconds=60.0)
    assert drift.check().detected == []
    ObservedContainer.update(changed_at=utcnow() - dt.timedelta(seconds=61)).where(
        ObservedContainer.service == "db").execute()
    assert drift.check().detected == [order.id]
    assert drift_key(live, order)["problems"][0]["kind"] == "unhealthy"


# -- when nothing is decided -----------------------------------------------------------------------
@pytest.mark.parametrize("how", ["disconnected", "old beat", "no mirror"])
def test_a_stale_mirror_decides_nothing(live, engine, how):
    order = create(live)
    engine.remove_container(container(engine, order, "web").id)
    mirror(live, engine, fresh=how != "disconnected", beat_age=60.0 if how == "old beat" else 0.0)
    if how == "no mirror":
        EngineMirror.delete().execute()

    done = checker(live).check()

    assert not done.fresh and done.detected == []
    assert kinds(order) == [] and operations(order)[-1][0] == "create"
    assert drift_key(live, order)["state"] == "ok"


def test_orders_with_an_unfinished_operation_or_not_active_are_not_judged(live, engine):
    busy, suspended = create(live, "busy", 1), create(live, "idle", 2)
    live.orders.suspend(suspended)
    run(live)
    live.orders.restart(busy)  # queued, not run
    for order in (busy, suspended):
        for c in [c for c in engine.containers.values() if c.labels.get("live.order") == str(order.id)]:
            engine.remove_container(c.id)
    mirror(live, engine)

    done = checker(live).check()

    assert done.checked == 0 and done.detected == []
    assert operations(busy)[-1] == ("restart", "pending", "system")


def test_the_repair_is_not_queued_when_another_operation_came_first(live, engine):
    order = create(live)
    live.orders.restart(order)
    outcome = live.orders.redeploy(order, requested_by="drift", only_if_idle=True)
    assert outcome.operation is None and "under way" in outcome.message
    assert [kind for kind, _, _ in operations(order)] == ["create", "restart"]


def test_an_order_made_before_drift_was_recorded_is_not_judged(live, engine):
    order = create(live)
    OrderDrift.delete().execute()
    engine.remove_container(container(engine, order, "web").id)
    mirror(live, engine)
    assert checker(live).check().detected == []
    assert drift_key(live, order) is None


# -- bounded repairs, failing ----------------------------------------------------------------------
def test_drift_again_after_the_repairs_allowed_makes_the_order_failing_until_an_operation_succeeds(live, engine):
    order = create(live)
    drift = checker(live, max_repairs=2)
    for _ in range(2):
        engine.remove_container(container(engine, order, "web").id)
        mirror(live, engine)
        assert drift.check().repaired == [order.id]
        run(live)
    engine.remove_container(container(engine, order, "web").id)
    mirror(live, engine)

    done = drift.check()

    assert done.failing == [order.id] and done.repaired == []
    assert [o for o in operations(order) if o[2] == "drift"] == [("redeploy", "succeeded", "drift")] * 2
    view = drift_key(live, order)
    assert view["state"] == "failing" and "drift again after 2 repair(s)" in view["reason"]
    failing = live.queries.failures(None)["failing_orders"]
    assert [(f["instance"], f["problems"][0]["kind"]) for f in failing] == [(order.instance, "missing")]
    assert drift.check().failing == [] and kinds(order)[-1] == "drift_failing"  # reported once, not redeployed
    assert len([o for o in operations(order) if o[2] == "drift"]) == 2

    live.orders.redeploy(Order.get_by_id(order.id), requested_by="ops")
    run(live)
    mirror(live, engine)
    assert drift.check().failing == []
    assert drift_key(live, order)["state"] == "ok" and live.queries.failures(None)["failing_orders"] == []


def test_a_crash_loop_is_failing_at_once_with_its_last_log_lines_and_the_secrets_masked(live, engine):
    order = create(live)
    password = order.secrets["DB_PASSWORD"]
    db = container(engine, order, "db")
    engine.logs[db.id] = "".join(f"line {n}\n" for n in range(30)) + f"FATAL: password {password} rejected\n"
    mirror(live, engine)
    ObservedContainer.update(deaths=3, last_died_at=utcnow(), state="restarting").where(
        ObservedContainer.container_id == db.id).execute()

    done = checker(live, log_lines=5).check()

    assert done.failing == [order.id] and done.repaired == []
    assert [kind for kind, _, _ in operations(order)] == ["create"]
    event = Event.select().where((Event.order == order) & (Event.kind == "drift_failing")).get()
    logs = event.data[PRIVATE_EVENT_DATA]
    assert "line 29" in logs and "line 25" not in logs and MASK in logs and password not in logs
    assert event.data["problems"][0]["kind"] == "crash_loop"
    assert PRIVATE_EVENT_DATA not in event_view(event)["data"]  # the log lines are for staff only
    assert password not in str(drift_key(live, order))


def test_deaths_before_the_deploy_or_long_ago_are_no_crash_loop(live, engine):
    order = create(live)
    mirror(live, engine)
    db = container(engine, order, "db")
    ObservedContainer.update(deaths=5, last_died_at=utcnow() - dt.timedelta(hours=2)).where(
        ObservedContainer.container_id == db.id).execute()
    drift = checker(live)
    assert drift.check().detected == []
    ObservedContainer.update(deaths=7, last_died_at=utcnow()).where(ObservedContainer.container_id == db.id).execute()
    assert drift.check().detected == []  # two deaths since counting began again: not yet a loop
    ObservedContainer.update(deaths=8).where(ObservedContainer.container_id == db.id).execute()
    assert drift.check().failing == [order.id]


# -- report mode -----------------------------------------------------------------------------------
def test_report_mode_records_events_only(live, engine):
    order = create(live)
    drift = checker(live, mode=DriftMode.REPORT)
    engine.stop_container(container(engine, order, "web").id, timeout=1)
    mirror(live, engine)

    assert drift.check().detected == [order.id]
    assert drift.check().detected == []  # the same drift is reported once
    assert [kind for kind, _, _ in operations(order)] == ["create"]
    assert drift_key(live, order)["state"] == DriftState.DRIFTED
    event = Event.select().where((Event.order == order) & (Event.kind == "drift_detected")).get()
    assert event.data["action"] == "report" and event.actor == "drift"

    engine.start_container(container(engine, order, "web").id)  # someone fixed it
    mirror(live, engine)
    assert drift.check().cleared == [order.id]
    assert kinds(order) == ["drift_detected", "drift_repaired"]


# -- the pieces ------------------------------------------------------------------------------------
def test_secrets_are_masked_longest_first_and_short_values_are_left():
    text = "user=abc pass=s3cretvalue token=s3cretvalue-long"
    masked = mask_secrets(text, {"A": "s3cretvalue", "B": "s3cretvalue-long", "C": "abc", "D": None})
    assert masked == f"user=abc pass={MASK} token={MASK}"


def test_the_fake_engine_gives_the_last_lines_of_a_container(live, engine):
    order = create(live)
    web = container(engine, order, "web")
    engine.logs["web"] = "a\nb\nc\n"
    assert engine.container_logs(web.id, 2) == "b\nc\n"
    assert engine.container_logs(web.name, 0) == ""


@pytest.mark.parametrize("name, value", [("LIVE_DRIFT", "fix"), ("LIVE_DRIFT_SECONDS", "0"),
                                          ("LIVE_DRIFT_CRASH_DEATHS", "0"), ("LIVE_DRIFT_MAX_REPAIRS", "-1")])
def test_bad_drift_settings_stop_start_up_naming_the_setting(name, value):
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})


def test_drift_settings_have_defaults_and_are_read():
    settings = load_settings({"LIVE_DRIFT": " Report ", "LIVE_DRIFT_MAX_REPAIRS": "0", "LIVE_DRIFT_SECONDS": "0.5"})
    assert (settings.drift, settings.drift_max_repairs, settings.drift_seconds) == ("report", 0, 0.5)
    assert load_settings({}).drift == "repair"


def test_a_state_is_drift_only_once_it_lasted_and_a_missing_container_at_once(live, engine):
    order = create(live)
    container(engine, order, "app").exit(137)  # `docker rm -f`: killed, about to be removed
    mirror(live, engine)
    drift = checker(live)
    drift.rules = dataclasses.replace(drift.rules, confirm_seconds=2.0)
    assert drift.check().detected == []
    engine.remove_container(container(engine, order, "app").id)
    mirror(live, engine)
    assert drift.check().detected == [order.id]
    assert drift_key(live, order)["problems"][0]["kind"] == "missing"


# -- review of issue 15: what the checker must leave alone ---------------------------------------------
def _failed(order: Order, kind: str) -> None:
    Operation.create(order=order.id, kind=kind, state="failed", requested_by="whmcs", finished_at=utcnow(),
                     error="it failed")


def test_an_order_whose_last_change_failed_is_not_repaired_a_backup_after_it_does_not_count(live, engine):
    order = create(live)
    _failed(order, "suspend")  # billing's suspend stopped "app", then failed for good: the order stays active
    engine.stop_container(container(engine, order, "app").id, timeout=1)
    Operation.create(order=order.id, kind="backup", state="succeeded", requested_by="system", finished_at=utcnow())
    mirror(live, engine)
    drift = checker(live)

    done = drift.check()

    assert done.detected == [] and done.repaired == [] and done.checked == 0
    assert not [o for o in operations(order) if o[2] == "drift"]
    assert container(engine, order, "app").state == "exited"  # what billing asked for is not undone
    live.orders.redeploy(Order.get_by_id(order.id), requested_by="ops")  # staff decide: a deploy that succeeds
    run(live)
    mirror(live, engine)
    assert drift.check().checked == 1


def test_a_backup_that_succeeds_does_not_clear_failing_a_deploy_does(live, engine):
    order = create(live)
    drift = checker(live, max_repairs=0)
    engine.remove_container(container(engine, order, "web").id)
    mirror(live, engine)
    assert drift.check().failing == [order.id]
    Operation.create(order=order.id, kind="backup", state="succeeded", requested_by="system", finished_at=utcnow())

    assert drift.check().failing == []
    assert drift_key(live, order)["state"] == "failing"
    assert kinds(order).count("drift_failing") == 1  # not reported again, no repair round opened by the backup
    assert not [o for o in operations(order) if o[2] == "drift"]


def test_a_verdict_is_not_written_over_an_expectation_recorded_during_the_pass(live, engine):
    from app.orders.drift import record_expected

    order = create(live)
    engine.remove_container(container(engine, order, "web").id)
    mirror(live, engine)
    drift = checker(live, mode=DriftMode.REPORT)
    judge = drift._act

    def suspended_meanwhile(order_row, *args, **kwargs):
        changes = judge(order_row, *args, **kwargs)
        record_expected(order_row, {})  # a suspend ended while the pass judged the containers before it
        return changes

    drift._act = suspended_meanwhile
    drift.check()

    row = OrderDrift.get(OrderDrift.order == order.id)
    assert row.expected == {} and row.state == "ok" and row.problems == []


def test_a_problem_never_quotes_the_engines_own_error_text():
    from app.orders.drift import DriftRules

    now = utcnow()
    row = ObservedContainer(container_id="c1", order_id=1, service="app", name="x", state="dead", exit_code=None,
                            error="starting container failed: OCI runtime create failed: /var/lib/docker/secret-path",
                            changed_at=now - dt.timedelta(minutes=5), observed_at=now)
    problems = problems_of({"app": {"config_hash": None, "one_shot": False}}, {"app": row}, now,
                           dataclasses.replace(DriftRules(), confirm_seconds=0.0))
    assert [(p["kind"], p["detail"]) for p in problems] == [("dead", "dead")]


def test_a_repair_that_failed_makes_the_order_failing_naming_the_operation_not_the_engines_text(live, engine):
    """The checker's own redeploy failed: the order is failing (never "repairing" for ever), reported once; a deploy
    not requested by drift that succeeds clears it."""
    from app.errors import ImageMissing

    order = create(live)
    drift = checker(live)
    web = container(engine, order, "web")
    engine.remove_container(web.id)
    mirror(live, engine)
    assert drift.check().repaired == [order.id]
    engine.failures[("create_container", "web")] = ImageMissing("pull access denied for /var/lib/secret-engine-path")
    run(live)
    repair = Operation.select().where((Operation.order == order.id) & (Operation.requested_by == "drift")).get()
    assert repair.state == "failed"
    mirror(live, engine)

    done = drift.check()

    assert done.failing == [order.id] and done.repaired == [] and done.checked == 1
    view = drift_key(live, order)
    assert view["state"] == "failing" and view["reason"] == f"the drift repair (redeploy operation {repair.id}) failed"
    assert "secret-engine-path" not in str(view) and view["problems"][0]["kind"] == "missing"
    event = Event.select().where((Event.order == order) & (Event.kind == "drift_failing")).get()
    assert event.data["operation_id"] == repair.id and "secret-engine-path" not in str(event_view(event))
    assert [f["instance"] for f in live.queries.failures(None)["failing_orders"]] == [order.instance]
    assert drift.check().failing == [] and kinds(order).count("drift_failing") == 1  # reported once
    assert len([o for o in operations(order) if o[2] == "drift"]) == 1  # and not repaired again

    live.orders.redeploy(Order.get_by_id(order.id), requested_by="ops")
    run(live)
    mirror(live, engine)
    assert drift.check().failing == []
    assert drift_key(live, order)["state"] == "ok"


def test_a_failed_operation_of_another_after_a_repair_leaves_the_drift_state_alone(live, engine):
    order = create(live)
    OrderDrift.update(state="repairing").where(OrderDrift.order == order.id).execute()
    _failed(order, "suspend")  # billing's, not the checker's: no drift verdict on what the failure left
    mirror(live, engine)
    done = checker(live).check()
    assert done.failing == [] and done.checked == 0
    assert drift_key(live, order)["state"] == "repairing"
