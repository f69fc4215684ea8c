"""The fast read path of `GET /whmcs/v1/services/{id}` (issue 15): its flat serialiser answers exactly what the
OpenAPI schema's dump gives, for orders in several states; and API keys verified by a process are trusted for
a few seconds only (a key revoked by another process is refused within the TTL)."""
from __future__ import annotations

import json

import pytest

from app import apikeys
from app.models import ApiKey, Backup, Operation, Order, utcnow
from app.web.schemas import ServiceInfoOut
from tests.api.conftest import client_payload
from tests.support.key_cache import manual_key_cache


def _schema_dump(api, service_id: int) -> dict:
    """What the endpoint answered before issue 15: the view's dict through the schema's marshmallow dump."""
    with api.app.app_context():
        view = api.app.extensions["live"].queries.service_info(service_id)
    return json.loads(json.dumps(ServiceInfoOut().dump(view)))


def test_the_flat_status_equals_the_schemas_output(api):
    for service_id in (301, 302, 303, 304):
        created = api.post(f"/whmcs/v1/services/{service_id}/create", client_payload(client_id=service_id))
        assert created.status_code == 202, created.json
    # 302: failed, with public and private errors on the order and its operation
    Order.update(status="failed", last_error="the stack did not start", last_error_detail="private trace",
                 ).where(Order.whmcs_service_id == 302).execute()
    order302 = Order.get(Order.whmcs_service_id == 302)
    Operation.update(state="failed", error="the stack did not start", error_detail="private trace", attempts=3,
                     steps=[{"message": "pulling", "at": "2026-12-01T10:00:00Z"}], finished_at=utcnow(),
                     started_at=utcnow()).where(Operation.order == order302).execute()
    # 303: active on a swarm node, with backups (one succeeded, one failed) and detached volumes
    order303 = Order.get(Order.whmcs_service_id == 303)
    Order.update(status="active", node="n1abc", node_name="worker-1", ingress_pending=False,
                 detached_volumes=[{"volume": "old_data", "revision": "r1", "at": "2026-12-01T00:00:00Z", "note": "x"}],
                 ).where(Order.id == order303.id).execute()
    Operation.update(state="succeeded", finished_at=utcnow()).where(Operation.order == order303).execute()
    Backup.create(order=order303, kind="scheduled", state="succeeded", finished_at=utcnow(), size=10)
    Backup.create(order=order303, kind="on_demand", state="failed", finished_at=utcnow(), error="store full")
    # 304: a second, queued operation behind the finished create
    order304 = Order.get(Order.whmcs_service_id == 304)
    Operation.update(state="succeeded", finished_at=utcnow()).where(Operation.order == order304).execute()
    Operation.create(order=order304, kind="restart", requested_by="key:test-whmcs")
    for service_id in (301, 302, 303, 304):
        answer = api.get(f"/whmcs/v1/services/{service_id}")
        assert answer.status_code == 200
        assert answer.json == _schema_dump(api, service_id), service_id
    assert api.get("/whmcs/v1/services/303").json["backups"]["last_failure"]["error"] == "store full"
    assert "error_detail" not in api.get("/whmcs/v1/services/302").json["operation"]
    assert "secrets" in api.get("/whmcs/v1/services/301").json


def test_an_unknown_service_is_still_a_404(api):
    answer = api.get("/whmcs/v1/services/999")
    assert answer.status_code == 404 and answer.json["error"]["code"] == "order_not_found"


@pytest.fixture
def key_clock(monkeypatch):
    return manual_key_cache(monkeypatch)[1]


def test_a_key_revoked_by_another_process_is_refused_within_the_ttl(api, key_clock):
    assert api.post("/whmcs/v1/test-connection").status_code == 200
    # `live apikey revoke` in another process: the row changes, this process's cache does not know
    ApiKey.update(revoked_at=utcnow()).where(ApiKey.name == "test-whmcs").execute()
    assert api.post("/whmcs/v1/test-connection").status_code == 200  # within the TTL
    key_clock.now += apikeys.CACHE_SECONDS
    refused = api.post("/whmcs/v1/test-connection")
    assert refused.status_code == 401 and "not valid" in refused.json["error"]["message"]


def test_a_wrong_secret_is_refused_while_the_right_one_is_cached(api, key_clock):
    assert api.post("/whmcs/v1/test-connection").status_code == 200
    prefix = api.tokens["whmcs"].rsplit("_", 1)[0]
    wrong = api.client.post("/whmcs/v1/test-connection", headers={"Authorization": f"Bearer {prefix}_{'z' * 43}"})
    assert wrong.status_code == 401
    assert api.post("/whmcs/v1/test-connection").status_code == 200


def test_a_create_answers_its_new_order_as_a_read_shows_it(api):
    """The create answer does not read the new order's operation and backups back: it knows them."""
    created = api.post("/whmcs/v1/services/321/create", client_payload(client_id=321))
    assert created.status_code == 202
    shown = api.get("/whmcs/v1/services/321").json
    shown.pop("recent_operations"), shown.pop("secrets")
    assert created.json["order"] == shown
    assert created.json["order"]["operation"]["id"] == created.json["operation"]["id"]
