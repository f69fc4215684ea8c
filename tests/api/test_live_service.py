"""Against the real service: gunicorn and the worker as processes, the real engine and database."""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from app.config import PROJECT_ROOT
from tests.conftest import write_product
from tests.support.live_service import BIN, MINI_COMPOSE, MINI_MANIFEST, Service

@pytest.fixture
def service(settings, config_repo, tmp_path, request):
    write_product(config_repo, "mini", MINI_MANIFEST, MINI_COMPOSE)
    running = Service(settings, tmp_path)
    running.start(worker=request.node.get_closest_marker("with_worker") is not None)
    yield running
    running.stop()


def create_body(service_id: int, username: str) -> dict:
    return {"client": {"id": service_id, "email": f"c{service_id}@example.org"}, "product": "mini", "plan": "basic",
            "username": username}


@pytest.mark.with_worker
@pytest.mark.usefixtures("docker_engine", "stack_cleanup")
def test_concurrent_creates_make_exactly_one_stack_each(service, docker_engine, settings):
    calls = [(1000 + n, f"burst{n}") for n in range(20)] + [(2000, "repeated")] * 10
    with ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(lambda call: service.post(f"/whmcs/v1/services/{call[0]}/create",
                                                            create_body(*call)), calls))
    assert {r.status_code for r in responses} <= {200, 202}, [r.text for r in responses if r.status_code >= 300]
    repeated_operations = {r.json()["operation"]["id"] for r in responses[20:]}
    assert len(repeated_operations) == 1, "every repeat of the same create got the same operation"

    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        orders = service.get("/api/v1/orders?per_page=200").json()
        if orders["total"] == 21 and all(o["status"] == "active" for o in orders["items"]):
            break
        time.sleep(0.5)
    assert orders["total"] == 21
    assert sorted({o["status"] for o in orders["items"]}) == ["active"], json.dumps(orders)[:2000]
    containers = docker_engine.containers.list(filters={"label": f"live.deployment={settings.deployment}"})
    assert len(containers) == 21
    assert len({c.labels["live.order"] for c in containers}) == 21


def test_schemathesis_finds_no_server_errors(service, tmp_path):
    report = tmp_path / "schemathesis.json"
    result = subprocess.run(
        [str(BIN / "st"), "run", f"{service.url}/api/v1/openapi.json",
         "--checks", "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
         "--max-examples", "25", "--seed", os.environ.get("LIVE_SCHEMATHESIS_SEED", "1"),
         "--header", f"Authorization: Bearer {service.token}",
         "--request-timeout", "30", "--report", "ndjson", "--report-ndjson-path", str(report)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900,
    )
    findings = [line[:300] for line in result.stdout.splitlines()
                if re.search(r"_{5,} (GET|POST)|Received:|Documented:|ST\d{3}|curl -X", line)]
    assert result.returncode == 0, "\n".join(findings) or result.stdout[-3000:]
    server_errors = [line for line in (tmp_path / "gunicorn.log").read_text().splitlines() if '"status": 5' in line]
    assert server_errors == []


def test_metrics_aggregate_every_gunicorn_worker(service):
    for _ in range(20):
        assert requests.get(f"{service.url}/healthz", timeout=5).status_code == 200
    service.get("/api/v1/orders")
    metrics = requests.get(f"{service.url}/metrics", timeout=5).text
    healthz = [line for line in metrics.splitlines()
               if line.startswith("live_http_requests_total{") and 'endpoint="/healthz"' in line]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in healthz) >= 20
    assert "live_http_request_duration_seconds_bucket" in metrics
    assert "live_orders" in metrics and "live_operations" in metrics
