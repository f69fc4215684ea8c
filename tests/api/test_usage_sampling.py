"""The worker's usage sampler on the real engine (app/orders/usage.py), and the usage answer read from its table.

One order whose service writes known bytes into its volume and holds known memory (a file in its /dev/shm, which
its cgroup counts): the sampler records both (memory from this machine's cgroup files, the container being local;
on a swarm, from its task's container), and several concurrent ``GET /whmcs/v1/usage`` all answer 200 (asked per
request, the engine's "a disk usage operation is already running" made them 503).
"""
from __future__ import annotations

import threading

import pytest

from app.models import Order
from app.orders.usage import MB, CgroupReader
from app.stacks.project import order_selector
from tests.api.conftest import client_payload
from tests.conftest import write_product

pytestmark = pytest.mark.usefixtures("docker_engine", "stack_cleanup")

DISK_MIB, MEMORY_MIB = 3, 8
MANIFEST = "name: Filler\nplans: {basic: {}}\nendpoints:\n  - {application: web, service: store, port: 8080}\n"
COMPOSE = f"""
services:
  store:
    image: live-test/busybox:latest
    init: true
    stop_grace_period: 1s
    command: ["sh", "-c", "head -c {DISK_MIB * MB} /dev/zero > /data/blob && head -c {MEMORY_MIB * MB} /dev/zero > /dev/shm/fill && touch /tmp/ready && exec httpd -f -p 8080 -h /data"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 1s
      retries: 30
    volumes:
      - data:/data
volumes:
  data: {{}}
"""


@pytest.fixture
def config_repo(config_repo):
    write_product(config_repo, "filler", MANIFEST, COMPOSE)
    return config_repo


@pytest.mark.parametrize("database_url,orchestrator", [("sqlite", "docker"), ("postgresql", "swarm")],
                         indirect=["database_url"])
def test_the_sampler_records_disk_and_memory_and_concurrent_usage_requests_all_answer(api, background_worker):
    live = api.app.extensions["live"]
    created = api.post("/whmcs/v1/services/1501/create", client_payload(product="filler", plan="basic", wait=90))
    assert created.json.get("result") == "succeeded", created.json
    order = Order.get(Order.whmcs_service_id == 1501)
    before = api.get("/whmcs/v1/usage").json["services"]
    assert before == [{"service_id": 1501, "status": "active", "sampled_at": None, "memory_mb": None,
                       "memory_limit_mb": None, "cpu_seconds": None, "containers_running": None,
                       "containers_total": None, "disk_sampled_at": None, "disk_mb": None,
                       "backup_mb": 0.0}], "not sampled yet"

    usage = background_worker.usage
    done = usage.sample()
    assert usage.sample_disk() == 1
    (container,) = live.engine.list_containers(order_selector(live.settings.deployment, order.id))
    if live.settings.orchestrator == "swarm":
        assert container.task_container, "a swarm listing names the running task's container"
    local = CgroupReader().read(container.task_container or container.id) is not None
    assert (done.cgroup_reads, done.stats_calls) == ((1, 0) if local else (0, 1)), "this machine runs the engine"

    row = api.get("/whmcs/v1/usage").json["services"][0]
    assert row["sampled_at"] and row["disk_sampled_at"]
    assert (row["containers_running"], row["containers_total"]) == (1, 1)
    assert DISK_MIB <= row["disk_mb"] < DISK_MIB + 1, row
    assert row["memory_mb"] >= MEMORY_MIB, row
    assert row["memory_limit_mb"] is None and row["cpu_seconds"] >= 0
    # The engine's own stats (one stats call) agree with the cgroup files within a few MiB.
    engine_memory = live.engine.running_usage(container)[0] / MB
    assert abs(engine_memory - row["memory_mb"]) < 4, (engine_memory, row)

    answers, errors = [], []

    def ask():
        client = api.app.test_client()
        try:
            for _ in range(3):
                answers.append(client.get("/whmcs/v1/usage", headers=api.headers()).status_code)
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors and answers == [200] * 24
