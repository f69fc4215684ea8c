"""SwarmEngine.start_container and the state of a service whose task ended (app/stacks/swarm_engine.py), on the JSON
shapes of Docker Engine 20.10, without a swarm: a start always leaves the service a task meant to run (forcing one
when swarm would make none), or fails naming the service; an ended task reads as ended, never as ``created``."""
from __future__ import annotations

import copy

import pytest

from app.errors import EngineOperationError
from app.stacks.plan import Action, plan_convergence
from app.stacks.swarm_engine import SwarmEngine, _service_state
from tests.unit.test_swarm_state import service, task


class FakeSwarmApi:
    """GET /services/{id}, GET /tasks, POST /services/{id}/update of a manager. ``makes_tasks``: every update
    makes the service a new task (index 100, 101, ...) and shuts the others down, as swarm's orchestrator does."""

    def __init__(self, svc, tasks, makes_tasks=True):
        self.svc, self.tasks_list, self.makes_tasks = svc, list(tasks), makes_tasks
        self.updates: list[dict] = []

    def inspect_service(self, service_id):
        return copy.deepcopy(self.svc)

    def tasks(self, filters=None):
        return copy.deepcopy(self.tasks_list)

    def update_service(self, service_id, version, task_template=None, name=None, labels=None, mode=None,
                       endpoint_spec=None, fetch_current_spec=False):
        self.updates.append({"TaskTemplate": task_template, "Mode": mode})
        self.svc["Spec"].update(TaskTemplate=task_template, Mode=mode)
        if self.makes_tasks and mode["Replicated"]["Replicas"] == 1:
            for old in self.tasks_list:
                old["DesiredState"] = "shutdown"
            self.tasks_list.append(task("new", index=100 + len(self.updates)))


@pytest.fixture
def swarm(monkeypatch):
    """``make(service, tasks, makes_tasks=True) -> (engine, api)``."""
    def make(svc, tasks, makes_tasks=True):
        api = FakeSwarmApi(svc, tasks, makes_tasks)
        monkeypatch.setattr(SwarmEngine, "api", property(lambda self: api))
        return SwarmEngine("unix:///nonexistent.sock", poll_interval=0.01, schedule_timeout=0.2), api
    return make


def test_a_service_whose_task_ended_for_good_is_forced_a_new_task(swarm):
    # restart condition none: swarm set the failed task's desired state to shutdown and makes no other
    svc = service(replicas=1, healthcheck=False, restart="none")
    svc["Spec"]["TaskTemplate"]["ForceUpdate"] = 4
    engine, api = swarm(svc, [task("failed", desired="shutdown", exit_code=1, err="task: non-zero exit (1)")])
    before = engine.inspect_container("svc1")
    assert (before.state, before.exit_code) == ("exited", 1)
    assert plan_convergence({"web": "h1"}, [before]).actions["web"] is Action.START
    engine.start_container("svc1")
    [update] = api.updates
    assert update["TaskTemplate"]["ForceUpdate"] == 5 and update["Mode"] == {"Replicated": {"Replicas": 1}}
    after = engine.inspect_container("svc1")  # a new task, not started yet; the failure before it is said
    assert (after.state, after.exit_code) == ("restarting", 1)


def test_a_service_scaled_to_zero_is_scaled_up_and_forced_since_its_old_task_may_still_count(swarm):
    engine, api = swarm(service(replicas=0, restart="none"), [task("shutdown", desired="remove", exit_code=137)])
    engine.start_container("svc1")
    [update] = api.updates
    assert update["Mode"] == {"Replicated": {"Replicas": 1}} and update["TaskTemplate"]["ForceUpdate"] == 1


def test_a_task_meant_to_run_is_left_alone_but_one_being_scaled_away_is_replaced(swarm):
    engine, api = swarm(service(replicas=1), [task("running")])
    engine.start_container("svc1")
    assert api.updates == []
    # Scaled to zero by hand an instant ago: swarm has not shut its task down yet, and will (then counting it as the
    # replica): a new one is forced.
    engine, api = swarm(service(replicas=0), [task("running")])
    engine.start_container("svc1")
    [update] = api.updates
    assert update["Mode"] == {"Replicated": {"Replicas": 1}} and update["TaskTemplate"]["ForceUpdate"] == 1
    assert [t["DesiredState"] for t in api.tasks_list] == ["shutdown", "running"]


def test_a_service_swarm_makes_no_task_for_fails_naming_it(swarm):
    engine, api = swarm(service(replicas=0, restart="none"), [], makes_tasks=False)
    with pytest.raises(EngineOperationError, match=r"swarm service live-acme_web was started but swarm made no task"):
        engine.start_container("svc1")


def test_a_new_task_that_failed_at_once_counts_as_made(swarm):
    engine, api = swarm(service(replicas=1, restart="none"), [task("complete", desired="shutdown")],
                        makes_tasks=False)
    api.update_service = lambda *a, **k: api.tasks_list.append(task("rejected", index=50, err="no such image"))
    engine.start_container("svc1")
    assert engine.inspect_container("svc1").state == "dead"


def test_ended_tasks_read_as_ended_unless_swarm_replaces_them():
    history = [task("shutdown", desired="remove", index=30), task("complete", desired="shutdown", index=31)]
    done = _service_state(service(replicas=1, healthcheck=False, restart="none"), history)
    assert (done.state, done.exit_code) == ("exited", 0)
    failed = task("failed", desired="shutdown", exit_code=137, err="dockerexec: unhealthy container")
    state = _service_state(service(replicas=1, restart="on-failure"), [failed])
    assert (state.state, state.exit_code, state.health, state.error) == ("exited", 137, "unhealthy", failed["Status"]["Err"])
    rejected = _service_state(service(replicas=1, restart="none"), [task("rejected", desired="shutdown", err="no image")])
    assert (rejected.state, rejected.error) == ("dead", "no image")
    # Still stopping, or swarm replaces every task (restart any): in between.
    assert _service_state(service(restart="none"), [task("running", desired="shutdown")]).state == "created"
    assert _service_state(service(restart="any"), history).state == "created"
