"""`live backups list|create|restore|verify|prune` (app/cli.py) on the in-memory engine and a folder store.

Backups are written straight into the store as the worker would; create and restore are checked up to the
recorded operation (the worker running them is tested elsewhere).
"""
from __future__ import annotations

import datetime as dt
import io
import json

import peewee
import pytest

from app.backups.store import BackupHeader
from app.models import Backup, Operation, Order, utcnow
from tests.support.cli_runner import live_cli_runner
from tests.unit.test_operations_fake import create


@pytest.fixture
def cli(fake_live):
    runner = live_cli_runner(fake_live)

    def invoke(*args):
        return runner.invoke(args=["live", "backups", *args], catch_exceptions=False)

    return invoke


def backup(live, order_id: int, instance: str, begun: dt.datetime, kind: str = "scheduled", data: bytes = b"tar"):
    """A committed backup begun at ``begun`` (aware UTC) in the store; returns its manifest."""
    store = live.backups.store
    store.clock = lambda: begun
    writer = store.begin(BackupHeader(order_id=order_id, instance=instance, product="busybox-demo",
                                      revision="r1", plan="small", kind=kind, services=("web",)))
    writer.write_artefact("volume.web-data.tar", io.BytesIO(data))
    return writer.commit()


def hours_ago(hours: float) -> dt.datetime:
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=hours)).replace(microsecond=0)


def test_list_an_orders_backups_newest_first_with_the_last_failure_and_what_may_be_restored(cli, fake_live):
    order = create(fake_live)
    assert cli("list", "acme").output == "0 backup(s) of order 1 (acme); last success: never\n"
    first = backup(fake_live, order.id, order.instance, hours_ago(5))
    second = backup(fake_live, order.id, order.instance, hours_ago(2), "on_demand", b"x" * 2500)
    Backup.create(order=order, kind="scheduled", state="failed", started_at=utcnow(), finished_at=utcnow(),
                  error="the backup storage cannot be used right now", error_detail="ENOSPC in /srv/b")
    late = create(fake_live, "oldacme", service_id=2)
    Order.update(status="terminated", terminated_at=utcnow()).where(Order.id == late.id).execute()
    final = backup(fake_live, late.id, late.instance, hours_ago(30), "final")

    lines = cli("list", "service:1").output.splitlines()
    assert lines[0].startswith(f"{second.backup_id}  {second.created_at:%Y-%m-%dT%H:%M:%SZ}  on_demand     2.5 kB  "
                               "revision r1, plan small, 1 artefact(s): volume.web-data.tar")
    assert lines[1].startswith(f"{first.backup_id}  ")
    assert lines[2] == "2 backup(s) of order 1 (acme); last success: never"
    assert lines[3].startswith("last failure: ") and lines[3].endswith(
        "(scheduled): the backup storage cannot be used right now")
    assert lines[4] == "final backups of the customer's terminated orders that can be restored into it:"
    assert lines[5].startswith(f"{final.backup_id}  ") and f"order {late.id} (service 2), revision r1" in lines[5]

    as_json = json.loads(cli("list", "acme", "--json").output)
    assert as_json == json.loads(json.dumps(fake_live.queries.order_backups(order)))
    assert [row["backup_id"] for row in as_json["backups"]] == [second.backup_id, first.backup_id]


def test_list_without_an_order_reads_the_manifests_alone(cli, fake_live, monkeypatch):
    order = create(fake_live)
    mine = backup(fake_live, order.id, order.instance, hours_ago(3))
    foreign = backup(fake_live, 999, "elsewhere", hours_ago(1), "final")

    def no_database(*_args, **_kwargs):
        raise peewee.OperationalError("connection refused")

    monkeypatch.setattr(fake_live.db, "execute_sql", no_database)
    listed = cli("list")
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0].startswith(f"{foreign.backup_id}  ") and "elsewhere (order 999), " in lines[0]
    assert lines[1].startswith(f"{mine.backup_id}  ") and "acme (order 1), " in lines[1]
    assert lines[2] == "2 backup(s)"
    rows = json.loads(cli("list", "--json").output)
    assert [(row["instance"], row["order_id"], row["service_id"]) for row in rows] == [
        ("elsewhere", 999, None), ("acme", 1, None)]


def test_create_and_restore_record_their_operations(cli, fake_live):
    order = create(fake_live)
    created = cli("create", "acme")
    assert created.exit_code == 0
    assert created.output.splitlines() == ["order 1 (acme): backup accepted", "operation 2: backup pending"]
    waited = cli("create", "acme", "--wait", "5")
    assert waited.exit_code == 3 and "not waiting: no worker is running" in waited.output
    assert Operation.get_by_id(2).params == {"kind": "on_demand"} and Operation.get_by_id(2).requested_by == "cli"

    taken = backup(fake_live, order.id, order.instance, hours_ago(1))
    restored = cli("restore", "acme", taken.backup_id)
    assert restored.exit_code == 0
    assert restored.output.splitlines()[0] == "order 1 (acme): restore accepted"
    assert Operation.select().where(Operation.kind == "restore").get().params == {"backup_id": taken.backup_id}

    unknown = cli("restore", "acme", "20261201T030000Z-0123abcd")
    assert unknown.exit_code == 1 and "no backup 20261201T030000Z-0123abcd in file://" in unknown.output
    assert cli("create", "nobody").output == "Error: no order 'nobody'\n"


def test_verify_names_every_problem_and_exits_1(cli, fake_live):
    order = create(fake_live)
    whole = backup(fake_live, order.id, order.instance, hours_ago(1), data=b"good data")
    ok = cli("verify", whole.backup_id)
    assert ok.exit_code == 0
    assert ok.output == f"backup {whole.backup_id}: every artefact matches its manifest (size and sha256)\n"

    (fake_live.backups.store.root / "acme" / whole.backup_id / "volume.web-data.tar").write_bytes(b"bad data!")
    broken = cli("verify", whole.backup_id)
    assert broken.exit_code == 1
    lines = broken.output.splitlines()
    assert lines[0].startswith("PROBLEM: artefact volume.web-data.tar has sha256 ")
    assert lines[-1] == f"backup {whole.backup_id}: 1 problem(s): do not rely on it"
    assert cli("verify", "20261201T030000Z-0123abcd").exit_code == 1


def test_prune_applies_each_orders_keep_and_leaves_unknown_orders_alone(cli, fake_live):
    order = create(fake_live)
    yesterday = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)).replace(hour=1, minute=0, second=0,
                                                                                  microsecond=0)
    early, middle, last = (backup(fake_live, order.id, order.instance, yesterday + dt.timedelta(hours=h))
                           for h in (0, 1, 2))
    foreign = backup(fake_live, 999, "elsewhere", hours_ago(50))

    pruned = cli("prune", "acme")
    assert pruned.exit_code == 0, pruned.output
    assert pruned.output == (f"order 1 (acme): deleted 2: {early.backup_id}, {middle.backup_id} "
                             "(keep daily 7, weekly 4)\n"), "one backup a day is kept"
    assert [m.backup_id for m in fake_live.backups.store.list()] == [foreign.backup_id, last.backup_id]

    every = cli("prune")
    assert every.exit_code == 0
    assert every.output.splitlines() == [
        "order 1 (acme): nothing to delete (keep daily 7, weekly 4)",
        f"left alone: elsewhere/{foreign.backup_id}: its order is not in this database"]
