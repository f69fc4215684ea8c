"""Drift on the real engine, with the real worker process (its mirror and its drift checker): a customer's
container removed by hand (one engine: ``docker rm -f``; a swarm: its service scaled to 0) shows as drift on
the order and is repaired by a redeploy requested by ``drift``. The breadth (every kind of drift, one-shot
services, a stale mirror, the bound on repairs, crash loops, report mode) is in tests/unit/test_drift.py."""
from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys

import pytest

from app.config import PROJECT_ROOT
from app.models import Event, Operation, Order, OrderDrift, utcnow
from app.orders.drift import SETTLE_SECONDS
from app.stacks.mirror import freshness, observed
from tests.conftest import write_product
from tests.support.live_service import MINI_COMPOSE, MINI_MANIFEST, settings_env
from tests.support.waiting import wait_for

pytestmark = pytest.mark.usefixtures("docker_engine", "stack_cleanup")

#: One case per orchestrator: one engine on SQLite, a swarm on PostgreSQL (what production uses).
ONE_PER_MODE = pytest.mark.parametrize("database_url,orchestrator", [("sqlite", "docker"), ("postgresql", "swarm")],
                                       indirect=["database_url"])


def start_worker(settings, log_path):
    env = settings_env(settings, LIVE_WORKER_POLL_SECONDS="0.1", LIVE_RETRY_BASE_SECONDS="0.2",
                       LIVE_HEALTH_TIMEOUT_SECONDS="30", LIVE_DRIFT_SECONDS="0.5", LIVE_MIRROR_POLL_SECONDS="0.5")
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "live", "worker"], cwd=PROJECT_ROOT,
                                env=env, stdout=log, stderr=subprocess.STDOUT)


def remove_by_hand(client, name: str, orchestrator: str) -> None:
    """What an operator's slip does: ``docker rm -f <container>``, or ``docker service scale <service>=0``."""
    if orchestrator == "swarm":
        client.services.get(name).scale(0)
    else:
        client.containers.get(name).remove(force=True)


@ONE_PER_MODE
def test_a_container_removed_by_hand_shows_as_drift_and_the_worker_repairs_it(
        live, settings, config_repo, docker_engine, make_customer, tmp_path, orchestrator):
    write_product(config_repo, "mini", MINI_MANIFEST, MINI_COMPOSE)
    live.catalog.sync()
    log_path = tmp_path / "worker.log"
    worker = start_worker(settings, log_path)
    try:
        outcome = live.orders.create(service_id=1501, customer=make_customer(), product="mini", plan="basic",
                                     username="drifter")
        order = wait_for(lambda: (o := Order.get_by_id(outcome.order.id)).status == "active" and o, timeout=120,
                         what="the order active")
        # The mirror has the order's container running and the deploy's expectation has settled: judged from now on.
        wait_for(lambda: freshness(settings.deployment).fresh
                 and web_state(order.id) == "running"
                 and OrderDrift.get(OrderDrift.order == order.id).expected_at
                 <= utcnow() - dt.timedelta(seconds=SETTLE_SECONDS), timeout=60, what="the order judged")
        assert live.queries.order_view(order)["drift"]["state"] == "ok"

        remove_by_hand(docker_engine, f"{settings.deployment}-{order.instance}_web", orchestrator)

        shown = wait_for(lambda: (d := live.queries.order_view(Order.get_by_id(order.id))["drift"])["state"] != "ok"
                         and d, timeout=60, what="the drift shown")
        # `docker rm -f` kills, then removes: the checker may see the container exited before it is gone.
        [problem] = shown["problems"]
        assert problem["service"] == "web"
        assert problem["kind"] in (("exited",) if orchestrator == "swarm" else ("exited", "missing"))
        wait_for(lambda: Event.select().where((Event.order == order.id) & (Event.kind == "drift_repaired")).exists(),
                 timeout=120, what="the drift repaired")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    repairs = [(o.kind, o.state) for o in Operation.select().where(
        (Operation.order == order.id) & (Operation.requested_by == "drift"))]
    assert repairs == [("redeploy", "succeeded")], log_path.read_text()[-3000:]
    assert live.queries.order_view(Order.get_by_id(order.id))["drift"]["state"] == "ok"
    assert [e.kind for e in Event.select().where((Event.order == order.id) & Event.kind.startswith("drift_"))
            .order_by(Event.id)] == ["drift_detected", "drift_repaired"]
    assert web_state(order.id) == "running"


def web_state(order_id: int) -> str | None:
    """The state of the order's ``web`` container as the mirror has it (None: no row)."""
    row = observed([order_id]).get(order_id, {}).get("web")
    return row.state if row is not None else None


@pytest.mark.parametrize("orchestrator", ["docker", "swarm"])
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_engine_gives_the_last_log_lines_of_a_container_that_stopped(live, settings, docker_engine, orchestrator):
    """``container_logs`` of a stopped container (a swarm: of a service whose task ended), as a crash loop needs."""
    from docker.types import RestartPolicy

    from tests.conftest import TEST_IMAGE

    script = ["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; done"]
    labels = {"live.deployment": settings.deployment}
    if orchestrator == "swarm":
        service = docker_engine.services.create(TEST_IMAGE, script, name=f"{settings.deployment}-logs", labels=labels,
                                                container_labels=labels, init=True,
                                                restart_policy=RestartPolicy(condition="none"))
        target = service.id
    else:
        container = docker_engine.containers.run(TEST_IMAGE, script, detach=True, labels=labels, init=True)
        container.wait(timeout=30)
        target = container.id
    logs = wait_for(lambda: (text := live.engine.container_logs(target, 2)).endswith("line 5\n") and text, timeout=60,
                    what="the last lines")
    assert logs == "line 4\nline 5\n"
