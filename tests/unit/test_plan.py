"""Convergence planning (app/stacks/plan.py), over ContainerState from app/stacks/engine.py."""
from __future__ import annotations

import dataclasses
import itertools

import pytest

from app.stacks.engine import ContainerState
from app.stacks.plan import Action, ConvergencePlan, plan_convergence
from app.stacks.project import REPLACES_LABEL

_ids = itertools.count(1)


def container(service: str | None, config_hash: str = "h1", state: str = "running", name: str | None = None,
              **extra_labels: str) -> ContainerState:
    labels = dict(extra_labels)
    if service is not None:
        labels["live.service"] = service
    if config_hash is not None:
        labels["live.config-hash"] = config_hash
    number = next(_ids)
    return ContainerState(id=f"id{number:04d}", name=name or f"live-acme-{service}-{number}", labels=labels, state=state)


# -- single service decisions ---------------------------------------------------------

def test_missing_container_is_created():
    plan = plan_convergence({"web": "h1"}, [])
    assert plan.actions == {"web": Action.CREATE}
    assert plan.orphans == []


def test_running_container_with_same_hash_is_left_alone():
    plan = plan_convergence({"web": "h1"}, [container("web", "h1", "running")])
    assert plan.actions == {"web": Action.NOOP}
    assert plan.is_noop
    assert plan.changed() == []


def test_restarting_container_counts_as_running():
    plan = plan_convergence({"web": "h1"}, [container("web", "h1", "restarting")])
    assert plan.actions == {"web": Action.NOOP}


@pytest.mark.parametrize("state", ["exited", "created"])
def test_stopped_container_with_same_hash_is_started(state):
    plan = plan_convergence({"web": "h1"}, [container("web", "h1", state)])
    assert plan.actions == {"web": Action.START}
    assert not plan.is_noop
    assert plan.changed() == []  # starting is not a configuration change


def test_a_finished_one_shot_job_is_left_as_it_is_and_a_failed_or_changed_one_runs_again():
    """A job another service waits for with ``service_completed_successfully``: exited 0 with the same definition,
    nothing to do (a redeploy does not run migrations again); failed, started again; changed, recreated."""
    done = dataclasses.replace(container("migrate", "h1", "exited"), exit_code=0)
    failed = dataclasses.replace(container("seed", "h1", "exited"), exit_code=3)
    changed = dataclasses.replace(container("init", "h0", "exited"), exit_code=0)
    server = dataclasses.replace(container("db", "h1", "exited"), exit_code=0)  # not a job: a stopped server
    plan = plan_convergence({"migrate": "h1", "seed": "h1", "init": "h1", "db": "h1"}, [done, failed, changed, server],
                            one_shot={"migrate", "seed", "init"})
    assert plan.actions == {"migrate": Action.NOOP, "seed": Action.START, "init": Action.RECREATE, "db": Action.START}
    assert plan_convergence({"migrate": "h1"}, [done], one_shot={"migrate"}).is_noop
    assert plan_convergence({"migrate": "h1"}, [done]).actions == {"migrate": Action.START}  # not a job


@pytest.mark.parametrize("state", ["running", "exited", "created", "restarting"])
def test_container_with_different_hash_is_recreated(state):
    plan = plan_convergence({"web": "h2"}, [container("web", "h1", state)])
    assert plan.actions == {"web": Action.RECREATE}
    assert plan.changed() == ["web"]


def test_container_without_hash_label_is_recreated():
    plan = plan_convergence({"web": "h1"}, [container("web", config_hash=None)])
    assert plan.actions == {"web": Action.RECREATE}


@pytest.mark.parametrize("state", ["dead", "removing"])
def test_dead_or_removing_container_is_recreated_even_with_same_hash(state):
    plan = plan_convergence({"web": "h1"}, [container("web", "h1", state)])
    assert plan.actions == {"web": Action.RECREATE}


def test_paused_container_is_unpaused_not_started():
    # The engine refuses to start a paused container (409 "try unpause instead").
    plan = plan_convergence({"web": "h1"}, [container("web", "h1", "paused")])
    assert plan.actions["web"] is Action.UNPAUSE


# -- orphans ---------------------------------------------------------------------------

def test_container_of_unknown_service_is_an_orphan():
    old = container("legacy")
    plan = plan_convergence({"web": "h1"}, [container("web"), old])
    assert plan.actions == {"web": Action.NOOP}
    assert plan.orphans == [old]
    assert not plan.is_noop  # removing the orphan is work


def test_container_without_service_label_is_an_orphan():
    stray = container(None)
    plan = plan_convergence({"web": "h1"}, [stray])
    assert plan.actions == {"web": Action.CREATE}
    assert plan.orphans == [stray]


def test_duplicate_containers_keep_the_first_by_name_and_orphan_the_rest():
    first = container("web", "h1", "running", name="live-acme-web-a")
    second = container("web", "h1", "running", name="live-acme-web-b")
    third = container("web", "h1", "exited", name="live-acme-web-c")
    # Observation order must not matter: the decision is by container name.
    for observed in itertools.permutations([first, second, third]):
        plan = plan_convergence({"web": "h1"}, list(observed))
        assert plan.actions == {"web": Action.NOOP}
        assert plan.orphans == [second, third]


def test_duplicate_decision_uses_the_kept_container():
    kept = container("web", "old", "running", name="live-acme-web-1")
    duplicate = container("web", "h1", "running", name="live-acme-web-2")
    plan = plan_convergence({"web": "h1"}, [duplicate, kept])
    assert plan.actions == {"web": Action.RECREATE}
    assert plan.orphans == [duplicate]


def test_everything_is_orphaned_when_nothing_is_desired():
    observed = [container("web", name="b"), container("db", name="a")]
    plan = plan_convergence({}, observed)
    assert plan.actions == {}
    assert [c.name for c in plan.orphans] == ["a", "b"]
    assert not plan.is_noop


def test_empty_plan_is_noop():
    plan = plan_convergence({}, [])
    assert plan == ConvergencePlan(actions={}, orphans=[])
    assert plan.is_noop


# -- whole stacks ----------------------------------------------------------------------------

def test_mixed_stack():
    desired = {"db": "hdb", "app": "happ-new", "web": "hweb", "cache": "hcache", "worker": "hw"}
    observed = [
        container("db", "hdb", "running"),
        container("app", "happ-old", "running"),
        container("web", "hweb", "exited"),
        container("worker", "hw", "dead"),
        container("old-sidecar", "x", "running"),
    ]
    plan = plan_convergence(desired, observed)
    assert plan.actions == {
        "db": Action.NOOP,
        "app": Action.RECREATE,
        "web": Action.START,
        "cache": Action.CREATE,
        "worker": Action.RECREATE,
    }
    assert plan.changed() == ["app", "cache", "worker"]  # sorted
    assert [c.service for c in plan.orphans] == ["old-sidecar"]
    assert not plan.is_noop


def test_plan_has_an_action_for_every_desired_service_and_nothing_else():
    desired = {f"svc{i}": f"h{i}" for i in range(6)}
    observed = [container(f"svc{i}", f"h{i}") for i in range(0, 6, 2)] + [container("extra")]
    plan = plan_convergence(desired, observed)
    assert set(plan.actions) == set(desired)
    assert {c.service for c in plan.orphans} == {"extra"}


def test_actions_are_string_valued():
    # DeployResult reports action.value; the values are the public vocabulary.
    assert {a.value for a in Action} == {"create", "recreate", "start", "unpause", "noop"}
    assert Action("recreate") is Action.RECREATE


# -- ContainerState properties used by the planner --------------------------------------------

@pytest.mark.parametrize(
    "state, running",
    [("running", True), ("restarting", True), ("exited", False), ("created", False),
     ("paused", False), ("dead", False), ("removing", False)],
)
def test_container_state_running(state, running):
    assert container("web", state=state).running is running


def test_container_state_service_comes_from_label():
    assert container("web").service == "web"
    assert container(None).service is None


# -- an interrupted recreate (the replacement is made first, then swapped in) ---------------------

def replacement(old: ContainerState, config_hash: str = "h2", state: str = "created") -> ContainerState:
    return container(old.service, config_hash, state, name=f"{old.id[:12]}_{old.name}", **{REPLACES_LABEL: old.id})


@pytest.mark.parametrize(("old_state", "new_state"), [("running", "created"), ("exited", "created"),
                                                      ("exited", "running")])
def test_a_replacement_whose_old_container_is_still_there_is_a_leftover(old_state, new_state):
    old = container("web", "h1", old_state)
    new = replacement(old, state=new_state)
    plan = plan_convergence({"web": "h2"}, [new, old])
    assert plan.leftovers == [new] and plan.orphans == []
    assert plan.actions == {"web": Action.RECREATE}, "the old container is replaced again, from the start"
    assert not plan.is_noop


def test_a_replacement_whose_old_container_is_gone_is_the_services_container():
    old = container("web", "h1")
    new = replacement(old, state="running")
    plan = plan_convergence({"web": "h2"}, [new])
    assert plan.leftovers == [] and plan.orphans == [] and plan.actions == {"web": Action.NOOP}
    assert plan_convergence({"web": "h3"}, [new]).actions == {"web": Action.RECREATE}


def test_a_finished_replacement_is_an_ordinary_container():
    gone = container("web", "h0")
    finished = container("web", "h1", name="live-acme_web", **{REPLACES_LABEL: gone.id})
    newer = replacement(finished)
    plan = plan_convergence({"web": "h2"}, [finished, newer])
    assert plan.leftovers == [newer] and plan.actions == {"web": Action.RECREATE}
