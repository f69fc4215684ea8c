"""The WHMCS lifecycle over HTTP, with the real worker and Docker engine."""
from __future__ import annotations

import urllib.request

import pytest

from app.models import Event, Operation, Order, WorkerHeartbeat, utcnow
from tests.api.conftest import client_payload

pytestmark = pytest.mark.usefixtures("docker_engine", "stack_cleanup")


def test_whole_lifecycle_through_http(api, background_worker, settings, deployed_objects):
    created = api.post("/whmcs/v1/services/501/create", client_payload(username="river maps", wait=60))
    assert created.status_code == 200, created.json
    body = created.json
    assert body["result"] == "succeeded" and body["operation"]["kind"] == "create"
    order = body["order"]
    assert order["status"] == "active" and order["instance"] == "river-maps"
    assert order["endpoints"][0]["url"] == "https://river-maps.test.local"
    assert "local_url" not in order["endpoints"][0], "WHMCS shows customers what it gets: never a local URL"
    local = api.get(f"/api/v1/orders/{order['id']}", scope="read").json["endpoints"][0]["local_url"]
    assert "river-maps.test.local" in urllib.request.urlopen(local, timeout=5).read().decode()
    assert created.headers["X-Request-ID"]

    info = api.get("/whmcs/v1/services/501").json
    assert info["status"] == "active" and info["operation"]["state"] == "succeeded"
    assert set(info["secrets"]) == {"DB_PASSWORD"}, "the whmcs key sees the generated passwords"

    suspended = api.post("/whmcs/v1/services/501/suspend", {"reason": "Overdue on payment", "wait": 60}).json
    assert suspended["result"] == "succeeded" and suspended["order"]["status"] == "suspended"
    again = api.post("/whmcs/v1/services/501/suspend", {"wait": 60}).json
    assert again["result"] == "unchanged" and again["message"] == "order already suspended"

    resumed = api.post("/whmcs/v1/services/501/unsuspend", {"wait": 60}).json
    assert resumed["result"] == "succeeded" and resumed["order"]["status"] == "active"

    changed = api.post("/whmcs/v1/services/501/change-package", {"plan": "large", "wait": 60}).json
    assert changed["result"] == "succeeded" and changed["order"]["plan"] == "large"
    same = api.post("/whmcs/v1/services/501/change-package", {"plan": "large"}).json
    assert same["result"] == "unchanged"

    restarted = api.post("/whmcs/v1/services/501/restart", {"wait": 60}).json
    assert restarted["result"] == "succeeded"

    background_worker.usage.sample()  # the worker's sampler writes what the usage answer reads
    background_worker.usage.sample_disk()
    usage = api.get("/whmcs/v1/usage").json["services"]
    assert len(usage) == 1
    row = usage[0]
    assert row["sampled_at"] and row["disk_sampled_at"]
    assert row["service_id"] == 501 and row["containers_running"] == 3 and row["containers_total"] == 3
    assert row["memory_mb"] > 0 and row["disk_mb"] >= 0
    assert row["memory_limit_mb"] is None, "web has no memory limit, so the order has none"

    terminated = api.post("/whmcs/v1/services/501/terminate", {"wait": 60}).json
    assert terminated["result"] == "succeeded" and terminated["order"]["status"] == "terminated"
    assert deployed_objects() == {"containers": [], "networks": [], "volumes": []}
    assert api.post("/whmcs/v1/services/501/terminate", {}).json["result"] == "unchanged"

    # Every state-changing call is in the event log with the key's name.
    actors = {e.actor for e in Event.select().where(Event.kind == "operation.requested")}
    assert actors == {"key:test-whmcs"}


def test_calls_answer_at_once_without_wait(api):
    created = api.post("/whmcs/v1/services/502/create", client_payload(username="quick"))
    assert created.status_code == 202
    assert created.json["result"] == "queued" and created.json["operation"]["state"] == "pending"
    assert created.json["order"]["status"] == "pending"
    # No worker has ever run here: the answer says so, and so does the message billing staff read.
    assert created.json["worker"] == {"alive": False, "heartbeat_age_seconds": None}
    assert created.json["message"] == ("order quick accepted; the bridge's worker is not running: it starts once the "
                                       "worker runs again (it is recorded)")


def test_a_wait_that_runs_out_before_the_operation_started_says_queued_not_running(api):
    """Issue 10: after a kill -9 of the worker, a create answered `running | create still running` while pending."""
    created = api.post("/whmcs/v1/services/503/create", client_payload(username="slow", wait=0.5))
    assert created.status_code == 202
    assert created.json["result"] == "queued" and created.json["operation"]["state"] == "pending"
    # No worker is alive, so the call did not wait (nothing could change): the use case's message, and why.
    assert created.json["message"] == ("order slow accepted; the bridge's worker is not running: it starts "
                                       "once the worker runs again (it is recorded)")
    assert created.json["worker"]["alive"] is False

    # A live worker that has not picked the operation up yet: the wait runs out, still queued.
    WorkerHeartbeat.create(worker="busy:1", started_at=utcnow(), beat_at=utcnow(), poll_seconds=1.0, concurrency=1)
    waited = api.post("/whmcs/v1/services/503/create", client_payload(username="slow", wait=0.5))
    assert waited.status_code == 202 and waited.json["result"] == "queued"
    assert waited.json["message"] == "create queued: not started yet"
    assert waited.json["worker"]["alive"] is True


def test_idempotent_repeats_make_one_order_and_one_operation(api):
    first = api.post("/whmcs/v1/services/510/create", client_payload(username="same")).json
    second = api.post("/whmcs/v1/services/510/create", client_payload(username="same")).json
    assert first["operation"]["id"] == second["operation"]["id"]
    assert api.post("/whmcs/v1/services/510/suspend", {}).json["operation"]["kind"] == "suspend"
    repeat = api.post("/whmcs/v1/services/510/suspend", {}).json
    assert repeat["result"] == "queued" and repeat["message"].startswith("suspend already under way; ")
    assert Order.select().count() == 1
    assert [op.kind for op in Operation.select().order_by(Operation.id)] == ["create", "suspend"]


def test_conflicts_and_unknown_services(api, config_repo):
    api.post("/whmcs/v1/services/520/create", client_payload(username="one"))
    conflict = api.post("/whmcs/v1/services/520/create", client_payload(product="geonetwork", plan="small"))
    assert conflict.status_code == 409
    assert conflict.json["error"]["message"] == "service 520 already has an order for product busybox-demo, not geonetwork"
    missing = api.post("/whmcs/v1/services/999/suspend", {})
    assert missing.status_code == 404 and missing.json["error"]["code"] == "order_not_found"
    unknown = api.post("/whmcs/v1/services/521/create", client_payload(product="nope"))
    assert unknown.status_code == 422 and "unknown product 'nope'" in unknown.json["error"]["message"]
    assert unknown.json["error"]["code"] == "validation_error", "only a missing order is order_not_found"
    bad_plan = api.post("/whmcs/v1/services/521/create", client_payload(plan="gold"))
    assert bad_plan.status_code == 422 and "has no plan 'gold'" in bad_plan.json["error"]["message"]
    bad_domain = api.post("/whmcs/v1/services/522/create", client_payload(domain="not a domain!"))
    assert bad_domain.status_code == 422 and "invalid domain" in bad_domain.json["error"]["message"]
    assert api.get("/whmcs/v1/services/999").status_code == 404


def test_failed_provisioning_reports_the_reason(api, background_worker, config_repo):
    from tests.conftest import write_product

    write_product(config_repo, "ghost", "name: Ghost\nplans: {basic: {}}\n",
                  "services:\n  app:\n    image: live-test/no-such-image:1\n")
    api.app.extensions["live"].catalog.sync()
    failed = api.post("/whmcs/v1/services/530/create", client_payload(product="ghost", plan="basic", wait=60)).json
    assert failed["result"] == "failed"
    # WHMCS gets the public reason (the client area shows it); the image reference is for operators.
    operation_id = failed["operation"]["id"]
    assert failed["message"] == f"a service image is not available (operation {operation_id})"
    assert "live-test/no-such-image" not in str(failed)
    assert failed["order"]["status"] == "failed" and failed["order"]["last_error"] == failed["message"]
    detail = api.get(f"/api/v1/operations/{operation_id}", scope="admin").json["error_detail"]
    assert "image live-test/no-such-image:1 is not available" in detail

    # The module's cron hook finds it later, and the admin tab lists the operation.
    reported = api.get("/whmcs/v1/failures").json["failures"]
    assert [(f["service_id"], f["kind"], f["error"]) for f in reported] == [(530, "create", failed["message"])]
    assert api.get("/whmcs/v1/failures?since=2999-01-01T00:00:00Z").json["failures"] == []
    info = api.get("/whmcs/v1/services/530").json
    assert [op["kind"] for op in info["recent_operations"]] == ["create"]


def test_customer_record_follows_the_client_details(api):
    api.post("/whmcs/v1/services/540/create", client_payload(client_id=7, username="c1"))
    payload = client_payload(client_id=7, username="c2")
    payload["client"]["email"] = "new-address@example.org"
    api.post("/whmcs/v1/services/541/create", payload)
    customers = api.get("/api/v1/customers", scope="read").json
    assert customers["total"] == 1
    assert customers["items"][0]["email"] == "new-address@example.org"
    assert customers["items"][0]["whmcs_client_id"] == 7


def test_products_and_test_connection(api):
    products = {p["slug"]: p for p in api.get("/whmcs/v1/products").json["products"]}
    assert products["busybox-demo"]["plans"] == ["large", "small"]
    assert products["sdi"]["valid"] is True
    connection = api.post("/whmcs/v1/test-connection").json
    assert connection["ok"] is True and connection["key"] == "test-whmcs" and connection["products"] >= 4
