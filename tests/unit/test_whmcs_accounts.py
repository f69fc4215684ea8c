"""``GET /whmcs/v1/accounts`` (WHMCS Server Sync, keyset-paginated) and the ``backup_mb`` of ``GET /whmcs/v1/usage``,
on the in-memory engine: paging, ordering, the cursor's validation, the WHMCS status words, backup storage."""
from __future__ import annotations

import datetime as dt

import pytest

from app.models import Backup, Operation, Order, utcnow
from app.orders.usage import MB
from app.presenters import WHMCS_STATUS
from tests.unit.test_operations_fake import create, engine, live  # noqa: F401 (fixtures)
from tests.unit.test_order_logs import client as logs_client  # noqa: F401 (fixture)

STATUSES = ["active", "suspended", "pending", "failed", "terminated"]


@pytest.fixture
def client(logs_client):
    """The app on the in-memory engine (test_order_logs.py's client), with a whmcs key by default."""
    def get(path: str, scope: str = "whmcs", **query):
        return logs_client(path, scope=scope, **query)
    return get


@pytest.fixture
def orders(live):
    """Orders of service ids 5, 10, 15 ... 130 (26), written out of order, in every status."""
    template = create(live, service_id=70, run_it=False)
    ids = [n * 5 for n in range(1, 27) if n * 5 != 70]
    now = utcnow()
    Order.insert_many([{
        "whmcs_service_id": sid, "customer": template.customer_id, "product": template.product_id,
        "revision": template.revision_id, "plan": "small", "instance": f"inst{sid}", "hostname": f"inst{sid}.test.local",
        "status": STATUSES[sid // 5 % len(STATUSES)], "secrets": {}, "published_ports": {},
        "created_at": now - dt.timedelta(minutes=sid), "updated_at": now} for sid in reversed(ids)]).execute()
    return sorted(ids + [70])


def test_pages_walk_every_order_once_in_service_id_order(client, orders):
    seen, after, pages = [], 0, 0
    while after is not None:
        answer = client("/whmcs/v1/accounts", after=after, limit=10)
        assert answer.status_code == 200, answer.json
        page = answer.json
        assert len(page["items"]) <= 10
        seen += [item["service_id"] for item in page["items"]]
        after = page["next"]
        pages += 1
    assert seen == orders and pages == 3, "26 orders: 10 + 10 + 6, the last page says next null"


def test_an_account_has_the_fields_server_sync_compares_with_the_status_in_whmcs_words(client, orders):
    items = {item["service_id"]: item for item in client("/whmcs/v1/accounts").json["items"]}
    assert len(items) == 26 and client("/whmcs/v1/accounts").json["next"] is None, "default page: 500"
    first = items[5]
    assert first == {"service_id": 5, "instance": "inst5", "hostname": "inst5.test.local", "email": "ops@example.org",
                     "client_id": None, "product": "busybox-demo", "plan": "small", "order_status": "suspended",
                     "whmcs_status": "Suspended", "created_at": first["created_at"]}
    assert dt.datetime.fromisoformat(first["created_at"].rstrip("Z")) < utcnow()
    words = {item["order_status"]: item["whmcs_status"] for item in items.values()}
    assert words == {"active": "Active", "suspended": "Suspended", "pending": "Pending", "failed": "Pending",
                     "terminated": "Terminated"} == {str(k): v for k, v in WHMCS_STATUS.items()}


def test_a_failed_order_whose_create_once_succeeded_is_still_active_to_whmcs(live, client):
    """Server Sync sets a matched service's status to the account's: a restore (or move, or terminate) that failed
    after the order ran must not make the customer's service Pending again; a create that failed is Pending."""
    ran, never = create(live, "ran", 1), create(live, "never", 2, run_it=False)
    Operation.update(state="failed").where(Operation.order == never).execute()
    Order.update(status="failed").where(Order.id.in_([ran.id, never.id])).execute()
    items = {item["service_id"]: item for item in client("/whmcs/v1/accounts").json["items"]}
    assert [(items[n]["order_status"], items[n]["whmcs_status"]) for n in (1, 2)] == [("failed", "Active"),
                                                                                      ("failed", "Pending")]


def test_a_cursor_past_the_last_order_is_an_empty_last_page(client, orders):
    assert client("/whmcs/v1/accounts", after=130).json == {"items": [], "next": None}
    assert client("/whmcs/v1/accounts", after=125, limit=1).json["next"] is None, "exactly the last one"
    assert client("/whmcs/v1/accounts", after=120, limit=1).json["next"] == 125


@pytest.mark.parametrize("query, name", [
    ({"after": -1}, "after"), ({"after": "x"}, "after"), ({"after": 2**31}, "after"),
    ({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"limit": "ten"}, "limit"),
])
def test_a_bad_cursor_or_limit_is_a_422_naming_the_parameter(client, query, name):
    answer = client("/whmcs/v1/accounts", **query)
    assert answer.status_code == 422 and answer.json["error"]["code"] == "validation_error"
    assert name in answer.json["error"]["message"], answer.json


def test_accounts_need_the_whmcs_scope(client):
    assert client("/whmcs/v1/accounts", scope="read").status_code == 403


def backup(order: Order, state: str, size: int | None, backup_id: str | None) -> None:
    Backup.create(order=order, kind="scheduled", state=state, size=size, backup_id=backup_id, started_at=utcnow())


def test_usage_gives_the_backup_storage_of_the_stored_backups(live, client):
    first, second = create(live, "one", 1), create(live, "two", 2)
    backup(first, "succeeded", 3 * MB, "b1")
    backup(first, "succeeded", MB + MB // 2, "b2")
    backup(first, "deleted", 50 * MB, "b3")  # pruned: no longer stored
    backup(first, "failed", None, None)
    backup(first, "running", None, "b4")
    rows = {row["service_id"]: row for row in client("/whmcs/v1/usage").json["services"]}
    assert rows[1]["backup_mb"] == 4.5 and rows[2]["backup_mb"] == 0.0
    assert rows[1]["sampled_at"] is None and rows[1]["disk_mb"] is None, "backup storage is not sampled"
    only = client("/whmcs/v1/usage", service_id=1).json["services"]
    assert [(row["service_id"], row["backup_mb"]) for row in only] == [(1, 4.5)]
