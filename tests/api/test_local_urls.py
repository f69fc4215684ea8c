"""Local URLs (http://127.0.0.1:<port>) only while the order runs, and only for staff (issue 10).

A port is the order's for life, but once its containers stop another order may take it: a link shown
then would open another customer's stack. The WHMCS endpoints (their client area shows customers what
they answer) never carry one; the developer API (read and admin keys) and the CLI show it while the
order is ``active`` with no operation in progress, else ``null``. The engine is the in-memory one.
"""
from __future__ import annotations

import pytest

from app.models import Order
from tests.api.conftest import client_payload
from tests.conftest import TEST_IMAGE
from tests.fakes import FakeEngine


@pytest.fixture
def live(api):
    live = api.app.extensions["live"]
    live.deployer.engine = FakeEngine([TEST_IMAGE, live.settings.helper_image])
    return live


def run(live) -> None:
    live.worker().run_until_idle(timeout=60)


def local_urls(api, order_id: int, scope: str = "read") -> list:
    body = api.get(f"/api/v1/orders/{order_id}", scope=scope).json
    return [endpoint["local_url"] for endpoint in body["endpoints"]]


def whmcs_endpoints(api, service_id: int) -> list[dict]:
    return api.get(f"/whmcs/v1/services/{service_id}").json["endpoints"]


def test_staff_see_the_local_url_only_while_the_order_runs(api, live):
    created = api.post("/whmcs/v1/services/701/create", client_payload(username="river"))
    order_id = created.json["order"]["id"]
    assert local_urls(api, order_id) == [None], "pending: nothing runs yet"
    run(live)
    port = Order.get_by_id(order_id).published_ports["web:8080"]
    running = [f"http://127.0.0.1:{port}/"]
    assert local_urls(api, order_id, "read") == running and local_urls(api, order_id, "admin") == running
    listed = api.get("/api/v1/orders", scope="read").json["items"]
    assert [e["local_url"] for e in listed[0]["endpoints"]] == running

    api.post("/whmcs/v1/services/701/suspend", {})
    assert local_urls(api, order_id) == [None], "an operation in progress: the containers may be stopping"
    run(live)
    assert Order.get_by_id(order_id).status == "suspended"
    assert local_urls(api, order_id) == [None], "suspended: another order may take the port"

    api.post("/whmcs/v1/services/701/unsuspend", {})
    run(live)
    assert local_urls(api, order_id) == running

    api.post("/whmcs/v1/services/701/terminate", {})
    run(live)
    assert local_urls(api, order_id) == [None]


def test_a_failed_order_has_no_local_url(api, live):
    live.deployer.engine.exit_codes["db"] = 1  # the database exits at once: the create fails
    created = api.post("/whmcs/v1/services/702/create", client_payload(username="broken"))
    run(live)
    order = Order.get_by_id(created.json["order"]["id"])
    assert order.status == "failed"
    assert local_urls(api, order.id, "admin") == [None]
    # The CLI (`orders show`) uses the same view as staff do.
    view = live.queries.order_view(order, include_private=True, include_local_urls=True)
    assert [e["local_url"] for e in view["endpoints"]] == [None]


def test_whmcs_answers_never_carry_a_local_url(api, live):
    created = api.post("/whmcs/v1/services/703/create", client_payload(username="customer-facing"))
    assert created.json["order"]["status"] == "pending"
    run(live)
    assert Order.get(Order.whmcs_service_id == 703).status == "active"
    answers = [
        created.json["order"]["endpoints"],
        whmcs_endpoints(api, 703),
        api.post("/whmcs/v1/services/703/create",
                 client_payload(username="customer-facing")).json["order"]["endpoints"],
        api.post("/whmcs/v1/services/703/restart", {}).json["order"]["endpoints"],
    ]
    for endpoints in answers:
        assert endpoints == [{"application": "web", "service": "web", "url": "https://customer-facing.test.local"}]
    run(live)
    assert whmcs_endpoints(api, 703)[0].keys() == {"application", "service", "url"}


def _schema(document: dict, ref: dict) -> dict:
    """The component a ``$ref`` names (also inside ``anyOf: [{$ref}, {type: null}]`` of a nullable field)."""
    if "anyOf" in ref:
        ref = next(item for item in ref["anyOf"] if "$ref" in item)
    return document["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]]


def _endpoint_schema(document: dict, path: str, method: str, status: str = "200") -> dict:
    content = document["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]
    order = _schema(document, content)
    if "order" in order["properties"]:  # a lifecycle answer
        order = _schema(document, order["properties"]["order"])
    return _schema(document, order["properties"]["endpoints"]["items"])


def test_the_openapi_document_says_so(api):
    document = api.get("/api/v1/openapi.json", scope=None).json
    for path, method in (("/whmcs/v1/services/{service_id}", "get"),
                         ("/whmcs/v1/services/{service_id}/create", "post")):
        assert "local_url" not in _endpoint_schema(document, path, method)["properties"], path
    staff = _endpoint_schema(document, "/api/v1/orders/{order_id}", "get")
    local = staff["properties"]["local_url"]
    assert "local_url" in staff["required"]
    assert "null" in (local.get("type") if isinstance(local.get("type"), list) else [local.get("type")]) \
        or local.get("nullable") is True
    assert "staff only" in local["description"]
