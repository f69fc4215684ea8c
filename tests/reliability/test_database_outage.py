"""PostgreSQL stops for a moment: the API answers 503 with a clear error, and work resumes after."""
from __future__ import annotations

import secrets
import shutil
import subprocess
import time
import uuid

import pytest
import requests

from app.config import load_settings
from tests.conftest import POSTGRES_ADMIN_URL, _postgres_available, unavailable, write_product
from tests.support.waiting import wait_for
from tests.support.live_service import MINI_COMPOSE, MINI_MANIFEST, Service

pytestmark = [pytest.mark.usefixtures("docker_engine"), pytest.mark.timeout(240)]


def cluster() -> list[str] | None:
    if shutil.which("pg_lsclusters") is None or shutil.which("pg_ctlcluster") is None:
        return None
    lines = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True).stdout.split("\n")
    fields = lines[0].split() if lines and lines[0].strip() else []
    return fields[:2] or None


def pg_ready() -> bool:
    return subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"]).returncode == 0


@pytest.fixture
def pg_database():
    problem = _postgres_available()
    if problem:
        unavailable(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {problem}")
    import psycopg2

    name = f"live_rel_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(POSTGRES_ADMIN_URL)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    admin.close()
    yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    wait_for(pg_ready, timeout=60, what="pg_isready")
    admin = psycopg2.connect(POSTGRES_ADMIN_URL)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


def test_api_answers_503_while_postgresql_is_down(pg_database, config_repo, tmp_path, docker_engine):
    found = cluster()
    if found is None:
        unavailable("pg_lsclusters/pg_ctlcluster not available: cannot stop PostgreSQL here")
    write_product(config_repo, "mini", MINI_MANIFEST, MINI_COMPOSE)
    settings = load_settings({"LIVE_DATABASE_URL": pg_database, "LIVE_CONFIG_REPO": str(config_repo),
                              "LIVE_BASE_DOMAIN": "test.local", "LIVE_BACKUP_DIR": str(tmp_path / "backups"),
                              "LIVE_DEPLOYMENT": "r" + secrets.token_hex(4)})
    service = Service(settings, tmp_path)
    body = {"client": {"id": 1, "email": "c1@example.org"}, "product": "mini", "plan": "basic"}
    try:
        service.start(worker=True)
        first = service.post("/whmcs/v1/services/1/create", dict(body, wait=60))
        assert first.status_code == 200 and first.json()["result"] == "succeeded", first.text
        try:
            subprocess.run(["pg_ctlcluster", *found, "stop", "-m", "fast"], check=True, timeout=60)
            answers = [service.get("/api/v1/orders"), service.get("/whmcs/v1/services/1"),
                       service.post("/whmcs/v1/services/2/create", dict(body, client={"id": 2, "email": "c2@example.org"})),
                       requests.get(f"{service.url}/readyz", timeout=10)]
            # (/healthz answers 503 too while the database is down: see test_healthz_does_not_need_the_database)
            time.sleep(1.5)  # the worker polls meanwhile and must survive it
        finally:
            subprocess.run(["pg_ctlcluster", *found, "start"], timeout=60)
            wait_for(pg_ready, timeout=60, what="pg_isready")
        for answer in answers:
            assert answer.status_code == 503, (answer.request.url, answer.status_code, answer.text[:300])
            assert answer.headers["Content-Type"].startswith("application/json")
        *calls, readyz = answers
        for answer in calls:
            error = answer.json()["error"]
            assert error["code"] == "unavailable" and "database" in error["message"], error
            assert answer.headers.get("Retry-After")
        # /readyz names each dependency instead: the database is the one that fails.
        assert readyz.headers.get("Retry-After") and readyz.json()["status"] == "unavailable"
        assert readyz.json()["checks"]["database"] == {"ok": False, "detail": "unavailable"}
        assert readyz.json()["checks"]["docker"] == {"ok": True, "detail": "ok"}

        # Back: the API answers again and the worker runs new work.
        wait_for(lambda: service.get("/api/v1/orders").status_code == 200, timeout=30, what="API back")
        second = service.post("/whmcs/v1/services/2/create", dict(body, client={"id": 2, "email": "c2@example.org"}, wait=90))
        assert second.status_code == 200 and second.json()["result"] == "succeeded", second.text
        assert service.get("/whmcs/v1/services/1").json()["status"] == "active"
    finally:
        service.stop()
        selector = {"label": f"live.deployment={settings.deployment}"}
        for container in docker_engine.containers.list(all=True, filters=selector, sparse=True):
            container.remove(force=True)
        for network in docker_engine.networks.list(filters=selector):
            network.remove()
    log = (tmp_path / "gunicorn.log").read_text()
    assert "Traceback" not in log, log[-3000:]
    assert '"status": 500' not in log


def test_healthz_does_not_need_the_database(config_repo, tmp_path):
    from app import create_app

    settings = load_settings({"LIVE_DATABASE_URL": "postgresql://live:live@127.0.0.1:9/unreachable",
                              "LIVE_CONFIG_REPO": str(config_repo), "LIVE_BACKUP_DIR": str(tmp_path / "backups"),
                              "LIVE_DEPLOYMENT": "r" + secrets.token_hex(4)})
    client = create_app(settings).test_client()
    assert client.get("/api/v1/orders").status_code in (401, 503)
    assert client.get("/healthz").status_code == 200
