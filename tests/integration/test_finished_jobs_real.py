"""A finished one-shot job on the real engine, both orchestrators: a redeploy (a drift repair, a restart) and a
deploy after a stop (an unsuspend) leave it as it is, its dependant's ``service_completed_successfully`` met by
the exited container (a swarm service whose task completed, or was scaled to 0 by the stop); a changed definition
runs it again. The breadth (failed jobs, plans) is in tests/unit/test_plan.py and test_deployer_fake.py."""
from __future__ import annotations

import dataclasses
import secrets

import pytest

from app.catalog.product import build_project, load_product, sample_builtins
from app.stacks.deployer import Deployer
from tests.conftest import TEST_IMAGE, remove_deployment_objects, require_swarm_manager
from tests.support.waiting import wait_for

MANIFEST = "name: Jobs\nplans:\n  small: {}\n"
COMPOSE = f"""\
services:
  migrate:
    image: {TEST_IMAGE}
    init: true
    command: ["sh", "-c", "echo migrated VERSION"]
  web:
    image: {TEST_IMAGE}
    init: true
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    depends_on:
      migrate: {{condition: service_completed_successfully}}
"""


@pytest.fixture(params=["docker", "swarm"])
def engine(request, docker_engine):
    if request.param == "swarm":
        require_swarm_manager(docker_engine)
        from app.stacks.swarm_engine import SwarmEngine
        return SwarmEngine(poll_interval=0.1)
    from app.stacks.docker_engine import DockerEngine
    return DockerEngine()


@pytest.fixture
def deployment(docker_engine):
    name = "j" + secrets.token_hex(4)
    yield name
    remove_deployment_objects(docker_engine, name)


def project(engine, deployment: str, version: str = "1"):
    product = load_product("jobs", MANIFEST, COMPOSE.replace("VERSION", version))
    assert product.errors == []
    builtins = dict(sample_builtins("jobs", "small"), LIVE_ORDER_ID="7", LIVE_INSTANCE="acme")
    built = build_project(product, "small", builtins, {}, revision="r1", deployment=deployment)
    return dataclasses.replace(built, node=engine.own_node()) if engine.starts_asynchronously else built


def runs(engine, job_id: str) -> int:
    return engine.container_logs(job_id, 50).count("migrated")


def test_a_finished_job_is_not_run_again_by_a_redeploy_or_a_deploy_after_a_stop(engine, deployment):
    deployer = Deployer(engine, health_timeout=120)
    first = deployer.deploy(project(engine, deployment))
    assert first.actions == {"migrate": "create", "web": "create"}
    job = next(c for c in engine.list_containers({"live.deployment": deployment}) if c.service == "migrate")
    wait_for(lambda: runs(engine, job.id) == 1, timeout=30, what="the job's one line")

    assert deployer.deploy(project(engine, deployment)).actions == {"migrate": "noop", "web": "noop"}
    assert deployer.stop(project(engine, deployment)) == ["web"]
    assert deployer.deploy(project(engine, deployment)).actions == {"migrate": "noop", "web": "start"}
    states = {c.service: c for c in engine.list_containers({"live.deployment": deployment})}
    assert (states["migrate"].state, states["migrate"].exit_code) == ("exited", 0)
    wait_for(lambda: engine.inspect_container(states["web"].id).state == "running", timeout=60, what="web running")
    assert runs(engine, job.id) == 1

    changed = deployer.deploy(project(engine, deployment, version="2"))
    assert changed.actions == {"migrate": "recreate", "web": "noop"}
    job = next(c for c in engine.list_containers({"live.deployment": deployment}) if c.service == "migrate")
    wait_for(lambda: "migrated 2" in engine.container_logs(job.id, 50), timeout=30, what="the changed job run")
