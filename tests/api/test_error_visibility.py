"""Internal error text never reaches customers or the public; operators (admin keys, CLI, logs) get the detail."""
from __future__ import annotations

import dataclasses
import json
import logging
import socket

import peewee
import pytest

from app import create_app
from app.db import upgrade
from app.errors import CatalogSourceError, ImageMissing, EngineUnavailable, StackSpecError
from app.models import Event, Operation
from app.orders.lifecycle import OperationKind
from tests.api.conftest import client_payload

# What a crash message may hold: a URL with a password, a host name, a file path.
SECRET_URL = "postgresql://live:s3cret@db.internal:5432/live"
SECRET_PATH = "/srv/live/keys/id_rsa"
LEAKS = ("s3cret", "db.internal", SECRET_PATH, "RuntimeError", "Traceback")


def no_leak(response_or_text) -> str:
    """The whole answer as text, asserted free of every private fragment."""
    text = response_or_text if isinstance(response_or_text, str) else response_or_text.get_data(as_text=True)
    for fragment in LEAKS:
        assert fragment not in text, f"{fragment!r} leaked: {text[:2000]}"
    return text


def crash(operation, order, progress):
    """A handler with a bug: its exception text holds what no customer may read."""
    progress("connect to the order's database")
    raise RuntimeError(f"could not connect to {SECRET_URL} (key {SECRET_PATH})")


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.usefixtures("docker_engine", "stack_cleanup")
def test_an_operation_crash_shows_customers_only_the_public_text(api, background_worker, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    monkeypatch.setitem(api.app.extensions["live"].runner.handlers, OperationKind.CREATE, crash)
    answer = api.post("/whmcs/v1/services/701/create", client_payload(username="crashy", wait=60))
    assert answer.status_code == 200, answer.json
    body = answer.json
    operation_id = body["operation"]["id"]
    public = f"internal error in operation {operation_id}; the operators have the details"
    detail = f"RuntimeError: could not connect to {SECRET_URL} (key {SECRET_PATH})"

    # WHMCS (the client area): the lifecycle answer, the service info and the failure report.
    assert body["result"] == "failed" and body["message"] == public
    assert body["order"]["last_error"] == public and body["operation"]["error"] == public
    assert "error_detail" not in body["operation"] and "last_error_detail" not in body["order"]
    no_leak(answer)
    info = api.get("/whmcs/v1/services/701")
    assert info.json["last_error"] == public and info.json["recent_operations"][0]["error"] == public
    no_leak(info)
    failures = api.get("/whmcs/v1/failures")
    assert [f["error"] for f in failures.json["failures"]] == [public]
    no_leak(failures)

    # Developer API: read keys get the public text, admin keys the detail as well.
    order_id = body["order"]["id"]
    for path in (f"/api/v1/orders/{order_id}", f"/api/v1/orders/{order_id}/operations",
                 f"/api/v1/operations/{operation_id}", f"/api/v1/orders/{order_id}/events", "/api/v1/orders"):
        no_leak(api.get(path, scope="read"))
    order = api.get(f"/api/v1/orders/{order_id}", scope="admin").json
    assert order["last_error"] == public and order["last_error_detail"] == detail
    assert order["operation"]["error_detail"] == detail
    assert api.get(f"/api/v1/operations/{operation_id}", scope="admin").json["error_detail"] == detail
    events = api.get(f"/api/v1/orders/{order_id}/events", scope="admin").json["items"]
    failed = next(e for e in events if e["kind"] == "operation.failed")
    assert failed["message"] == f"create failed: {public}" and failed["data"]["error_detail"] == detail

    # GeoCat Live 1.0 (no credentials) carries no error text at all.
    legacy = api.get("/geocat-live/api/1.0/order/crashy", scope=None)
    assert legacy.status_code == 200
    assert legacy.json == {"services": [{"application": "web", "url": "https://crashy.test.local",
                                         "status": "SERVICE_ERROR"}]}

    # The operators: the CLI and the log have the detail (and the traceback).
    runner = api.app.test_cli_runner()
    shown = runner.invoke(args=["live", "orders", "show", "service:701"], catch_exceptions=False).output
    assert f"last_error   {public}" in shown
    assert f"detail       {detail}" in shown and f"create       failed     attempts 1  {detail}" in shown
    assert f"detail: {detail}" in shown  # the operation.failed event
    listed = runner.invoke(args=["live", "orders", "list", "--status", "failed"], catch_exceptions=False).output
    assert f"last error: {detail}" in listed
    as_json = json.loads(runner.invoke(args=["live", "orders", "show", "crashy", "--json"]).output)
    assert as_json["last_error_detail"] == detail and as_json["operations"][0]["error_detail"] == detail
    assert "Traceback" in caplog.text and SECRET_URL in caplog.text


@pytest.mark.usefixtures("docker_engine", "stack_cleanup")
def test_retries_record_the_public_text_and_keep_the_detail_private(api, monkeypatch):
    engine_error = ("create container t1-acme-db: Docker engine error: 500 Server Error for "
                    "http+docker://localhost/v1.43/containers/create: s3cret")

    def engine_down(operation, order, progress):
        raise EngineUnavailable(engine_error)

    live = api.app.extensions["live"]
    monkeypatch.setitem(live.runner.handlers, OperationKind.CREATE, engine_down)
    created = api.post("/whmcs/v1/services/702/create", client_payload(username="flaky")).json
    live.worker().run_until_idle(timeout=60)
    operation = Operation.get_by_id(created["operation"]["id"])
    public = f"the container platform is unavailable right now (operation {operation.id})"
    assert (operation.state, operation.attempts) == ("failed", 3)
    assert (operation.error, operation.error_detail) == (public, engine_error)
    retries = list(Event.select().where((Event.operation == operation) & (Event.kind == "operation.retry")))
    assert len(retries) == 2
    assert all("s3cret" not in e.message and e.data["error_detail"] == engine_error for e in retries)

    order_id = created["order"]["id"]
    read = api.get(f"/api/v1/orders/{order_id}/events", scope="read")
    assert all("error_detail" not in e["data"] for e in read.json["items"])
    assert "s3cret" not in read.get_data(as_text=True)
    admin = api.get(f"/api/v1/orders/{order_id}/events", scope="admin").json["items"]
    assert [e["data"]["error_detail"] for e in admin if e["kind"] == "operation.retry"] == [engine_error] * 2
    info = api.get("/whmcs/v1/services/702")
    assert info.json["last_error"] == public and "s3cret" not in info.get_data(as_text=True)


def test_a_stack_spec_error_in_a_request_is_a_422(api, monkeypatch):
    api.post("/whmcs/v1/services/703/create", client_payload(username="spec"))  # no worker: stays pending
    private = f"volumes: named volume 'keys' is not declared (while reading {SECRET_PATH})"

    def invalid(service_ids=None):  # a read that renders the order's stack and meets an invalid product
        raise StackSpecError(private)

    monkeypatch.setattr(api.app.extensions["live"].queries, "usage", invalid)
    answer = api.get("/whmcs/v1/usage")
    assert answer.status_code == 422, answer.json
    assert answer.json["error"] == {"code": "product_invalid", "message": "the product's service definition is invalid",
                                    "details": {}}
    # The same call with an admin key (admin may call every route) carries the private text.
    admin = api.get("/whmcs/v1/usage", scope="admin").json["error"]
    assert admin["code"] == "product_invalid" and admin["details"] == {"detail": private}


def test_internal_errors_in_requests_answer_the_public_text_and_log_the_detail(api, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    api.post("/whmcs/v1/services/704/create", client_payload(username="image"))
    live = api.app.extensions["live"]
    private = "pull image registry.internal:5000/acme/app:1: 500 Server Error: s3cret"

    def missing_image(service_ids=None):
        raise ImageMissing(private)

    monkeypatch.setattr(live.queries, "usage", missing_image)
    answer = api.get("/whmcs/v1/usage", headers={"X-Request-ID": "usage-run-1"})
    assert answer.status_code == 502
    assert answer.json["error"] == {"code": "image_missing", "message": "a service image is not available",
                                    "details": {}}
    assert "registry.internal" not in answer.get_data(as_text=True)
    assert "usage-run-1" in caplog.text and private in caplog.text

    def bug(service_ids=None):
        raise KeyError(SECRET_URL)

    monkeypatch.setattr(live.queries, "usage", bug)
    crashed = api.get("/whmcs/v1/usage", headers={"X-Request-ID": "usage-run-2"}, scope="admin")
    assert crashed.status_code == 500
    assert crashed.json["error"] == {"code": "internal_error", "message": "internal error (request usage-run-2)",
                                     "details": {}}


def test_caller_errors_keep_their_message_and_only_admin_keys_get_details(api):
    missing = api.get("/api/v1/orders/4242", scope="read").json["error"]
    assert missing == {"code": "not_found", "message": "no order 4242", "details": {}}
    admin = api.get("/api/v1/orders/4242", scope="admin").json["error"]
    assert admin == {"code": "not_found", "message": "no order 4242", "details": {"detail": "no order 4242"}}
    order = api.post("/whmcs/v1/services/705/suspend", {}).json["error"]
    assert order == {"code": "order_not_found", "message": "no order for WHMCS service 705", "details": {}}


def test_an_invalid_product_shows_whmcs_its_headline_only(api, config_repo):
    from tests.conftest import write_product

    write_product(config_repo, "evil", "name: Evil\nplans: {basic: {}}\n",
                  "services:\n  evil:\n    image: live-test/busybox:latest\n    privileged: true\n")
    api.app.extensions["live"].catalog.sync()
    refused = api.post("/whmcs/v1/services/706/create", client_payload(product="evil", plan="basic"))
    assert refused.status_code == 422
    assert refused.json["error"] == {"code": "product_invalid", "message": "product 'evil' is invalid", "details": {}}
    admin = api.post("/whmcs/v1/services/706/create", client_payload(product="evil", plan="basic"), scope="admin")
    details = admin.json["error"]["details"]
    assert details["product"] == "evil" and any("privileged" in e for e in details["errors"])
    assert "privileged" in details["detail"]


def test_test_connection_names_no_engine_internals(api, monkeypatch):
    def no_engine():
        raise EngineUnavailable("ping Docker: cannot reach the Docker engine at tcp://10.0.0.7:2375: refused")

    monkeypatch.setattr(api.app.extensions["live"].engine, "ping", no_engine)
    answer = api.post("/whmcs/v1/test-connection")
    assert answer.status_code == 200 and answer.json["docker"] == "unreachable"
    assert "10.0.0.7" not in answer.get_data(as_text=True)


def test_readyz_with_the_database_down_names_each_dependency_and_shows_no_raw_text(settings, caplog):
    port = closed_port()
    down = dataclasses.replace(settings, database_url=f"postgresql://live:s3cret@127.0.0.1:{port}/live")
    client = create_app(down).test_client()
    answer = client.get("/readyz", headers={"X-Request-ID": "abc123abc123"})
    assert answer.status_code == 503 and answer.headers["Retry-After"]
    assert answer.headers["X-Request-ID"] == "abc123abc123"
    assert answer.json == {"status": "unavailable", "checks": {
        "database": {"ok": False, "detail": "unavailable"}, "docker": {"ok": True, "detail": "ok"},
        "catalog": {"ok": False, "detail": "unknown"}, "worker": {"ok": False, "detail": "unknown"},
        "ingress": {"ok": False, "detail": "unknown"},
        "backup_store": {"ok": True, "detail": "ok"}}}, "the backup store needs no database"
    text = answer.get_data(as_text=True)
    assert "127.0.0.1" not in text and str(port) not in text and "s3cret" not in text
    assert str(port) in caplog.text, "the log says which database could not be reached"


def test_with_the_database_down_every_answer_keeps_its_request_id_and_metrics_say_so(settings, caplog):
    caplog.set_level(logging.INFO, logger="app.web.access")
    port = closed_port()
    down = dataclasses.replace(settings, database_url=f"postgresql://live:s3cret@127.0.0.1:{port}/live")
    client = create_app(down).test_client()
    answer = client.get("/api/v1/orders", headers={"X-Request-ID": "req-down-1"})
    assert answer.status_code == 503 and answer.headers["X-Request-ID"] == "req-down-1"
    assert answer.json["error"] == {"code": "unavailable", "message": "the database is unavailable; try again shortly",
                                    "details": {}}
    assert '"request_id": "req-down-1"' in caplog.text
    generated = client.get("/api/v1/orders").headers["X-Request-ID"]
    assert generated != "-" and len(generated) == 32
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "\nlive_database_up 0.0\n" in metrics
    assert "\nlive_worker_alive 0.0\n" in metrics, "unknown is not alive: the alert on live_worker_alive == 0 fires"
    assert "live_worker_heartbeat_age_seconds " not in metrics
    assert "\nlive_mirror_fresh 0.0\n" in metrics and "live_mirror_age_seconds " not in metrics


def test_readyz_when_a_check_fails_mid_request(api, monkeypatch, caplog):
    def broken(db):
        raise peewee.OperationalError('connection to server at "db.internal" (10.0.0.5), port 5432 failed')

    monkeypatch.setattr("app.orders.queries.pending_migrations", broken)
    answer = api.get("/readyz", scope=None)
    assert answer.status_code == 503
    assert answer.json["checks"]["database"] == {"ok": False, "detail": "unavailable"}
    assert "db.internal" not in answer.get_data(as_text=True) and "db.internal" in caplog.text

    monkeypatch.setattr("app.orders.queries.pending_migrations", lambda db: ["0009_future"])
    pending = api.get("/readyz", scope=None).json["checks"]["database"]
    assert pending == {"ok": False, "detail": "pending migrations: 1"}


def test_readyz_and_catalog_status_with_gitlab_unreachable(settings, monkeypatch):
    port = closed_port()
    gitlab = dataclasses.replace(settings, gitlab_url=f"http://127.0.0.1:{port}", gitlab_project="geocat/catalog",
                                 gitlab_token="glpat-s3cret", gitlab_timeout=2.0)
    app = create_app(gitlab)
    live = app.extensions["live"]
    upgrade(live.db)
    with pytest.raises(CatalogSourceError) as failed:
        live.catalog.sync()
    raw = str(failed.value)
    assert f"127.0.0.1:{port}" in raw
    monkeypatch.setattr(live.engine, "ping", lambda: None)  # readiness here is about the catalog only
    client = app.test_client()
    answer = client.get("/readyz")
    assert answer.status_code == 200 and answer.json["status"] == "degraded"
    catalog = answer.json["checks"]["catalog"]
    assert catalog["ok"] is False
    assert catalog["detail"].startswith("last sync failed at ") and "serving the last good catalog" in catalog["detail"]
    text = answer.get_data(as_text=True)
    assert str(port) not in text and "GitLab" not in text and "unreachable" not in text and "s3cret" not in text

    from app.apikeys import create_key

    read = client.get("/api/v1/catalog", headers={"Authorization": f"Bearer {create_key('r', 'read')[1]}"}).json
    assert read["last_error"] and raw not in read["last_error"] and "last_error_detail" not in read
    assert read["source"] == "GitLab", "GitLab's address and project are for admin keys"
    admin = client.get("/api/v1/catalog", headers={"Authorization": f"Bearer {create_key('a', 'admin')[1]}"}).json
    assert admin["last_error_detail"] == raw
    assert admin["source"] == f"GitLab http://127.0.0.1:{port} project geocat/catalog at main"
    live.db.close()
