"""Taking, checking, restoring and pruning an order's backups (issue 13; docs/BACKUPS.md).

:class:`BackupService` is the one owner of what goes into a backup and how it comes back:

- **take**: each service's ``dump`` runs in its running container and its stdout becomes the artefact
  ``dump.<service>``; each volume to archive as files becomes ``volume.<volume>.tar``, read through the
  archive helper (``LIVE_HELPER_IMAGE``). What is dumped and what is archived is the product's declaration
  (:func:`app.backups.policy.backup_contents`); a dumped service that is not running has its volumes archived
  instead. Every artefact streams into the store (:mod:`app.backups.store`), which lists the backup only once
  every artefact was read back and matched.
- **restore_data**: stop the order's services, replace each volume's content, start the dumped services
  (and what they depend on) and feed each dump to its restore command. The caller then deploys the stack and
  runs :meth:`after_restore`. The manifest says what each artefact is, so a backup restores from the store
  alone.
- **prune**: retention (:func:`app.backups.policy.kept_backups`) after each backup; a terminated order keeps
  its final backup ``LIVE_BACKUP_KEEP_TERMINATED_DAYS`` days.

Each attempt is a :class:`~app.models.Backup` row: schedules, failures and metrics read them. The operation
semantics (when to take a safety backup, rollback, idempotency across retries) are the operation runner's
(:mod:`app.orders.operations`).
"""
from __future__ import annotations

import datetime as dt
import enum
import logging
from dataclasses import dataclass, field
from typing import Callable, Mapping

from app.backups.policy import Retention, ServiceBackup, backup_contents, kept_backups
from app.backups.store import BackupHeader, BackupStore, HashingReader, Manifest
from app.errors import BackupCorrupt, BackupStoreError, InvalidRequest, LiveError, NotFound
from app.models import Backup, Operation, Order, record_event, utcnow
from app.stacks.deployer import Deployer
from app.stacks.engine import ContainerState, VolumeRequest
from app.stacks.project import VOLUME_LABEL, Project

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


class BackupKind(enum.StrEnum):
    """Why a backup was taken (``Backup.kind``, the manifest's ``kind``)."""

    SCHEDULED = "scheduled"  # the product's (or plan's) schedule
    ON_DEMAND = "on_demand"  # the CLI, the API or WHMCS asked
    PRE_CHANGE = "pre_change"  # before a change of plan or product, an upgrade, or a move to another node
    PRE_RESTORE = "pre_restore"  # the safety backup before a restore
    FINAL = "final"  # at terminate (or the clean-up of a failed create): the last copy of the data


class BackupState(enum.StrEnum):
    """How an attempt went (``Backup.state``)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DELETED = "deleted"  # pruned: it was a backup, the store no longer has it


#: Kinds kept by retention like any other backup of a live order; a final backup follows its own rule.
FINAL_KINDS = (BackupKind.FINAL,)


def volume_artefact(volume: str) -> str:
    """The artefact name of the compose volume ``volume``'s tar archive: ``volume.<volume>.tar``."""
    return f"volume.{volume}.tar"


def dump_artefact(service: str) -> str:
    """The artefact name of ``service``'s dump: ``dump.<service>``."""
    return f"dump.{service}"


@dataclass(frozen=True)
class BackupDefaults:
    """Settings of every product that declares none: ``schedule`` (5-field cron, UTC; LIVE_BACKUP_SCHEDULE),
    ``keep`` (LIVE_BACKUP_KEEP); and of every order: ``keep_terminated_days`` (LIVE_BACKUP_KEEP_TERMINATED_DAYS),
    ``keep_unscheduled_days`` (LIVE_BACKUP_KEEP_UNSCHEDULED_DAYS: on-demand, pre-change and safety backups)."""

    schedule: str = "0 3 * * *"
    keep: Retention = field(default_factory=lambda: Retention(daily=7, weekly=4))
    keep_terminated_days: int = 30
    keep_unscheduled_days: int = 14


class BackupService:
    """Takes, checks, restores and prunes backups of orders' stacks in ``store`` through ``deployer``'s engine.

    ``clock`` returns the current UTC time, naive like the database's (tests pass their own).
    """

    def __init__(self, store: BackupStore, deployer: Deployer, defaults: BackupDefaults = BackupDefaults(),
                 clock: Callable[[], dt.datetime] = utcnow):
        self.store = store
        self.deployer = deployer
        self.defaults = defaults
        self.clock = clock

    @property
    def engine(self):
        return self.deployer.engine

    # -- taking -------------------------------------------------------------------------------------------------
    def take(self, order: Order, project: Project, services: Mapping[str, ServiceBackup], kind: BackupKind,
             progress: Progress = lambda _: None, *, operation: Operation | None = None,
             every_volume: bool = False, skip_empty: bool = False) -> Manifest | None:
        """Back up the order's data as it is now; returns the committed manifest.

        ``services`` is the product's declaration (``ResolvedPolicy.services``). ``every_volume`` (a final
        backup) also archives the order's volumes no service mounts any more (left behind by a change), found
        by the engine's labels. Volumes the declaration excludes are left out; declared volumes the engine
        does not have (never created) are skipped with a step saying so. With ``skip_empty``, nothing is taken
        (and None returned) when there is nothing to back up.

        The attempt is recorded as a :class:`~app.models.Backup` row (``running``, then ``succeeded`` or
        ``failed``) and an ``order.backed_up`` event. On failure what was uploaded is removed (best effort: the
        store's clean-up removes what is left) and the error is raised: :class:`~app.errors.BackupStoreError`,
        :class:`~app.errors.CommandFailed` (a dump command failed), the engine's errors. Nothing of the order
        is changed either way.
        """
        self.settle_interrupted(order)
        running = self._running(project)
        stopped = set(project.stack.services) - set(running)
        contents = backup_contents(services, project.stack, stopped=stopped)
        engine_volumes = self._engine_volumes(project)
        volumes = [item.volume for item in contents.volumes]
        if every_volume:  # volumes no service of the stack mounts any more (a change left them behind)
            declared = set(project.stack.volumes)
            volumes += sorted(name for name in engine_volumes
                              if name not in declared and name not in volumes and name not in contents.excluded)
        present = [volume for volume in volumes if volume in engine_volumes]
        for volume in volumes:
            if volume not in engine_volumes:
                progress(f"volume {volume} does not exist yet: nothing to archive")
        if skip_empty and not present and not contents.dumps:
            progress("nothing to back up: the order has no volume and no dump")
            return None
        if present:
            self.deployer.require_helper_image()
        header = BackupHeader(
            order_id=order.id, instance=order.instance, product=order.product.slug, revision=order.revision.label,
            plan=order.plan, kind=str(kind), services=contents.services(),
            contents={
                "volumes": [{"volume": volume, "artefact": volume_artefact(volume)} for volume in present],
                "dumps": [{"service": item.service, "artefact": dump_artefact(item.service), "restore": list(item.restore)}
                          for item in contents.dumps],
                "after_restore": [{"service": service, "command": list(command)}
                                  for service, command in contents.after_restore],
                "excluded": list(contents.excluded),
            })
        row = Backup.create(order=order, operation=operation, kind=kind, state=BackupState.RUNNING,
                            started_at=self.clock())
        writer = None
        try:
            writer = self.store.begin(header)
            row.backup_id = writer.backup_id
            row.save()
            for item in contents.dumps:
                progress(f"dump {item.service}")
                with self.engine.exec_output(running[item.service].id, item.dump) as stream:
                    writer.write_artefact(dump_artefact(item.service), stream)
            for volume in present:
                progress(f"archive volume {volume}")
                with self.engine.export_volume(engine_volumes[volume], self.deployer.helper_image,
                                               project.archive_helper_name, project.archive_helper_labels(),
                                               node=project.node) as stream:
                    writer.write_artefact(volume_artefact(volume), stream)
            progress("read the backup back and check it")
            manifest = writer.commit()
        except Exception as exc:
            self._failed(row, exc, order.secrets)
            if writer is not None:
                try:
                    writer.abort()
                except LiveError as cleanup:
                    log.warning("backup %s of %s: the partial upload was not removed (the store's clean-up will): %s",
                                writer.backup_id, order.instance, cleanup)
            raise
        row.state, row.finished_at = BackupState.SUCCEEDED, self.clock()
        row.size, row.artefacts, row.error, row.error_detail = manifest.size, len(manifest.artefacts), None, None
        row.save()
        progress(f"backup {manifest.backup_id}: {len(manifest.artefacts)} artefact(s), {manifest.size} bytes")
        record_event("order.backed_up", f"{kind} backup {manifest.backup_id} ({manifest.size} bytes)", order=order,
                     operation=operation, backup_id=manifest.backup_id, backup_kind=str(kind), size=manifest.size,
                     artefacts=[artefact.as_dict() for artefact in manifest.artefacts])
        return manifest

    def _failed(self, row: Backup, exc: BaseException, secrets: dict | None) -> None:
        """Record the attempt as failed; its detail (a dump command's output) has the order's ``secrets`` masked."""
        from app.orders.drift import mask_secrets  # here: app.orders.drift -> app.presenters imports this module
        public = exc.public if isinstance(exc, LiveError) else "internal error"
        row.state, row.finished_at = BackupState.FAILED, self.clock()
        row.error, row.error_detail = public, mask_secrets(f"{type(exc).__name__}: {exc}", secrets)
        row.save()
        record_event("order.backup_failed", f"{row.kind} backup failed: {public}", order=row.order_id,
                     backup_id=row.backup_id, backup_kind=row.kind)

    def settle_interrupted(self, order: Order) -> None:
        """Settle the order's attempts a killed worker left ``running``: committed in the store ->
        ``succeeded``; otherwise ``failed`` and their upload removed. Operations of one order never overlap, so
        an attempt still running when the next starts is a dead one."""
        for row in list(Backup.select().where((Backup.order == order) & (Backup.state == BackupState.RUNNING))):
            manifest = None
            if row.backup_id:
                try:
                    manifest = self.store.manifest(row.backup_id, instance=order.instance)
                except NotFound:
                    manifest = None
            if manifest is not None:
                row.state, row.size, row.artefacts = BackupState.SUCCEEDED, manifest.size, len(manifest.artefacts)
                row.finished_at = row.finished_at or self.clock()
                row.save()
                continue
            if row.backup_id:
                self.store.delete(row.backup_id, instance=order.instance)
            row.state, row.finished_at = BackupState.FAILED, self.clock()
            row.error = row.error_detail = "interrupted: the worker stopped during this backup"
            row.save()

    def _running(self, project: Project) -> dict[str, ContainerState]:
        """The order's running containers by service (one listing)."""
        return {c.service: c for c in self.engine.list_containers(project.selector) if c.service and c.running}

    def _engine_volumes(self, project: Project) -> dict[str, str]:
        """The order's volumes on the engine (in a swarm: on the project's node): compose volume name -> engine
        volume name."""
        return {volume.labels[VOLUME_LABEL]: volume.name
                for volume in self.engine.list_volumes(project.selector, node=project.node)
                if volume.labels.get(VOLUME_LABEL)}

    # -- reading ------------------------------------------------------------------------------------------------
    def list(self, order: Order) -> list[Manifest]:
        """The order's committed backups in the store, oldest first. Raises BackupStoreError."""
        return self.store.list(order.id, instance=order.instance)

    def find(self, backup_id: str, order: Order | None = None) -> Manifest:
        """The manifest of ``backup_id`` (of ``order`` when given: another order's backup is NotFound)."""
        manifest = self.store.manifest(backup_id, instance=order.instance if order is not None else None)
        if order is not None and manifest.order_id != order.id:
            raise NotFound(f"order {order.instance} has no backup {backup_id}")
        return manifest

    def check(self, manifest: Manifest) -> None:
        """Read every artefact back against the manifest; :class:`~app.errors.BackupCorrupt` naming each problem.
        Raises BackupStoreError when the store cannot be reached."""
        problems = self.store.verify(manifest.backup_id, instance=manifest.instance)
        if problems:
            raise BackupCorrupt(f"backup {manifest.backup_id} of {manifest.instance} does not match its manifest: "
                                + "; ".join(problems) + "; nothing was changed", backup_id=manifest.backup_id)

    # -- restoring ----------------------------------------------------------------------------------------------
    def restore_data(self, project: Project, manifest: Manifest, progress: Progress = lambda _: None, *,
                     every_volume: bool = False) -> None:
        """Replace the order's data with the backup's: stop every service, replace the content of each archived
        volume the project declares, then start the dumped services (and what they depend on) and feed each
        dump to its restore command (the manifest's). The caller deploys the stack afterwards and runs
        :meth:`after_restore`. Volumes are created where missing, on the project's node.

        Volumes of the backup the project no longer declares are left out, with a step saying so; with
        ``every_volume`` (a move to another node) they are restored too, as volumes no service mounts. Every
        artefact's sha256 is checked as it streams; a mismatch raises :class:`~app.errors.BackupCorrupt`.
        Raises the engine's errors, :class:`~app.errors.CommandFailed` and BackupStoreError. Safe to repeat:
        each volume is emptied before it is filled, and restore commands are expected to replace (``pg_restore
        --clean``).
        """
        contents = manifest.contents or {}
        self.deployer.stop(project, progress)
        engine_volumes = self._engine_volumes(project)
        volumes = contents.get("volumes", [])
        if volumes:
            self.deployer.require_helper_image()
        for entry in volumes:
            volume = entry["volume"]
            if volume not in project.stack.volumes and not every_volume:
                progress(f"volume {volume} of the backup is not in revision {project.revision}: left out")
                continue
            name = engine_volumes.get(volume)
            if name is None:
                name = project.volume_name(volume)
                self.engine.create_volume(VolumeRequest(name, project.volume_labels(volume), node=project.node))
            progress(f"restore volume {volume}")
            self._stream_artefact(manifest, entry["artefact"], lambda reader: self.engine.import_volume(
                name, self.deployer.helper_image, project.archive_helper_name, project.archive_helper_labels(), reader,
                node=project.node))
        dumps = [entry for entry in contents.get("dumps", []) if entry["service"] in project.stack.services]
        for entry in contents.get("dumps", []):
            if entry["service"] not in project.stack.services:
                progress(f"service {entry['service']} of the backup is not in revision {project.revision}: its dump is left out")
        if not dumps:
            return
        started = self.deployer.start_only(project, {entry["service"] for entry in dumps}, progress)
        for entry in dumps:
            progress(f"restore {entry['service']} from its dump")
            self._stream_artefact(manifest, entry["artefact"], lambda reader, entry=entry: self.engine.exec_input(
                started[entry["service"]], tuple(entry["restore"]), reader))

    def _stream_artefact(self, manifest: Manifest, name: str, consume: Callable[[HashingReader], object]) -> None:
        """Open artefact ``name``, let ``consume`` read it, read what it left, and check size and sha256."""
        expected = manifest.artefact(name)
        with self.store.open_artefact(manifest.backup_id, name, instance=manifest.instance) as raw:
            reader = HashingReader(raw)
            consume(reader)
            while reader.read():  # a command that stopped reading early: the digest covers the whole artefact
                pass
        if (reader.size, reader.sha256) != (expected.size, expected.sha256):
            raise BackupCorrupt(f"artefact {name} of backup {manifest.backup_id} changed in the store: {reader.size} "
                                f"bytes with sha256 {reader.sha256}, the manifest says {expected.size} and {expected.sha256}",
                                backup_id=manifest.backup_id)

    def after_restore(self, project: Project, manifest: Manifest, progress: Progress = lambda _: None) -> None:
        """Run the backup's ``after_restore`` commands in their services' running containers (the stack is up)."""
        commands = [entry for entry in (manifest.contents or {}).get("after_restore", [])
                    if entry["service"] in project.stack.services]
        if not commands:
            return
        running = {service: container.id for service, container in self._running(project).items()}
        for entry in commands:
            if entry["service"] not in running:
                raise InvalidRequest(f"service {entry['service']} is not running: its after_restore command cannot run")
            progress(f"after restore: {entry['service']}")
            self.engine.exec_input(running[entry["service"]], tuple(entry["command"]))

    # -- pruning ------------------------------------------------------------------------------------------------
    def prune(self, order: Order, keep: Retention, progress: Progress = lambda _: None) -> list[str]:
        """Delete the order's backups its retention no longer keeps; returns the backup ids deleted.

        A live order keeps the scheduled backups ``keep`` selects (:func:`~app.backups.policy.kept_backups`), every
        other backup (on demand, before a change or a restore) younger than ``keep_unscheduled_days``, and its
        newest backup whatever it is. A terminated order keeps only its final backups (terminate's, and a failed create's), until
        ``keep_terminated_days`` after the order was terminated. Reads the store (the truth), marks the rows
        ``deleted``. Raises BackupStoreError.
        """
        manifests = self.list(order)
        now = self.clock().replace(tzinfo=dt.timezone.utc)
        if order.terminated_at is not None:
            # Its final backups: terminate's, and a failed create's before it (the data it removed then).
            expires = order.terminated_at.replace(tzinfo=dt.timezone.utc) + dt.timedelta(days=self.defaults.keep_terminated_days)
            kept = {m.backup_id for m in manifests if m.kind in FINAL_KINDS} if now < expires else set()
        else:
            # The schedule's backups follow ``keep``; a backup taken for a reason of its own (on demand, before a
            # change or a restore) is kept keep_unscheduled_days whatever else was taken that day.
            scheduled = [(m.backup_id, m.created_at) for m in manifests if m.kind == BackupKind.SCHEDULED]
            kept = kept_backups(scheduled, keep, now) if scheduled else set()
            young = now - dt.timedelta(days=self.defaults.keep_unscheduled_days)
            kept |= {m.backup_id for m in manifests if m.kind != BackupKind.SCHEDULED and m.created_at >= young}
            if manifests:
                kept.add(manifests[-1].backup_id)  # the newest backup, whatever its kind and age
        deleted = []
        for manifest in manifests:
            if manifest.backup_id in kept:
                continue
            progress(f"prune backup {manifest.backup_id} ({manifest.kind})")
            self.store.delete(manifest.backup_id, instance=manifest.instance)
            Backup.update(state=BackupState.DELETED, deleted_at=self.clock()).where(
                Backup.backup_id == manifest.backup_id).execute()
            deleted.append(manifest.backup_id)
        listed = {manifest.backup_id for manifest in manifests}
        Backup.update(state=BackupState.DELETED, deleted_at=self.clock()).where(  # removed from the store by hand
            (Backup.order == order) & (Backup.state == BackupState.SUCCEEDED) & Backup.backup_id.not_in(listed)
            & (Backup.started_at < self.clock() - dt.timedelta(minutes=1))).execute()
        if deleted:
            record_event("order.backups_pruned", f"{len(deleted)} backup(s) deleted by retention", order=order,
                         backup_ids=deleted)
        return deleted

