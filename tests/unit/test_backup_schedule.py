"""Scheduled backups (app/backups/schedule.py): which orders are due, with a clock of the test's own.

busybox-demo declares no schedule, so LIVE_BACKUP_SCHEDULE's default applies: daily at 03:00 UTC.
"""
from __future__ import annotations

import datetime as dt

import pytest

from app.backups.schedule import BackupScheduler
from app.backups.service import BackupKind, BackupState
from app.models import Backup, Operation, Order
from tests.unit.test_operations_fake import create, run

CREATED = dt.datetime(2026, 11, 30, 12, 0)


class Clock:
    def __init__(self, now: dt.datetime):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def order(fake_live):
    order = create(fake_live)
    Order.update(created_at=CREATED).where(Order.id == order.id).execute()
    return Order.get_by_id(order.id)


def scheduler(live, clock) -> BackupScheduler:
    return BackupScheduler(live.backups, live.runner.policy,
                           lambda order: live.orders.back_up(order, "scheduled", requested_by="schedule"), clock=clock)


def backups_queued(order) -> list[Operation]:
    return list(Operation.select().where((Operation.order == order) & (Operation.kind == "backup")))


def test_an_order_is_due_at_the_first_fire_time_after_it_was_created(fake_live, order):
    clock = Clock(dt.datetime(2026, 12, 1, 2, 59))
    assert scheduler(fake_live, clock).queue_due() == []
    clock.now = dt.datetime(2026, 12, 1, 3, 0)
    assert scheduler(fake_live, clock).queue_due() == [order.id]
    [operation] = backups_queued(order)
    assert operation.params == {"kind": "scheduled"} and operation.requested_by == "schedule"


def test_a_queued_backup_is_not_queued_twice(fake_live, order):
    clock = Clock(dt.datetime(2026, 12, 1, 3, 30))
    assert scheduler(fake_live, clock).queue_due() == [order.id]
    assert scheduler(fake_live, clock).queue_due() == []
    assert len(backups_queued(order)) == 1


def test_the_next_backup_is_due_a_schedule_period_after_the_last_attempt(fake_live, order):
    # A failed attempt counts too: the schedule does not hammer a broken store every minute.
    Backup.create(order=order, kind=BackupKind.SCHEDULED, state=BackupState.FAILED,
                  started_at=dt.datetime(2026, 12, 1, 3, 0))
    clock = Clock(dt.datetime(2026, 12, 2, 2, 59))
    assert scheduler(fake_live, clock).queue_due() == []
    clock.now = dt.datetime(2026, 12, 2, 3, 0)
    assert scheduler(fake_live, clock).queue_due() == [order.id]


def test_on_demand_backups_do_not_move_the_schedule(fake_live, order):
    Backup.create(order=order, kind=BackupKind.ON_DEMAND, state=BackupState.SUCCEEDED,
                  started_at=dt.datetime(2026, 12, 1, 2, 0))
    assert scheduler(fake_live, Clock(dt.datetime(2026, 12, 1, 3, 0))).queue_due() == [order.id]


def test_suspended_and_terminated_orders_are_not_backed_up_on_a_schedule(fake_live, order):
    fake_live.orders.suspend(order)
    run(fake_live)
    other = create(fake_live, name="other", service_id=2)
    Order.update(created_at=CREATED).where(Order.id == other.id).execute()
    fake_live.orders.terminate(other)
    run(fake_live)
    assert scheduler(fake_live, Clock(dt.datetime(2026, 12, 5, 3, 0))).queue_due() == []


def test_the_settings_schedule_applies_to_products_that_declare_none(tmp_path):
    from app.config import load_settings

    settings = load_settings({"LIVE_BACKUP_SCHEDULE": "30 */6 * * *", "LIVE_BACKUP_DIR": str(tmp_path)})
    assert settings.backup_schedule == "30 */6 * * *"
