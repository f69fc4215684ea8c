"""The ingress as HTTP callers see it: Caddy's ask endpoint, /readyz and the order views (no Caddy needed).

The routes in a real Caddy are tests/integration/test_ingress_caddy.py's.
"""
from __future__ import annotations

import dataclasses

import pytest

from app import create_app
from app.apikeys import create_key
from app.db import upgrade
from tests.api.conftest import Api, client_payload
from tests.support.live_service import free_port


@pytest.fixture
def proxied(settings):
    """The API of a bridge whose Caddy admin API does not answer (nothing listens on its port)."""
    port = free_port()
    app = create_app(dataclasses.replace(settings, caddy_admin_url=f"http://127.0.0.1:{port}"))
    live = app.extensions["live"]
    upgrade(live.db)
    live.catalog.sync()
    tokens = {scope: create_key(f"test-{scope}", scope)[1] for scope in ("whmcs", "read", "admin")}
    yield Api(app=app, client=app.test_client(), tokens=tokens), port
    live.db.close()


def test_ask_answers_200_only_for_hostnames_of_orders_that_are_not_terminated(api):
    created = api.post("/whmcs/v1/services/601/create", client_payload(username="river"))
    assert created.status_code == 202
    own = api.post("/whmcs/v1/services/602/create", client_payload(username="shop", domain="Maps.Example.org"))
    assert own.status_code == 202
    for domain in ("river.test.local", "maps.example.org", "MAPS.example.org."):
        answer = api.get(f"/ingress/v1/ask?domain={domain}", scope=None)
        assert answer.status_code == 200, domain
        assert answer.json == {"domain": domain, "allowed": True}
    unicode = api.post("/whmcs/v1/services/605/create", client_payload(username="books", domain="maps.bücher.example"))
    assert unicode.json["order"]["hostname"] == "maps.xn--bcher-kva.example"
    for domain in ("maps.bücher.example", "maps.xn--bcher-kva.example"):  # as hostnames are compared: IDNA
        assert api.get(f"/ingress/v1/ask?domain={domain}", scope=None).status_code == 200, domain
    for domain in ("stranger.test.local", "example.org", "river.test.local.evil.example", "127.0.0.1", "a" * 253,
                   "bad_name.example"):
        assert api.get(f"/ingress/v1/ask?domain={domain}", scope=None).status_code == 404, domain
    assert api.get("/ingress/v1/ask", scope=None).status_code == 422  # the API's validation error
    assert api.get("/ingress/v1/ask?domain=", scope=None).status_code == 422
    # Terminated orders: tests/unit/test_ingress_service.py (the worker's terminate), and the real Caddy test.


def test_without_an_ingress_readyz_and_views_say_off(api):
    checks = api.get("/readyz", scope=None).json["checks"]
    assert checks["ingress"] == {"ok": True, "detail": "off (LIVE_CADDY_ADMIN_URL is not set)"}
    created = api.post("/whmcs/v1/services/603/create", client_payload(username="plain"))
    order_id = created.json["order"]["id"]
    assert api.get(f"/api/v1/orders/{order_id}", scope="read").json["ingress"] == "off"


def test_with_caddy_down_readyz_is_degraded_and_the_order_says_pending(proxied):
    api, port = proxied
    created = api.post("/whmcs/v1/services/604/create", client_payload(username="waiting"))
    order_id = created.json["order"]["id"]
    assert api.get(f"/api/v1/orders/{order_id}", scope="read").json["ingress"] == "pending"
    answer = api.get("/readyz", scope=None)
    assert answer.status_code in (200, 503)  # the engine decides 503; the proxy alone never does
    assert answer.json["status"] != "ready"
    assert answer.json["checks"]["ingress"] == {
        "ok": False, "detail": "the proxy is unreachable or not programmed yet; 1 route pending"}
    assert str(port) not in answer.get_data(as_text=True)  # addresses go to the log, never to anonymous callers
