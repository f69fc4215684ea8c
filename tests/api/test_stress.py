"""Mixed lifecycle calls from many threads through gunicorn, with the real worker (issue 9, item 6).

Races between gunicorn threads, gunicorn workers and the worker's threads, on SQLite and
PostgreSQL: no 5xx, no lock error in any log, no duplicate operation for identical calls made
at the same moment, and every stack ends in the state its order says.
"""
from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import write_product
from tests.support.live_service import MINI_COMPOSE, MINI_MANIFEST, Service

pytestmark = [pytest.mark.with_worker, pytest.mark.usefixtures("docker_engine", "stack_cleanup")]

ORDERS = 12
CALLS = 200
THREADS = 32
VERBS = ["create"] * 4 + ["suspend", "unsuspend", "change-package", "restart", "redeploy", "info", "list"] * 2 + \
        ["terminate"]
ALLOWED = {200, 202, 404, 409}  # 404: no order yet; 409: e.g. restart of a suspended or terminated order


@pytest.fixture
def service(settings, config_repo, tmp_path):
    write_product(config_repo, "mini", MINI_MANIFEST.replace("{basic: {}}", "{basic: {}, plus: {}}"), MINI_COMPOSE)
    running = Service(settings, tmp_path)
    running.env["GUNICORN_THREADS"] = "16"
    running.start(worker=True)
    yield running
    running.stop()


def call(service: Service, verb: str, service_id: int):
    base = f"/whmcs/v1/services/{service_id}"
    if verb == "info":
        return service.get(base)
    if verb == "list":
        return service.get(f"/api/v1/orders?service_id={service_id}")
    body: dict = {"wait": 0}
    if verb == "create":
        client = 100 + service_id % 4  # customers with several services: their creates race on the customer row
        body.update({"client": {"id": client, "email": f"c{client}@example.org"}, "product": "mini",
                     "plan": "basic", "username": f"stress{service_id}"})
    elif verb == "change-package":
        body["plan"] = random.Random(service_id).choice(["basic", "plus"])
    return service.post(f"{base}/{verb}", body)


def test_mixed_lifecycle_calls_from_many_threads(service, docker_engine, settings, tmp_path):
    plan = random.Random(9).choices(VERBS, k=CALLS - 2 * ORDERS)
    calls = [(verb, 7000 + n % ORDERS) for n, verb in enumerate(plan)]
    # Identical calls at the same moment must share one operation: every order's create twice more.
    calls += [("create", 7000 + n) for n in range(ORDERS)] * 2
    random.Random(10).shuffle(calls)
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        responses = list(pool.map(lambda c: (c, call(service, *c)), calls))

    unexpected = [(c, r.status_code, r.text[:300]) for c, r in responses if r.status_code not in ALLOWED]
    assert unexpected == []
    creates: dict[int, set[int]] = {}
    for (verb, service_id), response in responses:
        if verb == "create" and response.status_code in (200, 202) and response.json()["operation"]:
            creates.setdefault(service_id, set()).add(response.json()["operation"]["id"])

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        orders = service.get("/api/v1/orders?per_page=200").json()["items"]
        if all(o["operation"] is None or o["operation"]["state"] in ("succeeded", "failed") for o in orders):
            break
        time.sleep(1)
    assert orders, "no order was created"
    unfinished = [o["instance"] for o in orders if o["operation"] and o["operation"]["state"] not in
                  ("succeeded", "failed")]
    assert unfinished == []

    for order in orders:
        operations = service.get(f"/api/v1/orders/{order['id']}/operations").json()["items"]
        errors = [f"{op['error']} / {op['error_detail']}" for op in operations if op["state"] == "failed"]
        assert not any("lock" in e or "internal error" in e for e in errors), errors
        create_ops = [op for op in operations if op["kind"] == "create"]
        assert len(create_ops) == 1, f"{order['instance']}: concurrent identical creates made {len(create_ops)}"
        assert creates[order["service_id"]] == {create_ops[0]["id"]}
        containers = docker_engine.containers.list(
            all=True, filters={"label": [f"live.deployment={settings.deployment}", f"live.order={order['id']}"]})
        running = [c for c in containers if c.status == "running"]
        expected = {"active": 1, "suspended": 0, "terminated": 0, "failed": 0, "pending": None}[order["status"]]
        if expected is not None:
            assert len(running) == expected, f"{order['instance']} is {order['status']} with {len(running)} running"

    logs = (tmp_path / "gunicorn.log").read_text() + (tmp_path / "worker.log").read_text()
    for problem in ("database is locked", "Traceback", "could not be recorded", '"status": 5'):
        assert problem not in logs, f"{problem!r} in the logs"
