"""Restore drills (app/backups/drill.py) on the in-memory engine: the latest backup restored into a temporary
order, checked, recorded and removed, without touching the real order."""
from __future__ import annotations

import datetime as dt

from app.backups.drill import RestoreDrills
from app.models import Backup, Event
from tests.unit.test_backup_operations import declare, volume_of
from tests.unit.test_backup_schedule import Clock
from tests.unit.test_operations_fake import again, containers, create, last_operation, run

WEEKLY = "\nbackup:\n  verify: weekly\n"


def drills(live, clock=None) -> RestoreDrills:
    return RestoreDrills(live.backups, live.runner.policy, live.runner.project, live.settings.deployment,
                         **({"clock": clock} if clock else {}))


def objects_of(engine, live, order_label: str) -> dict[str, list[str]]:
    selector = {"live.deployment": live.settings.deployment, "live.order": order_label}
    return {"containers": sorted(c.name for c in engine.list_containers(selector)),
            "networks": sorted(n.name for n in engine.list_networks(selector)),
            "volumes": sorted(v.name for v in engine.list_volumes(selector))}


def backed_up_order(live, engine):
    declare(live, WEEKLY)
    order = create(live)
    engine.write_file(volume_of(live, order, "db-data"), "records", b"rows")
    live.orders.back_up(order)
    run(live)
    assert last_operation(order).state == "succeeded"
    return again(order)


def test_a_drill_restores_the_latest_backup_into_a_temporary_order_and_removes_it(fake_live, fake_engine):
    order = backed_up_order(fake_live, fake_engine)
    before = objects_of(fake_engine, fake_live, str(order.id))
    drill = drills(fake_live)
    assert drill.due().id == order.id
    seen = {}
    original = fake_engine.import_volume

    def spy(volume, *args, **kwargs):
        seen[volume] = True
        return original(volume, *args, **kwargs)

    fake_engine.import_volume = spy
    assert drill.drill(order) is None
    assert f"{fake_live.settings.deployment}-acme--drill_db-data" in seen, seen
    assert objects_of(fake_engine, fake_live, f"-{order.id}") == {"containers": [], "networks": [], "volumes": []}
    assert objects_of(fake_engine, fake_live, str(order.id)) == before
    assert set(containers(fake_engine, fake_live, order).values()) == {"running"}
    row = Backup.get(Backup.state == "succeeded")
    assert row.verified_at is not None and row.verify_error is None
    event = Event.get(Event.kind == "order.restore_drill")
    assert event.data["passed"] is True
    assert drill.due() is None, "drilled this week"


def test_a_drill_of_a_damaged_backup_records_the_problem(fake_live, fake_engine):
    order = backed_up_order(fake_live, fake_engine)
    [manifest] = fake_live.backups.list(order)
    stored = fake_live.settings.backup_dir / order.instance / manifest.backup_id / "volume.db-data.tar"
    stored.write_bytes(stored.read_bytes()[:-1] + b"x")
    problem = drills(fake_live).drill(order)
    assert "does not match its manifest" in problem
    row = Backup.get(Backup.backup_id == manifest.backup_id)
    assert row.verified_at is not None and "does not match" in row.verify_error
    assert Event.get(Event.kind == "order.restore_drill").data["passed"] is False
    assert objects_of(fake_engine, fake_live, f"-{order.id}")["volumes"] == []


def test_drills_follow_the_products_period_and_skip_products_without_one(fake_live, fake_engine):
    order = backed_up_order(fake_live, fake_engine)
    clock = Clock(dt.datetime.utcnow())
    drill = drills(fake_live, clock)
    drill.drill(order)
    clock.now += dt.timedelta(days=6)
    assert drill.due() is None
    clock.now += dt.timedelta(days=1, minutes=1)
    assert drill.due().id == order.id


def test_orders_of_products_without_verify_are_never_drilled(fake_live, fake_engine):
    order = create(fake_live)
    fake_live.orders.back_up(order)
    run(fake_live)
    assert Backup.get().state == "succeeded"
    assert drills(fake_live, Clock(dt.datetime.utcnow() + dt.timedelta(days=400))).due() is None


def test_leftovers_of_a_killed_drill_are_removed_before_the_next(fake_live, fake_engine):
    order = backed_up_order(fake_live, fake_engine)
    drill = drills(fake_live)
    project = drill.drill_project(order)
    fake_live.deployer.deploy(project)
    assert objects_of(fake_engine, fake_live, f"-{order.id}")["containers"]
    assert drill.remove_leftovers() > 0
    assert objects_of(fake_engine, fake_live, f"-{order.id}") == {"containers": [], "networks": [], "volumes": []}
    assert set(containers(fake_engine, fake_live, order).values()) == {"running"}


def test_a_drill_instance_is_never_longer_than_an_instance():
    from app.backups.drill import drill_instance
    from app.naming import MAX_INSTANCE_LENGTH

    assert drill_instance("acme", 7) == "acme--drill"
    long = "a" * MAX_INSTANCE_LENGTH
    assert drill_instance(long, 1234) == "a" * (MAX_INSTANCE_LENGTH - 12) + "-1234--drill"
    assert len(drill_instance(long, 1234)) == MAX_INSTANCE_LENGTH
    assert drill_instance("abc-" + "d" * 25, 5).count("--") == 1  # a cut never ends in "-" before the id
