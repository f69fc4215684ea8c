"""Bad input always gets a 4xx with the uniform JSON error body, never a 5xx."""
from __future__ import annotations

import logging

from tests.api.conftest import client_payload

CREATE = "/whmcs/v1/services/1/create"


def assert_error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.json
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    return body["error"]


def test_invalid_json(api):
    response = api.call("POST", CREATE, data="{not json", headers={"Content-Type": "application/json"})
    assert_error(response, 400, "bad_request")


def test_wrong_types_name_the_field(api):
    error = assert_error(api.post(CREATE, {**client_payload(), "wait": "forever"}), 422, "validation_error")
    assert "wait" in error["message"] and "wait" in error["details"]["json"]
    error = assert_error(api.post(CREATE, {**client_payload(), "client": {"id": "x", "email": "nope"}}), 422, "validation_error")
    assert set(error["details"]["json"]["client"]) == {"id", "email"}


def test_unknown_fields_are_refused(api):
    error = assert_error(api.post(CREATE, {**client_payload(), "colour": "blue"}), 422, "validation_error")
    assert "colour" in error["details"]["json"]


def test_missing_fields_and_out_of_range_values(api):
    error = assert_error(api.post(CREATE, {"product": "busybox-demo"}), 422, "validation_error")
    assert {"client", "plan"} <= set(error["details"]["json"])
    assert_error(api.post(CREATE, {**client_payload(), "wait": 100000}), 422, "validation_error")
    assert_error(api.get("/api/v1/orders?per_page=0", scope="read"), 422, "validation_error")
    assert_error(api.get("/api/v1/orders?status=sleeping", scope="read"), 422, "validation_error")


def test_huge_bodies_are_413(api):
    huge = {**client_payload(), "username": "x" * 200_000}
    assert_error(api.post(CREATE, huge), 413, "payload_too_large")


def test_unknown_routes_and_methods(api):
    assert_error(api.get("/whmcs/v1/nothing-here"), 404, "not_found")
    assert_error(api.call("DELETE", "/api/v1/orders", scope="read"), 405, "method_not_allowed")
    assert_error(api.get("/api/v1/orders/999", scope="read"), 404, "not_found")
    # The WHMCS module tells "no order for this service" from a wrong URL by its own code.
    assert_error(api.post("/whmcs/v1/services/999/suspend", {}), 404, "order_not_found")


def test_request_id_is_echoed_or_made(api):
    mine = api.get("/healthz", scope=None, headers={"X-Request-ID": "billing-run-42"})
    assert mine.headers["X-Request-ID"] == "billing-run-42"
    made = api.get("/healthz", scope=None, headers={"X-Request-ID": "bad id with spaces"})
    assert made.headers["X-Request-ID"] != "bad id with spaces" and len(made.headers["X-Request-ID"]) == 32


def test_secrets_never_reach_the_logs(api, caplog):
    caplog.set_level(logging.DEBUG)
    created = api.post(CREATE, client_payload(username="logged")).json
    password = api.get("/whmcs/v1/services/1").json["secrets"]["DB_PASSWORD"]
    assert created["order"]["instance"] == "logged"
    assert password not in caplog.text
    assert api.tokens["whmcs"] not in caplog.text
    access = [r for r in caplog.records if r.name == "app.web.access"]
    assert access and '"key": "test-whmcs"' in access[-1].getMessage()


def test_database_outage_is_a_503_with_a_clear_message(api, monkeypatch):
    import peewee

    def broken(*args, **kwargs):
        raise peewee.OperationalError("connection refused")

    live = api.app.extensions["live"]
    monkeypatch.setattr(live.db, "connect", broken)
    error = assert_error(api.get("/api/v1/orders", scope="read"), 503, "unavailable")
    assert error["message"] == "the database is unavailable; try again shortly"


def test_readyz_names_what_is_missing(api, monkeypatch, caplog):
    from app.errors import EngineUnavailable

    ready = api.get("/readyz", scope=None)
    assert ready.status_code == 200 and ready.json["checks"]["database"]["ok"] is True

    def no_engine():
        raise EngineUnavailable("ping Docker: cannot reach the Docker engine: connection refused")

    monkeypatch.setattr(api.app.extensions["live"].engine, "ping", no_engine)
    broken = api.get("/readyz", scope=None)
    assert broken.status_code == 503 and broken.headers["Retry-After"] == "5", "every 503 says when to retry"
    # No credentials: it names what is missing, the engine's own words go to the log only.
    assert broken.json["checks"]["docker"] == {"ok": False, "detail": "unavailable"}
    assert "connection refused" not in broken.get_data(as_text=True)
    assert "cannot reach the Docker engine: connection refused" in caplog.text
    assert broken.json["checks"]["database"]["ok"] is True


def test_nul_characters_are_refused_everywhere(api):
    error = assert_error(api.get("/api/v1/customers?email=%00abc", scope="read"), 422, "validation_error")
    assert error["details"] == {"query": ["contains a NUL character"]}
    payload = client_payload()
    payload["client"]["firstname"] = "Ada\x00"
    assert_error(api.post(CREATE, payload), 422, "validation_error")
