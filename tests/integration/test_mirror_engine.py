"""The engine mirror on the real engine, on one engine and on a swarm: a container stopped by hand shows in the
views within seconds, and an engine stream that breaks makes every view say ``unknown`` until it is back.

The follower reaches the engine through a proxy socket (tests/support/engine_proxy.py) that the test cuts: the real
engine is never restarted. The breadth (events, deaths, reconnection with ``since``) is in tests/unit/test_mirror.py.
"""
from __future__ import annotations

import pytest

from app.models import Order
from app.stacks.docker_engine import DockerEngine
from app.stacks.mirror import MirrorFollower, observed
from app.stacks.swarm_engine import SwarmEngine
from tests.conftest import BOTH_MODES
from tests.support.engine_proxy import EngineProxy
from tests.support.waiting import wait_for

pytestmark = pytest.mark.usefixtures("docker_engine", "stack_cleanup")


def runtime(live, order):
    return live.queries.order_view(Order.get_by_id(order.id))["runtime"]


def service_states(live, order):
    return {s["service"]: s["state"] for s in runtime(live, order)["services"]}


@BOTH_MODES
def test_the_mirror_follows_the_engine_and_says_unknown_when_its_stream_breaks(live, settings, docker_engine,
                                                                                make_customer, orchestrator,
                                                                                tmp_path):
    outcome = live.orders.create(service_id=1501, customer=make_customer(), product="busybox-demo", plan="small",
                                 username="mirrored")
    live.worker().run_until_idle(timeout=120)
    order = Order.get_by_id(outcome.order.id)
    assert order.status == "active", order.last_error

    proxy = EngineProxy(tmp_path / "engine.sock")
    engine = (SwarmEngine(proxy.url, mirror_poll_seconds=0.5) if orchestrator == "swarm"
              else DockerEngine(proxy.url))
    follower = MirrorFollower(engine, live.db, settings.deployment, "test:mirror", beat_seconds=0.5,
                              backoff_base=0.2, backoff_max=1.0)
    follower.start()
    try:
        wait_for(lambda: runtime(live, order)["state"] == "running", timeout=30, what="the order running")

        # Stopped by hand: the container (swarm: the service scaled to zero, as an operator would).
        selector = {"label": [f"live.deployment={settings.deployment}", "live.service=web"]}
        if orchestrator == "swarm":
            docker_engine.services.list(filters=selector)[0].scale(0)
        else:
            docker_engine.containers.list(filters=selector)[0].stop(timeout=1)
        wait_for(lambda: service_states(live, order)["web"] == "exited", timeout=30, what="web exited in the mirror")
        assert runtime(live, order)["state"] == "degraded"
        web = observed([order.id])[order.id]["web"]
        assert (web.deaths, web.killed_at) == (0, None), "a stop is no death, and its kill is used up by its die"
        assert [s["status"] for s in live.queries.geocat_live_services("mirrored")] == ["SERVICE_ERROR"]

        # The engine's stream breaks: every view says unknown, never what it last saw.
        proxy.cut()
        wait_for(lambda: runtime(live, order)["state"] == "unknown", timeout=30, what="unknown once the stream broke")
        assert set(service_states(live, order).values()) == {"unknown"}
        assert [s["status"] for s in live.queries.geocat_live_services("mirrored")] == ["SERVICE_WAITING"]
        assert live.queries.mirror_freshness().error

        # The engine is back: the follower reconnects by itself and lists again.
        proxy.restore()
        wait_for(lambda: runtime(live, order)["state"] == "degraded", timeout=30, what="fresh again after reconnecting")
        assert follower.connections >= 2
    finally:
        follower.stop()
        (engine.manager if orchestrator == "swarm" else engine).close()
        proxy.stop()
