"""Backups over HTTP (issue 13): listing, "back up now" and restore on /whmcs/v1 and /api/v1, the order views'
summary, /whmcs/v1/failures, /readyz and /metrics.

Backups are written straight into the test's store (a folder, LIVE_BACKUP_STORE's default) and attempts recorded
as Backup rows, as the worker would; the POST calls are checked up to the recorded operation (the worker
running it end to end is tested with the engine elsewhere). No engine needed.
"""
from __future__ import annotations

import datetime as dt
import io
import itertools

import pytest

from app.backups.store import BackupHeader
from app.errors import BackupStoreError
from app.models import Backup, Operation, Order, utcnow
from tests.api.conftest import client_payload

SECRET_PATH = "/srv/secret-backups/acme"
MINUTES = itertools.count(1)


def order_of(api, service_id: int, *, client_id: int = 1, status: str = "active", product: str = "busybox-demo",
             plan: str = "small") -> Order:
    """An order of WHMCS service ``service_id`` in ``status`` (its create recorded, then marked done)."""
    answer = api.post(f"/whmcs/v1/services/{service_id}/create",
                      client_payload(product=product, plan=plan, client_id=client_id, username=f"bk{service_id}"))
    assert answer.status_code == 202, answer.json
    Operation.update(state="succeeded", finished_at=utcnow()).where(
        Operation.id == answer.json["operation"]["id"]).execute()
    terminated_at = utcnow() if status == "terminated" else None
    Order.update(status=status, terminated_at=terminated_at).where(Order.whmcs_service_id == service_id).execute()
    return Order.get(Order.whmcs_service_id == service_id)


def store_backup(api, order: Order, kind: str = "scheduled", artefacts=None, product: str | None = None):
    """A committed backup of ``order`` in the store, begun a minute after the previous one (ids sort by time, to
    the second); returns its manifest."""
    store = api.app.extensions["live"].backups.store
    begun = dt.datetime(2026, 11, 1, 3, 0, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=next(MINUTES))
    store.clock = lambda: begun
    writer = store.begin(BackupHeader(order_id=order.id, instance=order.instance,
                                      product=product or order.product.slug, revision=order.revision.label,
                                      plan=order.plan, kind=kind, services=("web",)))
    for name, data in (artefacts or {"volume.web-data.tar": b"files of " + order.instance.encode()}).items():
        writer.write_artefact(name, io.BytesIO(data))
    return writer.commit()


def attempt(order: Order, state: str, kind: str = "scheduled", minutes_ago: float = 0, **values) -> Backup:
    at = utcnow() - dt.timedelta(minutes=minutes_ago)
    return Backup.create(order=order, kind=kind, state=state, started_at=at - dt.timedelta(seconds=30),
                         finished_at=at, **values)


def iso(at: dt.datetime) -> str:
    return at.isoformat(timespec="seconds") + "Z"


# -- listing ---------------------------------------------------------------------------------------------------
def test_the_backups_of_a_service_newest_first_with_how_the_last_ones_went(api):
    order = order_of(api, 801)
    empty = api.get("/whmcs/v1/services/801/backups")
    assert empty.status_code == 200, empty.json
    assert empty.json == {"order_id": order.id, "instance": "bk801", "backups": [], "restorable": [],
                          "last_success_at": None, "last_failure": None}

    first = store_backup(api, order, "scheduled")
    second = store_backup(api, order, "on_demand", {"dump.db": b"-- dump", "volume.web-data.tar": b"tar" * 100})
    older = attempt(order, "succeeded", minutes_ago=60, size=5, backup_id=first.backup_id)
    newer = attempt(order, "deleted", minutes_ago=30, size=7)  # pruned since: it still was a success
    failed = attempt(order, "failed", "on_demand", minutes_ago=10, error="the backup storage cannot be used right now",
                     error_detail=f"backup store: cannot write {SECRET_PATH}: No space left on device (ENOSPC)")

    answer = api.get("/whmcs/v1/services/801/backups")
    assert answer.status_code == 200
    body = answer.json
    assert [b["backup_id"] for b in body["backups"]] == [second.backup_id, first.backup_id], "newest first"
    newest = body["backups"][0]
    assert newest == {
        "backup_id": second.backup_id, "created_at": second.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "kind": "on_demand", "size": len(b"-- dump") + 300, "revision": order.revision.label, "plan": "small",
        "services": ["web"], "order_id": order.id, "service_id": 801,
        "artefacts": [{"name": a.name, "size": a.size, "sha256": a.sha256} for a in second.artefacts]}
    assert body["last_success_at"] == iso(newer.finished_at) != iso(older.finished_at)
    assert body["last_failure"] == {"at": iso(failed.finished_at), "kind": "on_demand",
                                    "error": "the backup storage cannot be used right now"}
    assert SECRET_PATH not in answer.get_data(as_text=True), "customers see the public text only"

    developer = api.get(f"/api/v1/orders/{order.id}/backups", scope="read")
    assert developer.status_code == 200 and developer.json == body


def test_restorable_lists_the_final_backups_of_the_same_customers_terminated_orders_of_the_product(api):
    order = order_of(api, 811)
    late_payer = order_of(api, 812, status="terminated")
    final = store_backup(api, late_payer, "final")
    store_backup(api, late_payer, "scheduled")  # not a final backup: not offered
    other_customer = order_of(api, 813, client_id=2, status="terminated")
    store_backup(api, other_customer, "final")
    still_running = order_of(api, 814)
    store_backup(api, still_running, "final")  # not terminated: its backups are its own
    other_product = order_of(api, 815, status="terminated", product="geonetwork", plan="small")
    store_backup(api, other_product, "final")

    body = api.get("/whmcs/v1/services/811/backups").json
    assert body["backups"] == []
    assert [(b["backup_id"], b["order_id"], b["service_id"], b["kind"]) for b in body["restorable"]] == [
        (final.backup_id, late_payer.id, 812, "final")]


def test_unknown_services_and_orders_are_404(api):
    missing = api.get("/whmcs/v1/services/899/backups")
    assert missing.status_code == 404 and missing.json["error"]["code"] == "order_not_found"
    assert api.get("/api/v1/orders/899/backups", scope="read").json["error"]["code"] == "not_found"
    assert api.get("/api/v1/orders/1/backups", scope=None).status_code == 401


def broken_store(api, monkeypatch):
    """The store fails as an unreachable one does: a BackupStoreError whose private text names the store."""
    def unreachable(*_args, **_kwargs):
        raise BackupStoreError(f"backup store: cannot list {SECRET_PATH}: Connection refused", transient=True)

    store = api.app.extensions["live"].backups.store
    monkeypatch.setattr(store, "_backups", unreachable)
    monkeypatch.setattr(store, "_ping", unreachable)  # the readiness probe (check())


def test_an_unreachable_store_is_a_503_with_the_public_text_only(api, monkeypatch, caplog):
    order = order_of(api, 821)
    broken_store(api, monkeypatch)
    for answer in (api.get("/whmcs/v1/services/821/backups"), api.get(f"/api/v1/orders/{order.id}/backups", scope="read"),
                   api.post("/whmcs/v1/services/821/backups/20261201T030000Z-0123abcd/restore")):
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
        assert answer.json["error"] == {"code": "backup_store", "message": "the backup storage cannot be used right now",
                                        "details": {}}
        assert SECRET_PATH not in answer.get_data(as_text=True)
    assert f"cannot list {SECRET_PATH}" in caplog.text, "the operators' log has the reason"
    admin = api.get(f"/api/v1/orders/{order.id}/backups", scope="admin").json["error"]
    assert SECRET_PATH in admin["details"]["detail"], "admin keys see the private text"
    assert Operation.select().where(Operation.kind == "restore").count() == 0, "nothing was recorded"


# -- back up now -------------------------------------------------------------------------------------------------
def test_back_up_now_queues_one_on_demand_backup(api):
    order = order_of(api, 831)
    queued = api.post("/whmcs/v1/services/831/backups", {})
    assert queued.status_code == 202, queued.json
    body = queued.json
    assert (body["result"], body["message"]) == ("queued", "backup accepted; the bridge's worker is not running: it "
                                                           "starts once the worker runs again (it is recorded)")
    assert body["operation"]["kind"] == "backup" and body["operation"]["params"] == {"kind": "on_demand"}
    assert body["order"]["backups"] == {"last_success_at": None, "last_failure": None}
    assert "local_url" not in body["order"]["endpoints"][0]

    again = api.post(f"/api/v1/orders/{order.id}/backups", {}, scope="admin")
    assert again.status_code == 202 and again.json["operation"]["id"] == body["operation"]["id"], "not doubled"
    assert again.json["message"].startswith("backup already under way")
    assert "local_url" in again.json["order"]["endpoints"][0], "the developer API shows the order as staff see it"
    assert Operation.select().where(Operation.kind == "backup").count() == 1
    assert Operation.get_by_id(body["operation"]["id"]).requested_by == "key:test-whmcs"


def test_back_up_now_refusals(api):
    order_of(api, 841, status="pending")
    pending = api.post("/whmcs/v1/services/841/backups", {})
    assert pending.status_code == 409 and pending.json["error"]["code"] == "conflict"
    assert pending.json["error"]["message"] == ("order bk841 is pending; its create has not finished: nothing to back "
                                                "up yet")
    assert api.post("/whmcs/v1/services/849/backups", {}).json["error"]["code"] == "order_not_found"
    order = order_of(api, 842)
    read = api.post(f"/api/v1/orders/{order.id}/backups", {}, scope="read")
    assert read.status_code == 403, "changes need an admin key"
    assert api.post("/whmcs/v1/services/842/backups", {"wait": 500}).status_code == 422


# -- restore ---------------------------------------------------------------------------------------------------------
def test_restore_of_an_own_backup_is_queued(api):
    order = order_of(api, 851)
    backup = store_backup(api, order)
    answer = api.post(f"/whmcs/v1/services/851/backups/{backup.backup_id}/restore", {})
    assert answer.status_code == 202, answer.json
    assert answer.json["result"] == "queued"
    assert answer.json["operation"]["kind"] == "restore"
    assert answer.json["operation"]["params"] == {"backup_id": backup.backup_id}
    again = api.post(f"/api/v1/orders/{order.id}/backups/{backup.backup_id}/restore", {}, scope="admin")
    assert again.status_code == 202 and again.json["operation"]["id"] == answer.json["operation"]["id"]


def test_a_late_payers_final_backup_restores_into_a_new_service_of_the_same_customer(api):
    order_of(api, 861)
    late_payer = order_of(api, 862, status="terminated")
    final = store_backup(api, late_payer, "final")
    answer = api.post(f"/whmcs/v1/services/861/backups/{final.backup_id}/restore", {})
    assert answer.status_code == 202 and answer.json["operation"]["params"] == {"backup_id": final.backup_id}


def test_restore_refusals(api):
    order = order_of(api, 871)
    unknown = api.post("/whmcs/v1/services/871/backups/20261201T030000Z-0123abcd/restore", {})
    assert unknown.status_code == 404 and unknown.json["error"]["code"] == "not_found"
    assert unknown.json["error"]["message"] == "no backup '20261201T030000Z-0123abcd'", "never the store's location"
    admin = api.post(f"/api/v1/orders/{order.id}/backups/20261201T030000Z-0123abcd/restore", {}, scope="admin")
    assert "file://" in admin.json["error"]["details"]["detail"], "admin keys see where it was looked for"
    not_an_id = api.post(f"/api/v1/orders/{order.id}/backups/..%2Fetc/restore", {}, scope="admin")
    assert not_an_id.status_code == 404
    assert api.post("/whmcs/v1/services/879/backups/20261201T030000Z-0123abcd/restore", {}).json["error"]["code"] == \
        "order_not_found"

    stranger = order_of(api, 872, client_id=2, status="terminated")
    theirs = store_backup(api, stranger, "final")
    refused = api.post(f"/whmcs/v1/services/871/backups/{theirs.backup_id}/restore", {})
    # Answered like an unknown id: a customer cannot tell another customer's backup ids from made-up ones.
    assert refused.status_code == 404 and refused.json["error"]["code"] == "not_found"
    assert refused.json["error"]["message"] == f"no backup '{theirs.backup_id}'"

    sibling = order_of(api, 874)  # the same customer's, still active: its data and secrets are its own
    live_sibling = store_backup(api, sibling, "on_demand")
    not_terminated = api.post(f"/whmcs/v1/services/871/backups/{live_sibling.backup_id}/restore", {})
    assert not_terminated.status_code == 422 and "not terminated" in not_terminated.json["error"]["message"]

    foreign = store_backup(api, order, product="geonetwork")
    other_product = api.post(f"/whmcs/v1/services/871/backups/{foreign.backup_id}/restore", {})
    assert other_product.status_code == 422 and "of product geonetwork" in other_product.json["error"]["message"]

    suspended = order_of(api, 873, status="suspended")
    own = store_backup(api, suspended)
    conflict = api.post(f"/whmcs/v1/services/873/backups/{own.backup_id}/restore", {})
    assert conflict.status_code == 409 and conflict.json["error"]["message"].endswith("unsuspend it first")
    read = api.post(f"/api/v1/orders/{order.id}/backups/{own.backup_id}/restore", {}, scope="read")
    assert read.status_code == 403
    assert Operation.select().where(Operation.kind == "restore").count() == 0


# -- order views, failures ---------------------------------------------------------------------------------------------
def test_order_views_carry_the_backup_summary_with_public_errors_only(api):
    order = order_of(api, 881)
    success = attempt(order, "succeeded", minutes_ago=5, size=10)
    failed = attempt(order, "failed", "pre_change", minutes_ago=1, error="a data volume could not be archived; it was kept",
                     error_detail=f"tar of {SECRET_PATH} failed")
    summary = {"last_success_at": iso(success.finished_at),
               "last_failure": {"at": iso(failed.finished_at), "kind": "pre_change",
                                "error": "a data volume could not be archived; it was kept"}}
    info = api.get("/whmcs/v1/services/881")
    assert info.json["backups"] == summary
    assert SECRET_PATH not in info.get_data(as_text=True)
    assert api.get(f"/api/v1/orders/{order.id}", scope="admin").json["backups"] == summary
    listed = api.get("/api/v1/orders?service_id=881", scope="read").json["items"][0]
    assert listed["backups"] == summary


def test_a_failed_backup_operation_is_in_the_failures_with_its_kind_and_public_error(api):
    order_of(api, 891)
    operation_id = api.post("/whmcs/v1/services/891/backups", {}).json["operation"]["id"]
    Operation.update(state="failed", finished_at=utcnow(), error="the backup storage cannot be used right now",
                     error_detail=f"backup store: cannot write {SECRET_PATH}: ENOSPC").where(
        Operation.id == operation_id).execute()
    answer = api.get("/whmcs/v1/failures")
    failures = answer.json["failures"]
    assert [(f["service_id"], f["operation_id"], f["kind"], f["error"]) for f in failures] == [
        (891, operation_id, "backup", "the backup storage cannot be used right now")]
    assert failures[0]["backup_kind"] is None, "no backup attempt of it failed (the operation was failed by hand)"
    assert SECRET_PATH not in answer.get_data(as_text=True)


# -- readyz and metrics -------------------------------------------------------------------------------------------------
def test_readyz_is_degraded_while_the_backup_store_cannot_be_reached(api, monkeypatch, caplog):
    ok = api.get("/readyz", scope=None).json["checks"]["backup_store"]
    assert ok == {"ok": True, "detail": "ok"}
    broken_store(api, monkeypatch)
    answer = api.get("/readyz", scope=None)
    assert answer.json["checks"]["backup_store"] == {"ok": False, "detail": "unreachable: backups fail until it answers"}
    assert answer.json["status"] in ("degraded", "unavailable")  # unavailable only when no engine is reachable here
    if answer.json["checks"]["docker"]["ok"]:
        assert (answer.status_code, answer.json["status"]) == (200, "degraded"), "orders keep running: not a 503"
    assert SECRET_PATH not in answer.get_data(as_text=True), "no credentials: never the store's location"
    assert SECRET_PATH in caplog.text


def metric_lines(api, prefix: str) -> dict[str, float]:
    text = api.client.get("/metrics").get_data(as_text=True)
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith(prefix)}


def test_metrics_show_the_last_success_its_size_and_failures_by_kind(api):
    assert metric_lines(api, "live_backup_failures_total") == {
        f'live_backup_failures_total{{kind="{kind}"}}': 0.0
        for kind in ("scheduled", "on_demand", "pre_change", "pre_restore", "final")}
    assert metric_lines(api, "live_backup_last_success") == {} and metric_lines(api, "live_backup_bytes") == {}

    order = order_of(api, 901)
    attempt(order, "succeeded", minutes_ago=120, size=100)
    newest = attempt(order, "succeeded", minutes_ago=60, size=250)
    attempt(order, "failed", minutes_ago=1, error="x")
    attempt(order, "failed", "pre_change", minutes_ago=2, error="x")
    attempt(order, "failed", "pre_change", minutes_ago=3, error="x")
    attempt(order, "running")
    gone = order_of(api, 902, status="terminated")
    attempt(gone, "succeeded", minutes_ago=5, size=1)  # a terminated order's schedule stopped: no series to alert on

    at = newest.finished_at.replace(tzinfo=dt.timezone.utc).timestamp()
    assert metric_lines(api, "live_backup_last_success") == {
        'live_backup_last_success_timestamp_seconds{instance="bk901"}': pytest.approx(at, abs=1)}
    assert metric_lines(api, "live_backup_bytes") == {'live_backup_bytes{instance="bk901"}': 250.0}
    failures = metric_lines(api, "live_backup_failures_total")
    assert failures['live_backup_failures_total{kind="scheduled"}'] == 1.0
    assert failures['live_backup_failures_total{kind="pre_change"}'] == 2.0
    assert failures['live_backup_failures_total{kind="final"}'] == 0.0


def test_the_metrics_read_the_same_number_of_queries_whatever_the_number_of_orders(api, monkeypatch):
    db = api.app.extensions["live"].db
    executed = []
    original = db.execute_sql

    def counting(sql, *args, **kwargs):
        executed.append(sql)
        return original(sql, *args, **kwargs)

    def queries_of_a_scrape() -> int:
        executed.clear()
        monkeypatch.setattr(db, "execute_sql", counting)
        try:
            assert api.client.get("/metrics").status_code == 200
        finally:
            monkeypatch.setattr(db, "execute_sql", original)
        return len(executed)

    attempt(order_of(api, 911), "succeeded", size=1)
    one = queries_of_a_scrape()
    for service_id in range(912, 917):
        order = order_of(api, service_id)
        attempt(order, "succeeded", size=2)
        attempt(order, "failed", error="x")
    assert queries_of_a_scrape() == one
    assert len(metric_lines(api, "live_backup_bytes")) == 6
