"""Restore drills: proof that backups restore, for products that opt in (``backup.verify``; docs/BACKUPS.md).

The worker's drill job (:meth:`RestoreDrills.run_due`, every few minutes, one drill at a time) picks the active
order whose drill is the most overdue (``daily``, ``weekly`` or ``monthly`` since its last drill), restores its
latest backup into a **temporary order**, waits for health, records the result on that backup's row
(``verified_at``, ``verify_error``) and as an ``order.restore_drill`` event, and removes the temporary order.

The temporary order is a project of its own on the engine: instance ``<instance>--drill`` (:func:`drill_instance`: cut
to the length of an instance, with the order's id, when it is long; ``--`` is never in
a real instance) and order label ``-<order id>`` (never a real order's), so nothing of the real order is
touched or listed with it. It publishes no port and has no route: the ingress reads orders from the database,
where the drill has no row. A worker killed during a drill leaves its objects; the next drill run removes
every leftover drill object of the installation first.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Callable

import peewee

from app.backups.service import BackupService, BackupState
from app.errors import LiveError
from app.models import Backup, Order, record_event, utcnow
from app.naming import MAX_INSTANCE_LENGTH
from app.orders.drift import mask_secrets
from app.orders.lifecycle import OrderStatus
from app.stacks.project import ORDER_LABEL, Project, deployment_selector

log = logging.getLogger(__name__)

#: How long after its last drill an order is due again, per ``backup.verify`` value.
DRILL_PERIODS = {"daily": dt.timedelta(days=1), "weekly": dt.timedelta(days=7), "monthly": dt.timedelta(days=30)}
DRILL_INSTANCE_SUFFIX = "--drill"


def drill_instance(instance: str, order_id: int) -> str:
    """The temporary order's instance: ``<instance>--drill``, no longer than any instance
    (:data:`~app.naming.MAX_INSTANCE_LENGTH`, so every name made from it stays within the engine's limits, a swarm
    service name's 63 characters included): a long instance is cut and the order's id added
    (``<start>-<id>--drill``), which keeps it unique."""
    name = instance + DRILL_INSTANCE_SUFFIX
    if len(name) <= MAX_INSTANCE_LENGTH:
        return name
    tail = f"-{order_id}{DRILL_INSTANCE_SUFFIX}"
    return instance[:MAX_INSTANCE_LENGTH - len(tail)].rstrip("-") + tail


class RestoreDrills:
    """Runs restore drills with ``backups`` (and its deployer). ``policy(order)`` gives the order's resolved
    policy, ``project(order)`` its project as the worker renders it (``OperationRunner.policy`` and
    ``OperationRunner.project``)."""

    def __init__(self, backups: BackupService, policy: Callable[[Order], object], project: Callable[[Order], Project],
                 deployment: str, clock: Callable[[], dt.datetime] = utcnow):
        self.backups = backups
        self.policy = policy
        self.project = project
        self.deployment = deployment
        self.clock = clock

    def due(self) -> Order | None:
        """The active order whose drill is the most overdue, or None. Orders with no succeeded backup are not due."""
        now = self.clock()
        last_drill = dict(Backup.select(Backup.order, peewee.fn.MAX(Backup.verified_at)).group_by(Backup.order).tuples())
        backed_up = {order_id for (order_id,) in Backup.select(Backup.order).where(
            Backup.state == BackupState.SUCCEEDED).distinct().tuples()}
        best, best_overdue = None, None
        for order in list(Order.with_relations().where(Order.status == OrderStatus.ACTIVE)):
            if order.id not in backed_up:
                continue
            try:
                period = DRILL_PERIODS.get(self.policy(order).verify)
            except LiveError:
                continue
            if period is None:
                continue
            overdue = now - ((last_drill.get(order.id) or dt.datetime.min) + period)
            if overdue >= dt.timedelta(0) and (best_overdue is None or overdue > best_overdue):
                best, best_overdue = order, overdue
        return best

    def run_due(self) -> bool:
        """Remove leftovers of interrupted drills, then drill the most overdue order; True when one was drilled."""
        self.remove_leftovers()
        order = self.due()
        if order is None:
            return False
        self.drill(order)
        return True

    def drill_project(self, order: Order) -> Project:
        """The temporary order's project: the order's stack under instance ``<instance>--drill`` and order label
        ``-<id>``, with no endpoint (no published port)."""
        twin = Order(**order.__data__)
        twin.id, twin.instance, twin.published_ports = -order.id, drill_instance(order.instance, order.id), {}
        return dataclasses.replace(self.project(twin), endpoints=[], pinned_ports={})

    def drill(self, order: Order) -> str | None:
        """Restore the order's latest backup into its temporary order and check it comes up healthy; returns the
        problem (None: the drill passed). Never raises for the drill's own failure (that is its result); raises
        BackupStoreError when the store cannot be listed, and the database's errors."""
        manifests = self.backups.list(order)
        if not manifests:
            return None
        manifest = manifests[-1]
        project = self.drill_project(order)
        steps: list[str] = []
        problem = None
        try:
            self.backups.check(manifest)
            self.backups.restore_data(project, manifest, steps.append)
            self.backups.deployer.deploy(project, steps.append)
            self.backups.after_restore(project, manifest, steps.append)
        except LiveError as exc:
            problem = mask_secrets(str(exc), order.secrets)  # a restore command's output
        except Exception as exc:  # noqa: BLE001 (a bug in a drill is a failed drill, reported; the worker lives on)
            log.exception("restore drill of %s crashed", order.instance)
            problem = mask_secrets(f"{type(exc).__name__}: {exc}", order.secrets)
        finally:
            try:
                self.backups.deployer.remove_resources(project, steps.append, volumes=True)
            except LiveError as exc:
                log.warning("restore drill of %s: the temporary order was not removed (next drill will): %s",
                            order.instance, exc)
        now = self.clock()
        Backup.update(verified_at=now, verify_error=problem).where(Backup.backup_id == manifest.backup_id).execute()
        if not Backup.select().where(Backup.backup_id == manifest.backup_id).exists():
            Backup.create(order=order, kind=manifest.kind, state=BackupState.SUCCEEDED, backup_id=manifest.backup_id,
                          started_at=manifest.created_at.replace(tzinfo=None), size=manifest.size,
                          artefacts=len(manifest.artefacts), verified_at=now, verify_error=problem)
        outcome = "passed" if problem is None else f"failed: {problem}"
        record_event("order.restore_drill", f"restore drill of backup {manifest.backup_id} {outcome}", order=order,
                     backup_id=manifest.backup_id, passed=problem is None, steps=steps[-20:])
        (log.info if problem is None else log.error)("restore drill of %s (backup %s) %s", order.instance,
                                                      manifest.backup_id, outcome)
        return problem

    def remove_leftovers(self) -> int:
        """Remove every object of a drill a killed worker left (order label starting with ``-``); returns how many."""
        engine = self.backups.engine
        selector = deployment_selector(self.deployment)
        removed = 0
        for container in engine.list_containers(selector):
            if container.labels.get(ORDER_LABEL, "").startswith("-"):
                engine.remove_container(container.id)
                removed += 1
        for network in engine.list_networks(selector):
            if network.labels.get(ORDER_LABEL, "").startswith("-"):
                engine.remove_network(network.name)
                removed += 1
        for volume in engine.list_volumes(selector):
            if volume.labels.get(ORDER_LABEL, "").startswith("-"):
                engine.remove_volume(volume.name)
                removed += 1
        return removed
