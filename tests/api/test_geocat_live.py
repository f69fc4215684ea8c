"""GeoCat Live 1.0 for the desktop clients: exact shape for running, starting and broken orders.

The statuses come from the worker's engine mirror (app/stacks/mirror.py), which follows the engine's events a few
milliseconds behind it: a test waits for a change to show (tests/support/waiting.py), never for a fixed time."""
from __future__ import annotations

import time

import pytest

from app.models import Operation, Order
from tests.api.conftest import client_payload
from tests.conftest import write_product
from tests.support.waiting import wait_for

pytestmark = pytest.mark.usefixtures("docker_engine", "stack_cleanup")

SLOW_START = """
services:
  geoserver:
    image: live-test/busybox:latest
    init: true
    command: ["sh", "-c", "sleep 600"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 1s
      retries: 1000
    stop_grace_period: 1s
  geonetwork:
    image: live-test/busybox:latest
    init: true
    command: ["sleep", "600"]
    stop_grace_period: 1s
"""

SLOW_MANIFEST = """
name: Slow SDI
plans: {basic: {}}
endpoints:
  - {application: geoserver, service: geoserver, port: 8080, path: /geoserver/}
  - {application: geonetwork, service: geonetwork, port: 8080, path: /geonetwork}
"""


def legacy(api, instance):
    return api.get(f"/geocat-live/api/1.0/order/{instance}", scope=None)


def test_running_order(api, background_worker):
    api.post("/whmcs/v1/services/801/create", client_payload(username="volaya", wait=60))
    running = {"services": [{"application": "web", "url": "https://volaya.test.local", "status": "SERVICE_RUNNING"}]}
    wait_for(lambda: legacy(api, "volaya").json == running, timeout=30, what="the order running in the mirror")
    assert legacy(api, "volaya").status_code == 200


def test_starting_then_broken_order(api, background_worker, config_repo, docker_engine, settings):
    write_product(config_repo, "slow-sdi", SLOW_MANIFEST, SLOW_START)
    api.app.extensions["live"].catalog.sync()
    api.post("/whmcs/v1/services/802/create", client_payload(product="slow-sdi", plan="basic", username="slowpoke"))
    # While the create waits for geoserver's health, both services are waiting.
    body = legacy(api, "slowpoke").json
    assert body == {"services": [
        {"application": "geoserver", "url": "https://slowpoke.test.local/geoserver", "status": "SERVICE_WAITING"},
        {"application": "geonetwork", "url": "https://slowpoke.test.local/geonetwork", "status": "SERVICE_WAITING"},
    ]}
    order = Order.get(Order.instance == "slowpoke")
    _wait_for_container(docker_engine, f"{settings.deployment}-slowpoke_geoserver")
    docker_engine.containers.get(f"{settings.deployment}-slowpoke_geoserver").exec_run(["touch", "/tmp/ready"])
    _wait_for_status(order.id, "active")
    wait_for(lambda: {s["status"] for s in legacy(api, "slowpoke").json["services"]} == {"SERVICE_RUNNING"},
             timeout=30, what="both services running in the mirror")

    # A service that dies is an error for the client, the other keeps running.
    docker_engine.containers.get(f"{settings.deployment}-slowpoke_geonetwork").kill()

    def statuses():
        return {s["application"]: s["status"] for s in legacy(api, "slowpoke").json["services"]}

    wait_for(lambda: statuses() == {"geoserver": "SERVICE_RUNNING", "geonetwork": "SERVICE_ERROR"}, timeout=30,
             what="the killed service an error")


def test_failed_and_unknown_orders(api, background_worker, config_repo):
    write_product(config_repo, "ghost", SLOW_MANIFEST.replace("Slow SDI", "Ghost"),
                  "services:\n  geoserver:\n    image: live-test/absent:1\n  geonetwork:\n    image: live-test/absent:1\n")
    api.app.extensions["live"].catalog.sync()
    api.post("/whmcs/v1/services/803/create", client_payload(product="ghost", plan="basic", username="broken", wait=60))
    body = legacy(api, "broken").json
    assert [s["status"] for s in body["services"]] == ["SERVICE_ERROR", "SERVICE_ERROR"]
    missing = legacy(api, "nobody")
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"


def _wait_for_container(docker_engine, name, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if docker_engine.containers.list(all=True, filters={"name": name}):
            return
        time.sleep(0.1)
    raise AssertionError(f"{name} never appeared")


def _wait_for_status(order_id, status, timeout=60):
    """Until the order has the status and its operation has finished (both are recorded separately)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = Operation.select().where((Operation.order == order_id) & Operation.state.in_(("pending", "running")))
        if Order.get_by_id(order_id).status == status and not busy.exists():
            return
        time.sleep(0.1)
    raise AssertionError(f"order {order_id} never became {status}: {Order.get_by_id(order_id).last_error}")
