"""When backups are due, and the store's housekeeping: the worker runs :class:`BackupScheduler` every minute.

- :meth:`BackupScheduler.queue_due` queues a ``backup`` operation (kind ``scheduled``) for every active order
  whose schedule (the product's or plan's cron, else LIVE_BACKUP_SCHEDULE; UTC) has fired since its last
  scheduled backup attempt, or since it was created. A failed attempt counts as an attempt: the next one is at
  the next fire time (the operation itself retries transient failures). Suspended orders are not backed up on
  a schedule: their data does not change, and the backup taken before is kept.
- :meth:`BackupScheduler.housekeeping` (hourly) deletes the final backups of orders terminated more than
  LIVE_BACKUP_KEEP_TERMINATED_DAYS ago, and removes uploads abandoned by a killed worker.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Callable

import peewee

from app.backups.policy import ResolvedPolicy, next_due
from app.backups.service import BackupKind, BackupService, BackupState
from app.errors import LiveError
from app.models import Backup, Operation, Order, utcnow
from app.orders.lifecycle import UNFINISHED_STATES, OperationKind, OrderStatus

log = logging.getLogger(__name__)

#: Uploads without a manifest older than this are abandoned (no backup takes a day).
ABANDONED_AFTER_HOURS = 24.0


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


class BackupScheduler:
    """Queues due backups through ``queue(order)`` (``OrderService.back_up`` with kind ``scheduled``), reading each
    order's policy with ``policy(order)`` (``OperationRunner.policy``). ``clock`` returns naive UTC like the
    database."""

    def __init__(self, backups: BackupService, policy: Callable[[Order], ResolvedPolicy],
                 queue: Callable[[Order], object], clock: Callable[[], dt.datetime] = utcnow):
        self.backups = backups
        self.policy = policy
        self.queue = queue
        self.clock = clock

    def queue_due(self) -> list[int]:
        """Queue a scheduled backup for each active order that is due; returns their order ids.

        Three queries whatever the number of orders (last scheduled attempts, unfinished backups, active
        orders), then one cron computation per order. An order whose policy cannot be read is skipped with a
        warning (the others are still queued).
        """
        now = self.clock()
        last = dict(Backup.select(Backup.order, peewee.fn.MAX(Backup.started_at))
                    .where(Backup.kind == BackupKind.SCHEDULED).group_by(Backup.order).tuples())
        busy = {order_id for (order_id,) in Operation.select(Operation.order).where(
            (Operation.kind == OperationKind.BACKUP) & Operation.state.in_(UNFINISHED_STATES)).tuples()}
        queued = []
        for order in list(Order.with_relations().where(Order.status == OrderStatus.ACTIVE)):
            if order.id in busy:
                continue
            since = max(last.get(order.id) or order.created_at, order.created_at)
            try:
                due = next_due(self.policy(order).schedule, _aware(since), _aware(now))
            except (LiveError, ValueError) as exc:
                log.warning("order %s: its backup schedule cannot be read, skipped: %s", order.instance, exc)
                continue
            if due <= _aware(now):
                try:
                    self.queue(order)
                except LiveError as exc:  # the order changed meanwhile (terminated): nothing to back up
                    log.info("order %s: scheduled backup not queued: %s", order.instance, exc)
                    continue
                queued.append(order.id)
        if queued:
            log.info("scheduled backups queued for %d order(s)", len(queued))
        return queued

    def housekeeping(self) -> list[str]:
        """Delete the expired final backups of terminated orders and remove abandoned uploads; returns the
        backup ids deleted. Raises BackupStoreError when the store cannot be reached."""
        cutoff = self.clock() - dt.timedelta(days=self.backups.defaults.keep_terminated_days)
        expired = (Order.select().join(Backup, on=(Backup.order == Order.id))
                   .where(Order.terminated_at.is_null(False) & (Order.terminated_at < cutoff)
                          & (Backup.state == BackupState.SUCCEEDED)).distinct())
        deleted = []
        for order in list(expired):
            deleted += self.backups.prune(order, self.policy(order).keep)
        removed = self.backups.store.clean_up_abandoned(ABANDONED_AFTER_HOURS)
        if removed:
            log.info("removed %d abandoned upload(s): %s", len(removed), ", ".join(removed))
        return deleted
