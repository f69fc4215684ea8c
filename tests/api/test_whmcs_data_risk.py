"""WHMCS can never accept a change that leaves the customer's data behind (issue 9, item 5)."""
from __future__ import annotations

import pytest

from tests.api.conftest import Api
from tests.conftest import write_product

pytestmark = pytest.mark.usefixtures("docker_engine", "stack_cleanup")

MANIFEST = "name: {name}\nplans: {{basic: {{}}}}\n"
COMPOSE = """
services:
  db:
    image: live-test/busybox:latest
    init: true
    command: ["sleep", "2147483647"]
    volumes:
      - {volume}:/data
    stop_grace_period: 1s
volumes:
  {volume}:
"""


def test_whmcs_never_accepts_a_data_risk(api: Api, config_repo, background_worker):
    write_product(config_repo, "keeper", MANIFEST.format(name="Keeper"), COMPOSE.format(volume="pgdata"))
    write_product(config_repo, "keeper-two", MANIFEST.format(name="Keeper two"), COMPOSE.format(volume="db-data"))
    body = {"client": {"id": 5, "email": "k@example.org"}, "product": "keeper", "plan": "basic", "wait": 60}
    assert api.post("/whmcs/v1/services/905/create", body).json["result"] == "succeeded"
    refused = api.post("/whmcs/v1/services/905/change-package", {"product": "keeper-two", "plan": "basic",
                                                                 "allow_data_risk": True})
    assert refused.status_code == 422, "WHMCS has no such field"
    refused = api.post("/whmcs/v1/services/905/change-package", {"product": "keeper-two", "plan": "basic"})
    assert refused.status_code == 409 and refused.json["error"]["code"] == "data_risk"
    assert "volume pgdata is left behind" in refused.json["error"]["message"]

    order = api.get("/whmcs/v1/services/905").json
    preview = api.post(f"/api/v1/orders/{order['id']}/upgrade", {"dry_run": True}, scope="admin").json
    assert preview["preview"]["data"]["risks"] == []


def test_the_admin_api_previews_refuses_and_accepts_a_risky_product_change(api: Api, config_repo, background_worker):
    write_product(config_repo, "keeper", MANIFEST.format(name="Keeper"), COMPOSE.format(volume="pgdata"))
    write_product(config_repo, "keeper-two", MANIFEST.format(name="Keeper two"), COMPOSE.format(volume="db-data"))
    body = {"client": {"id": 6, "email": "k@example.org"}, "product": "keeper", "plan": "basic", "wait": 60}
    order_id = api.post("/whmcs/v1/services/906/create", body).json["order"]["id"]
    change = {"product": "Keeper-Two", "plan": " BASIC "}

    preview = api.post(f"/api/v1/orders/{order_id}/change-plan", {**change, "dry_run": True}, scope="admin")
    assert preview.status_code == 200 and preview.json["result"] == "preview"
    assert preview.json["preview"]["data"]["left_behind"] == ["pgdata"]
    assert preview.json["preview"]["data"]["new_volumes"] == ["db-data"]

    refused = api.post(f"/api/v1/orders/{order_id}/change-plan", change, scope="admin")
    assert refused.status_code == 409 and refused.json["error"]["code"] == "data_risk"
    assert "allow_data_risk in POST /api/v1/orders/{id}/change-plan" in refused.json["error"]["message"]
    assert api.post(f"/api/v1/orders/{order_id}/change-plan", change, scope="read").status_code == 403

    accepted = api.post(f"/api/v1/orders/{order_id}/change-plan", {**change, "allow_data_risk": True, "wait": 60},
                        scope="admin")
    assert accepted.status_code == 200 and accepted.json["result"] == "succeeded", accepted.json
    order = accepted.json["order"]
    assert order["product"] == "keeper-two" and [v["volume"] for v in order["detached_volumes"]] == ["pgdata"]
