"""The operator CLI (`flask --app wsgi live ...`) against a real database and engine."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest

from app import create_app
from app.config import PROJECT_ROOT
from app.models import WorkerHeartbeat, utcnow
from app.orders.queries import OrderQueries
from tests.conftest import write_product


@pytest.fixture
def cli(settings):
    app = create_app(settings)
    runner = app.test_cli_runner()

    def invoke(*args):
        return runner.invoke(args=["live", *args], catch_exceptions=False)

    assert invoke("db", "upgrade").exit_code == 0
    return invoke


def test_products_list_show_and_validate(cli, config_repo):
    listed = cli("products", "list")
    assert listed.exit_code == 0
    for slug in ("busybox-demo", "geonetwork", "geoserver-postgis", "sdi"):
        assert slug in listed.output
    shown = cli("products", "show", "geoserver-postgis")
    assert "plans:" in shown.output and "geoserver: service geoserver port 8080 path /geoserver" in shown.output
    assert cli("products", "validate").exit_code == 0

    write_product(config_repo, "broken", "name: Broken\nplans: {a: {}}\n", "services:\n  x:\n    image: busybox\n    privileged: true\n")
    result = cli("products", "validate", str(config_repo / "products" / "broken"))
    assert result.exit_code == 1
    assert "INVALID broken" in result.output and "product broken: service x: privileged" in result.output
    assert "INVALID (1 error(s))" in cli("products", "list").output


@pytest.mark.usefixtures("docker_engine", "stack_cleanup")
def test_orders_create_list_show_and_errors(cli, live):
    created = cli("orders", "create", "--service-id", "42", "--email", "gis@example.org", "--product", "busybox-demo",
                  "--plan", "small", "--domain", "maps.example.org")
    assert created.exit_code == 0, created.output
    assert "order 1 (maps-example-org): order maps-example-org accepted" in created.output
    live.worker().run_until_idle(timeout=120)
    shown = cli("orders", "show", "service:42")
    assert "status       active" in shown.output
    assert "https://maps.example.org" in shown.output and "local: http://127.0.0.1:" in shown.output
    assert "maps-example-org" in cli("orders", "list", "--status", "active").output
    again = cli("orders", "suspend", "maps-example-org")
    assert "suspend accepted" in again.output
    unknown = cli("orders", "suspend", "nobody")
    assert unknown.exit_code == 1 and "no order 'nobody'" in unknown.output
    bad_plan = cli("orders", "change-plan", "1", "--plan", "gold")
    assert bad_plan.exit_code == 1 and "has no plan 'gold'" in bad_plan.output


def test_wait_without_a_worker_says_so_at_once(cli, live, monkeypatch):
    waited = []
    monkeypatch.setattr(OrderQueries, "wait_for_operation", staticmethod(lambda *args, **kwargs: waited.append(args)))
    created = cli("orders", "create", "--service-id", "43", "--email", "gis@example.org", "--product", "busybox-demo",
                  "--plan", "small", "--wait", "60")
    assert created.exit_code == 3 and waited == [], "nothing would change while waiting"
    assert created.output.splitlines()[-1] == (
        "not waiting: no worker is running (none has a heartbeat); the operation is recorded and runs once one does: "
        "`flask --app wsgi live worker` (or `make run`)")
    WorkerHeartbeat.create(worker="old:1", started_at=utcnow(), beat_at=utcnow() - dt.timedelta(hours=2),
                           poll_seconds=1.0, concurrency=1)
    stale = cli("orders", "suspend", "service:43", "--wait", "60")
    assert stale.exit_code == 3 and "(last heartbeat 2 h ago)" in stale.output


def test_bad_configuration_stops_start_up_with_one_message(tmp_path):
    env = dict(os.environ, LIVE_DATABASE_URL=f"sqlite:///{tmp_path}/x.db", LIVE_PUBLIC_SCHEME="gopher")
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "live", "db", "upgrade"], cwd=PROJECT_ROOT,
                            env=env, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == "GeoCat Live: configuration error: LIVE_PUBLIC_SCHEME must be http or https, got 'gopher'"


def test_doctor_json_with_a_bad_configuration_is_still_json(tmp_path):
    env = dict(os.environ, LIVE_DATABASE_URL="garbage")
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "live", "doctor", "--json"],
                            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert report["status"] == "fail" and report["exit_code"] == 2
    (check,) = report["checks"]
    assert check["check"] == "configuration" and "LIVE_DATABASE_URL" in check["finding"]
    assert "config/live.env.example" in check["fix"]
    assert result.stderr.startswith("GeoCat Live: configuration error: ")


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_database_without_migrations_is_one_line_not_a_traceback(settings):
    runner = create_app(settings).test_cli_runner()
    for command in (["apikey", "create", "x", "--scope", "whmcs"], ["orders", "list"], ["apikey", "list"]):
        result = runner.invoke(args=["live", *command])
        assert result.exit_code == 1, command
        assert "the database cannot be used" in result.output and "db upgrade" in result.output, result.output
        assert "Traceback" not in result.output


def test_an_unreachable_database_is_one_line_not_a_traceback(settings):
    import dataclasses

    closed = dataclasses.replace(settings, database_url="postgresql://live:live@127.0.0.1:9/nowhere")
    result = create_app(closed).test_cli_runner().invoke(args=["live", "orders", "list"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: the database cannot be used:") and "Traceback" not in result.output
