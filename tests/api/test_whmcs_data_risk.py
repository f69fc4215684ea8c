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
