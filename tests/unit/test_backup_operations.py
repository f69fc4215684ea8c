"""Backup and restore as operations (app/orders/operations.py, app/backups/service.py) on the in-memory engine.

busybox-demo's services are db (volume db-data), app (volume app-state) and web. Without a declaration every
volume is archived as files; tests that need a dump declare one for db in their private copy of the product.
The same paths on the real engine are in tests/integration/test_backups_engine.py.
"""
from __future__ import annotations

import io
import tarfile

import pytest

from app.presenters import operation_view
from app.backups.service import BackupKind, BackupState, dump_artefact, volume_artefact
from app.errors import BackupStoreError
from app.models import Backup, Event, Operation, Order
from app.orders.service import CustomerInfo
from tests.fakes import Killed
from tests.unit.test_operations_fake import InlineExecutor, again, containers, create, last_operation, run

DUMP_DECLARATION = """
backup:
  services:
    db:
      dump: ["dump-db"]
      restore: ["restore-db"]
      after_restore: ["reindex"]
    app:
      after_restore: ["reindex-app"]
"""


def volume_of(live, order, volume: str) -> str:
    return f"{live.settings.deployment}-{order.instance}_{volume}"


def files(engine, live, order, volume: str) -> dict[str, bytes]:
    return dict(engine.volumes[volume_of(live, order, volume)].files)


def declare(live, text: str) -> None:
    """Add ``text`` to the test's copy of busybox-demo's product.yml and sync the catalog."""
    manifest = live.settings.config_repo / "products" / "busybox-demo" / "product.yml"
    manifest.write_text(manifest.read_text() + text)
    live.catalog.sync()


class Database:
    """The db service's data as its dump and restore commands see it (FakeEngine exec handlers)."""

    def __init__(self, engine, data: bytes = b"rows v1"):
        self.data = data
        self.restored: list[bytes] = []
        self.after: list[tuple[str, ...]] = []
        self.fail_restore = 0  # how many restore calls fail before one succeeds
        engine.exec_handlers["db"] = self.db
        engine.exec_handlers["app"] = self.app

    def db(self, command, stdin, container):
        if command == ("dump-db",):
            return 0, self.data, b""
        if command == ("restore-db",):
            if self.fail_restore:
                self.fail_restore -= 1
                return 1, b"", b"pg_restore: error: could not execute query"
            self.data = stdin
            self.restored.append(stdin)
            return 0, b"restored", b""
        if command == ("reindex",):
            self.after.append(command)
            return 0, b"", b""
        return 127, b"", b"command not found"

    def app(self, command, stdin, container):
        self.after.append(command)
        return 0, b"", b""


def back_up(live, order) -> Operation:
    live.orders.back_up(order, requested_by="test")
    run(live)
    return last_operation(order)


def test_an_on_demand_backup_archives_every_volume_and_changes_nothing(fake_live, fake_engine):
    order = create(fake_live)
    fake_engine.write_file(volume_of(fake_live, order, "db-data"), "records", b"customer data")
    operation = back_up(fake_live, order)
    assert (operation.kind, operation.state) == ("backup", "succeeded")
    [manifest] = fake_live.backups.list(order)
    assert [a.name for a in manifest.artefacts] == [volume_artefact("app-state"), volume_artefact("db-data")]
    assert manifest.kind == "on_demand" and manifest.order_id == order.id and manifest.plan == "small"
    with fake_live.backups.store.open_artefact(manifest.backup_id, volume_artefact("db-data")) as stream:
        archive = tarfile.open(fileobj=io.BytesIO(stream.read()))
    assert archive.extractfile("./records").read() == b"customer data"
    row = Backup.get(Backup.backup_id == manifest.backup_id)
    assert (row.state, row.kind, row.size, row.operation_id) == ("succeeded", "on_demand", manifest.size, operation.id)
    assert again(order).status == "active"
    assert set(containers(fake_engine, fake_live, order).values()) == {"running"}
    assert operation.params == {"kind": "on_demand", "_backup": manifest.backup_id}


def deploys(live, monkeypatch) -> list[bool]:
    """``rerun_jobs`` of every deploy the worker's deployer makes from now on."""
    made: list[bool] = []
    deployer = live.runner.deployer
    original = deployer.deploy

    def deploy(project, progress=lambda _: None, *, rerun_jobs=False):
        made.append(rerun_jobs)
        return original(project, progress, rerun_jobs=rerun_jobs)

    monkeypatch.setattr(deployer, "deploy", deploy)
    return made


def test_a_backup_restores_over_changed_data_after_a_safety_backup(fake_live, fake_engine, monkeypatch):
    order = create(fake_live)
    volume = volume_of(fake_live, order, "db-data")
    fake_engine.write_file(volume, "records", b"version 1")
    back_up(fake_live, order)
    [manifest] = fake_live.backups.list(order)
    fake_engine.volumes[volume].files = {"records": b"version 2 (a mistake)", "junk": b"x"}
    made = deploys(fake_live, monkeypatch)
    fake_live.orders.restore(order, manifest.backup_id, product=manifest.product, source_order_id=order.id)
    run(fake_live)
    operation = last_operation(order)
    assert (operation.kind, operation.state) == ("restore", "succeeded"), operation.error_detail
    assert made == [True]  # the data changed under the product's one-shot jobs (migrations): they run again
    assert fake_engine.volumes[volume].files == {"records": b"version 1"}
    safety = Backup.get(Backup.kind == BackupKind.PRE_RESTORE)
    assert safety.state == "succeeded" and operation.params["_safety_backup"] == safety.backup_id
    with fake_live.backups.store.open_artefact(safety.backup_id, volume_artefact("db-data")) as stream:
        kept = tarfile.open(fileobj=io.BytesIO(stream.read()))
    assert kept.extractfile("./records").read() == b"version 2 (a mistake)"
    assert again(order).status == "active"
    assert set(containers(fake_engine, fake_live, order).values()) == {"running"}
    steps = [step["message"] for step in operation.steps]
    assert steps.index("restore volume db-data") > steps.index(f"backup {safety.backup_id}: 2 artefact(s), "
                                                               f"{safety.size} bytes")
    assert operation_view(operation)["params"] == {"backup_id": manifest.backup_id}  # bookkeeping never shown


def test_a_dump_is_taken_from_the_running_service_and_fed_to_its_restore_command(fake_live, fake_engine):
    declare(fake_live, DUMP_DECLARATION)
    database = Database(fake_engine, b"rows v1")
    order = create(fake_live)
    back_up(fake_live, order)
    [manifest] = fake_live.backups.list(order)
    assert sorted(a.name for a in manifest.artefacts) == [dump_artefact("db"), volume_artefact("app-state")]
    database.data = b"rows v2"
    fake_live.orders.restore(order, manifest.backup_id, product=manifest.product, source_order_id=order.id)
    run(fake_live)
    assert last_operation(order).state == "succeeded", last_operation(order).error_detail
    assert database.restored == [b"rows v1"] and database.data == b"rows v1"
    assert ("reindex",) in database.after and ("reindex-app",) in database.after


def test_a_failing_restore_command_brings_the_order_back_from_the_safety_backup(fake_live, fake_engine, monkeypatch):
    declare(fake_live, DUMP_DECLARATION)
    database = Database(fake_engine, b"rows v1")
    order = create(fake_live)
    state = volume_of(fake_live, order, "app-state")
    fake_engine.write_file(state, "settings", b"old settings")
    back_up(fake_live, order)
    [manifest] = fake_live.backups.list(order)
    database.data = b"rows v2"
    fake_engine.volumes[state].files = {"settings": b"new settings"}
    database.fail_restore = 1
    made = deploys(fake_live, monkeypatch)
    fake_live.orders.restore(order, manifest.backup_id, product=manifest.product, source_order_id=order.id)
    run(fake_live)
    operation = last_operation(order)
    assert operation.state == "failed" and "restore-db" in operation.error_detail
    assert made and all(made)  # the rollback's deploy runs the jobs on the safety backup's data too
    # The safety backup's data is back: the settings and the rows of just before the restore.
    assert fake_engine.volumes[state].files == {"settings": b"new settings"}
    assert database.data == b"rows v2" and database.restored == [b"rows v2"]
    assert again(order).status == "active"
    assert Event.select().where(Event.kind == "order.restore_rolled_back").exists()


def test_a_corrupted_backup_is_refused_before_anything_is_touched(fake_live, fake_engine):
    order = create(fake_live)
    volume = volume_of(fake_live, order, "db-data")
    fake_engine.write_file(volume, "records", b"version 1")
    back_up(fake_live, order)
    [manifest] = fake_live.backups.list(order)
    stored = fake_live.settings.backup_dir / order.instance / manifest.backup_id / volume_artefact("db-data")
    data = bytearray(stored.read_bytes())
    data[600] ^= 0xFF
    stored.write_bytes(bytes(data))
    fake_engine.volumes[volume].files = {"records": b"version 2"}
    fake_live.orders.restore(order, manifest.backup_id, product=manifest.product, source_order_id=order.id)
    run(fake_live)
    operation = last_operation(order)
    assert operation.state == "failed" and "does not match its manifest" in operation.error_detail
    assert operation.error.startswith("the backup is damaged and was not restored; nothing was changed")
    assert fake_engine.volumes[volume].files == {"records": b"version 2"}
    assert not Backup.select().where(Backup.kind == BackupKind.PRE_RESTORE).exists()
    assert set(containers(fake_engine, fake_live, order).values()) == {"running"}


def test_an_unreachable_store_fails_the_backup_visibly_and_the_order_keeps_running(fake_live, fake_engine, monkeypatch):
    order = create(fake_live)

    def unreachable(header):
        raise BackupStoreError("cannot reach s3://backups at http://127.0.0.1:1: connection refused", transient=True)

    monkeypatch.setattr(fake_live.backups.store, "begin", unreachable)
    operation = back_up(fake_live, order)
    assert operation.state == "failed" and operation.error.startswith("the backup storage cannot be used right now")
    assert [row.state for row in Backup.select()] == ["failed"] * operation.attempts
    assert again(order).status == "active"
    assert set(containers(fake_engine, fake_live, order).values()) == {"running"}
    assert fake_live.backups.list(order) == []


def test_a_worker_killed_during_a_backup_leaves_nothing_listed_and_the_retry_converges(fake_live, fake_engine):
    order = create(fake_live)
    fake_engine.failures[("export_volume", volume_of(fake_live, order, "db-data"))] = Killed()
    fake_live.orders.back_up(order)
    worker = fake_live.worker()
    worker._pool = InlineExecutor()
    with pytest.raises(Killed):
        worker.dispatch()
    assert fake_live.backups.list(order) == []
    assert [row.state for row in Backup.select()] == ["running"]
    worker = fake_live.worker()
    worker.recover()
    run(fake_live)
    assert last_operation(order).state == "succeeded"
    assert len(fake_live.backups.list(order)) == 1
    rows = sorted(row.state for row in Backup.select())
    assert rows == ["failed", "succeeded"]
    # The interrupted upload was removed from the store: one backup folder only.
    assert len(list((fake_live.settings.backup_dir / order.instance).iterdir())) == 1


def test_a_change_of_plan_leaves_a_pre_change_backup(fake_live, fake_engine):
    order = create(fake_live)
    fake_live.orders.change_plan(order, "large")
    run(fake_live)
    assert last_operation(order).state == "succeeded"
    [manifest] = fake_live.backups.list(order)
    assert manifest.kind == "pre_change" and manifest.plan == "small"
    assert again(order).plan == "large"


def test_a_failed_pre_change_backup_changes_nothing(fake_live, fake_engine, monkeypatch):
    order = create(fake_live)
    monkeypatch.setattr(fake_live.backups.store, "begin", lambda header: (_ for _ in ()).throw(
        BackupStoreError("the bucket is gone")))
    fake_live.orders.change_plan(order, "large")
    run(fake_live)
    operation = last_operation(order)
    assert operation.state == "failed" and again(order).plan == "small"
    assert operation.error.startswith("the backup before the change failed: the backup storage cannot be used")
    assert set(containers(fake_engine, fake_live, order).values()) == {"running"}
    # The billing side's failure report says a backup failed, and which one.
    [failure] = fake_live.queries.failures(None)["failures"]
    assert (failure["kind"], failure["backup_kind"]) == ("change_plan", "pre_change")


def test_a_terminated_orders_final_backup_restores_into_a_new_order_of_the_same_customer(fake_live, fake_engine):
    old = create(fake_live)
    fake_engine.write_file(volume_of(fake_live, old, "db-data"), "records", b"late payer's data")
    fake_live.orders.terminate(old)
    run(fake_live)
    assert again(old).status == "terminated"
    assert not any(name.startswith(volume_of(fake_live, old, "")) for name in fake_engine.volumes)
    [final] = fake_live.backups.list(old)
    assert final.kind == "final"
    new = create(fake_live, name="acme-again", service_id=2)
    assert again(new).secrets != again(old).secrets
    fake_live.orders.restore(new, final.backup_id, product=final.product, source_order_id=final.order_id)
    run(fake_live)
    assert last_operation(new).state == "succeeded", last_operation(new).error_detail
    assert files(fake_engine, fake_live, new, "db-data")["records"] == b"late payer's data"
    assert again(new).secrets == again(old).secrets  # the data was made with these passwords


def test_another_customers_backup_is_refused(fake_live, fake_engine):
    from app.errors import NotFound

    old = create(fake_live)
    fake_live.orders.terminate(old)
    run(fake_live)
    [final] = fake_live.backups.list(old)
    outcome = fake_live.orders.create(service_id=3, customer=CustomerInfo(email="someone@else.org"),
                                      product="busybox-demo", plan="small", username="other")
    run(fake_live)
    with pytest.raises(NotFound, match="no backup"):
        fake_live.orders.restore(Order.get_by_id(outcome.order.id), final.backup_id, product=final.product,
                                 source_order_id=final.order_id)


def test_a_backup_prunes_scheduled_backups_by_the_retention_and_keeps_the_others_two_weeks(fake_live, fake_engine):
    order = create(fake_live)
    for _ in range(3):
        fake_live.orders.back_up(order, "scheduled")
        run(fake_live)
    # Default retention (daily 7, weekly 4) keeps one scheduled backup per day: the newest of today.
    assert [m.kind for m in fake_live.backups.list(order)] == ["scheduled"]
    assert Backup.select().where(Backup.state == BackupState.DELETED).count() == 2
    # "Back up now" twice, then a restore (its safety backup), then the night's backup: nothing of them is pruned.
    back_up(fake_live, order)
    back_up(fake_live, order)
    first = fake_live.backups.list(order)[0]
    fake_live.orders.restore(order, first.backup_id, product=first.product, source_order_id=order.id)
    run(fake_live)
    fake_live.orders.back_up(order, "scheduled")
    run(fake_live)
    kinds = [m.kind for m in fake_live.backups.list(order)]
    assert kinds == ["on_demand", "on_demand", "pre_restore", "scheduled"], kinds


def test_unscheduled_backups_older_than_the_setting_are_pruned(fake_live, fake_engine):
    import dataclasses
    import datetime as dt

    order = create(fake_live)
    back_up(fake_live, order)
    back_up(fake_live, order)
    service = fake_live.backups
    service.clock = lambda: dt.datetime.utcnow() + dt.timedelta(days=15)
    deleted = service.prune(order, fake_live.runner.policy(order).keep)
    assert len(deleted) == 1, "the older one; the newest backup is always kept"
    service.defaults = dataclasses.replace(service.defaults, keep_unscheduled_days=30)
    assert service.prune(order, fake_live.runner.policy(order).keep) == []
