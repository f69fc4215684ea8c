"""What each operation kind does to an order and its stack.

Handlers converge: running one twice, or again after a crash at any point,
ends in the same state. The worker decides when to run, retry or give up;
this module only knows how, and sets the order's status as the transition
table says (:data:`app.orders.lifecycle.TRANSITIONS`).
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Callable

import peewee

from app.backups.policy import BackupPolicy, ResolvedPolicy
from app.backups.service import BackupKind, BackupService
from app.catalog.catalog import Catalog
from app.catalog.product import Credential, build_project
from app.config import PublicAddress
from app.compose.model import StackSpec
from app.errors import DataRiskError, EngineOperationError, HostPortInUse, InvalidRequest, LiveError
from app.models import Operation, Order, ProductRevision, record_event, utcnow
from app.orders.drift import expected_services, mask_secrets, record_expected
from app.orders.lifecycle import HANDLERS, TRANSITIONS, OperationKind, OrderStatus, handles, transition
from app.presenters import PRIVATE_EVENT_DATA
from app.stacks.data_risk import DataRiskReport, data_risks
from app.stacks.deployer import Deployer
from app.stacks.engine import NodeState
from app.stacks.placement import MIB, check_target, choose_node, order_reservation
from app.stacks.plan import Action
from app.stacks.ports import PORT_MOVES, PortAllocator
from app.stacks.project import VOLUME_LABEL, Project

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
#: A handler: ``handler(operation, order, progress)``; raises LiveError (transient or not) when it fails.
Handler = Callable[[Operation, Order, Progress], None]


#: The backups an operation takes before its own work, and how a failure of one is told (the public text).
BACKUP_BEFORE = {BackupKind.PRE_CHANGE: "the backup before the change",
                 BackupKind.PRE_RESTORE: "the safety backup before the restore",
                 BackupKind.FINAL: "the final backup"}


class OperationRunner:
    """Runs operations on the Docker engine through ``deployer``: one handler per :class:`OperationKind`
    (``handlers``), and the clean-up of an operation that failed for good (:meth:`on_failure`)."""

    def __init__(self, catalog: Catalog, deployer: Deployer, backups: BackupService,
                 public_address: PublicAddress = PublicAddress(), ports: PortAllocator | None = None,
                 deployment: str = "live", routed_ports: Callable[[], set[int]] = set, swarm_pool: str = ""):
        self.deployment = deployment
        # Docker Swarm: the pool (node label live.pool) new orders are placed in; "" = every eligible node.
        self.swarm_pool = swarm_pool
        # Backups (app/backups/service.py): taken before changes, at terminate (the final backup), by backup
        # operations; restores read them.
        self.backups = backups
        # Ports a terminated order's route may still lead to in the proxy: never given to another order.
        self.routed_ports = routed_ports
        self.catalog = catalog
        self.deployer = deployer
        self.public_address = public_address
        self.ports = ports or PortAllocator()
        self._ports_lock = threading.Lock()
        # Placement (swarm): one choice at a time, and the memory of orders placed but whose services the swarm
        # does not hold yet (their deploy is under way), which nodes() cannot count: order id -> (node, bytes).
        self._placement_lock = threading.Lock()
        self._placing: dict[int, tuple[str, int]] = {}
        # The registry of app/orders/lifecycle.py, bound to this runner (tests may replace an entry).
        self.handlers: dict[OperationKind, Handler] = {kind: HANDLERS[kind].__get__(self)
                                                       for kind in OperationKind if kind in HANDLERS}

    def project(self, order: Order, revision: ProductRevision | None = None) -> Project:
        """The order's project as its revision (or ``revision``) renders it (:func:`build_project`)."""
        revision = revision or order.revision
        definition = self.catalog.definition(revision)
        definition.require_valid()
        builtins = {
            "LIVE_ORDER_ID": str(order.id),
            "LIVE_INSTANCE": order.instance,
            "LIVE_HOSTNAME": order.hostname,
            "LIVE_BASE_URL": self.public_address.origin(order.hostname),
            "LIVE_PLAN": order.plan,
            "LIVE_PRODUCT": order.product.slug,
            "LIVE_CUSTOMER_EMAIL": order.customer.email,
        }
        # The catalog validated the product with this same function on sample values; build_project checks
        # the policy again on the real ones (defence in depth).
        project = build_project(
            definition, order.plan, builtins, definition.generate_secrets(order.secrets), revision=revision.label,
            pinned_ports=order.published_ports or {}, deployment=self.deployment,
        )
        project.node = order.node  # the swarm node the order is placed on (None on one engine)
        return project

    def run(self, operation: Operation, progress: Progress) -> None:
        """Run the handler of the operation's kind. Raises LiveError (not transient) for a kind without one."""
        handler = self.handlers.get(operation.kind)
        if handler is None:
            raise LiveError(f"unknown operation kind {operation.kind!r}")
        order = operation.order
        if order.status == OrderStatus.TERMINATED and operation.kind != OperationKind.TERMINATE:
            # Queued behind a terminate (WHMCS sent suspend after terminate): a terminated order stays terminated.
            progress(f"order {order.instance} is terminated: nothing to do")
            return
        handler(operation, order, progress)

    # -- handlers -----------------------------------------------------------
    @handles(OperationKind.CREATE)
    def _do_create(self, operation: Operation, order: Order, progress: Progress) -> None:
        self._deploy(order, progress)
        self._succeeded(operation, order, f"order {order.instance} is active")

    @handles(OperationKind.UNSUSPEND)
    def _do_unsuspend(self, operation: Operation, order: Order, progress: Progress) -> None:
        self._deploy(order, progress)
        self._succeeded(operation, order, f"order {order.instance} resumed")

    @handles(OperationKind.REDEPLOY)
    def _do_redeploy(self, operation: Operation, order: Order, progress: Progress) -> None:
        if order.status in transition(operation.kind).kept_while:
            progress(f"order is {order.status}: nothing to start")
            return
        self._deploy(order, progress)
        self._succeeded(operation, order, f"order {order.instance} redeployed")

    @handles(OperationKind.RESTART)
    def _do_restart(self, operation: Operation, order: Order, progress: Progress) -> None:
        self.deployer.stop(self.project(order), progress)
        self._deploy(order, progress)
        self._succeeded(operation, order, f"order {order.instance} restarted")

    @handles(OperationKind.SUSPEND)
    def _do_suspend(self, operation: Operation, order: Order, progress: Progress) -> None:
        self.deployer.stop(self.project(order), progress)
        record_expected(order, {})  # nothing should run
        self._succeeded(operation, order, f"order {order.instance} suspended")

    @handles(OperationKind.CHANGE_PLAN)
    def _do_change_plan(self, operation: Operation, order: Order, progress: Progress) -> None:
        plan, product = operation.params["plan"], operation.params.get("product", order.product.slug)
        revision = self.catalog.deployable_revision(product) if product != order.product.slug else order.revision
        self._guard_data(operation, order, revision, plan, progress, check_only=True)
        self._backup_once(operation, order, BackupKind.PRE_CHANGE, "_pre_change_backup", progress)
        self._guard_data(operation, order, revision, plan, progress)
        if product != order.product.slug:
            definition = self.catalog.definition(revision)
            order.product, order.revision = revision.product, revision
            order.secrets = definition.generate_secrets(order.secrets)  # keep existing secrets, add new ones
        previous = order.plan
        order.plan = plan
        self._converge_changed(operation, order, progress, f"order {order.instance} moved to plan {plan}")
        record_event("order.plan_changed", f"plan {previous} -> {plan}", order=order, operation=operation,
                     previous=previous, plan=plan, product=product)

    def _converge_changed(self, operation: Operation, order: Order, progress: Progress, done: str) -> None:
        """Save a changed order, then converge its stack; a suspended one converges when resumed."""
        order.updated_at = utcnow()
        order.save()
        if order.status in transition(operation.kind).kept_while:
            progress(f"order is {order.status}: the change applies when it is resumed")
            return
        result = self._deploy(order, progress)
        progress("recreated: " + (", ".join(s for s, a in sorted(result.actions.items()) if a != Action.NOOP) or "nothing"))
        self._succeeded(operation, order, done)

    def preview(self, order: Order, revision: ProductRevision, plan: str | None = None) -> dict:
        """What moving to ``revision`` (and ``plan``) would do to each service and to the order's data, without
        doing it.

        Returns ``{"order_id", "instance", "from", "to", "services": {service: action}, "removed":
        [service], "data": {"risks", "left_behind", "new_volumes", "existing_volumes"}}``;
        ``existing_volumes`` are the new volumes that already exist on the engine (an older revision's,
        re-attached by a rollback), so they are not empty.
        """
        plan = plan or order.plan
        project = self.project(self._changed(order, revision, plan), revision)
        convergence, _, _ = self.deployer.plan(project, pull=False)  # a preview changes nothing, pulls nothing
        data = data_risks(self.project(order).stack, project.stack).as_dict()
        existing = {volume.labels.get(VOLUME_LABEL)
                    for volume in self.deployer.engine.list_volumes(project.selector, node=project.node)}
        data["existing_volumes"] = sorted(v for v in data["new_volumes"] if v in existing)
        return {"order_id": order.id, "instance": order.instance, "from": order.revision.label, "to": revision.label,
                "services": {name: action.value for name, action in sorted(convergence.actions.items())},
                "removed": sorted(c.service or c.name for c in convergence.orphans), "data": data}

    def data_risks(self, order: Order, *, revision: ProductRevision | None = None,
                   plan: str | None = None) -> DataRiskReport:
        """What moving the order to ``revision`` and/or ``plan`` would do to its data (nothing is changed)."""
        revision = revision or order.revision
        return data_risks(self.project(order).stack, self._changed_stack(order, revision, plan or order.plan))

    def _changed_stack(self, order: Order, revision: ProductRevision, plan: str) -> StackSpec:
        """The order's stack rendered on another revision and plan."""
        return self.project(self._changed(order, revision, plan), revision).stack

    @staticmethod
    def _changed(order: Order, revision: ProductRevision, plan: str) -> Order:
        """A detached copy of the order on another revision (and its product) and plan; never saved."""
        changed = Order(**order.__data__)
        changed.plan, changed.revision, changed.product = plan, revision, revision.product
        return changed

    def _guard_data(self, operation: Operation, order: Order, revision: ProductRevision, plan: str,
                    progress: Progress, *, check_only: bool = False) -> None:
        """Refuse a change that detaches data unless the operator accepted it; list what is left behind.

        Checked again here (the request was checked too) because other changes may have run since.
        Volumes left behind are kept on the engine, listed on the order and in terminate's final backup; a
        volume mounted again (a rollback) leaves the list.
        """
        after = self._changed_stack(order, revision, plan)
        report = data_risks(self.project(order).stack, after)
        if report.detaches_data and not operation.params.get("allow_data_risk"):
            raise DataRiskError(f"{operation.kind} of order {order.instance}", report,
                                how_to_allow="Nothing was changed; an operator may accept this with --allow-data-risk")
        if check_only:
            return
        mounted = {mount.volume for service in after.services.values() for mount in service.volumes}
        kept = [entry for entry in (order.detached_volumes or []) if entry["volume"] not in mounted]
        listed = {entry["volume"] for entry in kept}
        now = utcnow().isoformat(timespec="seconds") + "Z"
        kept += [{"volume": volume, "revision": order.revision.label, "at": now}
                 for volume in report.left_behind if volume not in listed]
        order.detached_volumes = kept
        if report.detaches_data:
            progress("data risk accepted by the operator: " + report.summary())
            record_event("order.data_detached", f"volumes left behind: {', '.join(report.left_behind) or 'none'}",
                         order=order, operation=operation, **report.as_dict())

    @handles(OperationKind.UPGRADE)
    def _do_upgrade(self, operation: Operation, order: Order, progress: Progress) -> None:
        revision = ProductRevision.get((ProductRevision.product == order.product)
                                       & (ProductRevision.content_hash == operation.params["revision"]))
        self._guard_data(operation, order, revision, order.plan, progress, check_only=True)
        self._backup_once(operation, order, BackupKind.PRE_CHANGE, "_pre_change_backup", progress)
        self._guard_data(operation, order, revision, order.plan, progress)
        previous = order.revision.label
        order.revision = revision
        order.secrets = self.catalog.definition(revision).generate_secrets(order.secrets)
        self._converge_changed(operation, order, progress, f"order {order.instance} at revision {revision.label}")
        record_event("order.upgraded", f"revision {previous} -> {revision.label}", order=order, operation=operation,
                     previous=previous, revision=revision.label, commit=revision.commit)

    @handles(OperationKind.CHANGE_PASSWORD)
    def _do_change_password(self, operation: Operation, order: Order, progress: Progress) -> None:
        """Apply the customer's password stored in ``Order.secrets`` (written with the request, in the transaction
        that queued this operation) to the running stack, as product.yml's ``credential.apply`` says: ``recreate``
        converges the stack (the services whose definition uses the variable are recreated with the new value),
        ``command`` runs in the service's running container with the value in the exec's environment under the
        variable's name. Both converge, so a run again after a crash applies the same stored value again.

        The value is never in the operation, its steps, its events or its errors: an error's texts have the
        order's secrets masked (a command may print what it was given). Raises InvalidRequest when the
        order's revision declares no credential (any more), :class:`~app.errors.EngineOperationError` when the
        command's service does not run (retried), and the errors of the deploy or the command.
        """
        definition = self.catalog.definition(order.revision)
        credential = definition.credential
        if credential is None:
            raise InvalidRequest(f"product {order.product.slug} (revision {order.revision.label}) declares no customer "
                                 "password (product.yml credential): nothing to apply")
        try:
            if credential.recreate:
                result = self._deploy(order, progress)
                progress("recreated: " + (", ".join(s for s, a in sorted(result.actions.items()) if a != Action.NOOP)
                                          or "nothing (the services have the password already)"))
            else:
                self._run_credential_command(order, credential, progress)
        except LiveError as exc:
            raise _masked(exc, order.secrets) from None
        record_event("order.password_changed", f"the customer's password ({credential.variable}) was applied",
                     order=order, operation=operation, variable=credential.variable)
        self._succeeded(operation, order, f"order {order.instance}: password applied")

    def _run_credential_command(self, order: Order, credential: Credential, progress: Progress) -> None:
        """Run ``credential.run`` in the running container of ``credential.service`` with the stored value
        (``Order.secrets``) in its environment under the variable's name (never in argv). Raises
        :class:`~app.errors.EngineOperationError` (transient) when the service does not run, and the command's
        errors (unmasked: callers mask them with :func:`_masked`)."""
        project = self.project(order)
        running = {c.service: c for c in self.deployer.engine.list_containers(project.selector)
                   if c.service and c.running}
        container = running.get(credential.service)
        if container is None:
            stopped = EngineOperationError(
                f"service {credential.service} of order {order.instance} is not running: the password "
                "cannot be applied (the operation is retried)", public=f"service {credential.service} is "
                "not running: the password cannot be applied yet")
            stopped.transient = True  # a service restarting (or repaired by drift) runs again soon
            raise stopped
        progress(f"apply the password in service {credential.service}")
        self.deployer.engine.exec_input(container.id, credential.run,
                                        environment={credential.variable: (order.secrets or {}).get(credential.variable) or ""})

    def teardown_project(self, order: Order) -> Project:
        """The order's project for stopping, archiving and removing it, whatever state it is in.

        The rendered project when the order's revision and plan still render; otherwise (a product made
        invalid by a later policy, a plan gone) one built from the order's identity alone: the engine's
        labels still find every object, only the stop order of dependents first is lost. Transient errors
        are raised.
        """
        try:
            return self.project(order)
        except LiveError as exc:
            if exc.transient:
                raise
            log.warning("order %s no longer renders (%s); tearing it down by its labels alone", order.instance, exc)
            return Project(order_id=order.id, instance=order.instance, product=order.product.slug,
                           revision=order.revision.label, hostname=order.hostname,
                           stack=StackSpec(services={}, volumes=[], networks={}), deployment=self.deployment,
                           node=order.node)

    @handles(OperationKind.TERMINATE)
    def _do_terminate(self, operation: Operation, order: Order, progress: Progress) -> None:
        """Take the order's final backup, then remove the stack; works from any order status and any stack state.

        Depends neither on the product's images nor on its services starting other than its dumped ones (see
        :meth:`_back_up_and_remove`); a failure leaves every volume in place (see :meth:`on_failure`). The
        ``order.archived`` event's data is ``{"backup_id": <id>}`` (None: there was nothing to back up).
        """
        final = self._back_up_and_remove(operation, order, self.teardown_project(order), progress)
        order.terminated_at = utcnow()
        record_event("order.archived", f"final backup {final}", order=order, operation=operation, backup_id=final)
        self._prune(order, progress)  # a terminated order keeps its final backup only
        record_expected(order, {})  # nothing runs any more
        self._succeeded(operation, order, f"order {order.instance} terminated")

    def _back_up_and_remove(self, operation: Operation, order: Order, project: Project,
                            progress: Progress) -> str | None:
        """Take the order's final backup, then remove its containers, networks and volumes; returns the backup id
        (None: the order had no volume and no dump, so nothing was backed up).

        The services the product dumps (databases), and what they depend on, keep running until the others
        have stopped, so the dump is taken with no application writing; every other volume is archived with
        its services stopped. Nothing is removed unless the backup was committed (listed only once read back);
        the backup's id is kept on the operation, so a retry after a crash removes without a second backup.

        Before anything is stopped, the store must answer and, when the order has volumes, the archive helper
        image must be on the engine: those failures (:class:`~app.errors.BackupStoreError`,
        :class:`~app.errors.ArchiveHelperMissing`) leave the stack as it was. A store failing later (the upload)
        leaves the containers stopped and every volume in place (:meth:`on_failure` starts them again).
        """
        if not operation.params.get("_final_backup"):
            try:
                self.backups.store.check()
                if self.deployer.engine.list_volumes(project.selector, node=project.node):
                    self.deployer.require_helper_image()
            except LiveError as exc:  # told as a failure of the final backup, as _backup_once tells the others
                exc.public = f"{BACKUP_BEFORE[BackupKind.FINAL]} failed: {exc.public}"
                raise
            dumped = {name for name, service in self.policy(order).services.items() if service.dump}
            self.deployer.stop(project, progress, keep=dumped)
        final = self._backup_once(operation, order, BackupKind.FINAL, "_final_backup", progress, project=project,
                                  every_volume=True, skip_empty=True)
        self.deployer.stop(project, progress)
        self.deployer.remove_resources(project, progress, volumes=True)
        return final

    # -- backups ------------------------------------------------------------
    def policy(self, order: Order) -> ResolvedPolicy:
        """The order's backup policy: its revision's declaration for its plan, with the settings' defaults.
        A revision that no longer loads gives the default rule (every volume as files)."""
        defaults = self.backups.defaults
        try:
            declared = self.catalog.definition(order.revision).backup
        except LiveError as exc:
            if exc.transient:
                raise
            declared = BackupPolicy()
        return declared.for_plan(order.plan, defaults.schedule, defaults.keep)

    def _backup_once(self, operation: Operation, order: Order, kind: BackupKind, param: str, progress: Progress,
                     *, project: Project | None = None, every_volume: bool = False,
                     skip_empty: bool = False) -> str | None:
        """Take a backup of ``kind`` unless this operation already did (its id is in ``params[param]``, written as
        soon as it is committed, so a retry after a crash does not take a second one); returns its id (None when
        ``skip_empty`` and there was nothing to back up)."""
        done = (operation.params or {}).get(param)
        if done:
            progress(f"{kind} backup {done} was taken by an earlier attempt")
            return done
        project = project or self.teardown_project(order)
        try:
            manifest = self.backups.take(order, project, self.policy(order).services, kind, progress,
                                         operation=operation, every_volume=every_volume, skip_empty=skip_empty)
        except LiveError as exc:
            if kind in BACKUP_BEFORE:  # say which step failed: the billing side reports failed backups as such
                exc.public = f"{BACKUP_BEFORE[kind]} failed: {exc.public}"
            raise
        if manifest is None:
            return None
        self._remember(operation, **{param: manifest.backup_id})
        return manifest.backup_id

    @staticmethod
    def _remember(operation: Operation, **values) -> None:
        """Add bookkeeping ``values`` to the operation's params (keys start with "_": never shown, never compared
        by a repeated request) and write them at once."""
        operation.params = {**(operation.params or {}), **values}
        Operation.update(params=operation.params).where(Operation.id == operation.id).execute()

    def _prune(self, order: Order, progress: Progress) -> None:
        """Apply the order's retention; a store that fails here never fails the backup that was just taken."""
        try:
            self.backups.prune(order, self.policy(order).keep, progress)
        except LiveError as exc:
            log.warning("pruning the backups of %s did not finish: %s", order.instance, exc)
            progress(f"pruning old backups did not finish: {exc.public}")

    @handles(OperationKind.BACKUP)
    def _do_backup(self, operation: Operation, order: Order, progress: Progress) -> None:
        """Take a backup (``params.kind``: scheduled or on_demand), then prune by the order's retention."""
        kind = BackupKind(operation.params.get("kind", BackupKind.ON_DEMAND))
        backup_id = self._backup_once(operation, order, kind, "_backup", progress)
        self._prune(order, progress)
        self._set_status(order, transition(operation.kind).status_after_success(order.status), operation,
                         f"backup {backup_id} of order {order.instance}")

    @handles(OperationKind.RESTORE)
    def _do_restore(self, operation: Operation, order: Order, progress: Progress) -> None:
        """Restore ``params.backup_id`` into the order (docs/BACKUPS.md, "Restore").

        1. check every artefact against the manifest (nothing touched before); 2. take a safety backup; 3-4.
        stop, replace the volumes' contents and run the restore commands; 5. deploy and wait for health, then
        run the ``after_restore`` commands. A backup of another order (same customer and product: the late
        payer's final backup) also brings that order's generated secrets, which its data was made with.
        A failure for good after step 2 brings the order back from the safety backup (:meth:`on_failure`).
        """
        manifest = self.backups.find(operation.params["backup_id"])
        source = self._restore_source(order, manifest)
        credential = self.catalog.definition(order.revision).credential
        # The customer's password (product.yml credential) is WHMCS's: never taken from the source order, never
        # copied into the operation's params; with apply.command it is applied again once the data is back.
        customers = credential.owns if credential is not None else (lambda key: False)
        if not operation.params.get("_restoring"):
            progress(f"check backup {manifest.backup_id} ({len(manifest.artefacts)} artefact(s), {manifest.size} bytes)")
            self.backups.check(manifest)
            self._backup_once(operation, order, BackupKind.PRE_RESTORE, "_safety_backup", progress)
            self._remember(operation, _restoring=True, _previous_secrets={
                k: v for k, v in (order.secrets or {}).items() if not customers(k)})
        if source is not None:
            generated = self.catalog.definition(order.revision).generated
            order.secrets = {**(order.secrets or {}),
                             **{k: v for k, v in (source.secrets or {}).items() if k in generated and not customers(k)}}
            order.save()
        project = self.project(order)
        self.backups.restore_data(project, manifest, progress)
        self._deploy(order, progress, rerun_jobs=True)  # the data changed: its jobs (migrations...) run on it again
        self.backups.after_restore(project, manifest, progress)
        if credential is not None and credential.service is not None:
            try:  # the restored data holds the password it was backed up with: WHMCS's current one is applied again
                self._run_credential_command(order, credential, progress)
            except LiveError as exc:
                raise _masked(exc, order.secrets) from None
        record_event("order.restored", f"restored from backup {manifest.backup_id}", order=order, operation=operation,
                     backup_id=manifest.backup_id, safety_backup=operation.params.get("_safety_backup"),
                     source_order=manifest.order_id)
        self._succeeded(operation, order, f"order {order.instance} restored from backup {manifest.backup_id}")

    @staticmethod
    def _restore_source(order: Order, manifest) -> Order | None:
        """The other order whose backup is restored into ``order`` (None: its own). Refused unless it is a
        terminated order of the same product and customer (checked again here: the request was checked too)."""
        if manifest.product != order.product.slug:
            raise InvalidRequest(f"backup {manifest.backup_id} is of product {manifest.product}, order "
                                 f"{order.instance} of {order.product.slug}: nothing was changed")
        if manifest.order_id == order.id:
            return None
        source = Order.get_or_none(Order.id == manifest.order_id)
        if source is None or source.customer_id != order.customer_id or source.status != OrderStatus.TERMINATED:
            raise InvalidRequest(f"backup {manifest.backup_id} is not a backup of this order or of a terminated order "
                                 "of its customer: nothing was changed")
        return source

    def _roll_back_restore(self, operation: Operation, order: Order, progress: Progress) -> None:
        """Bring the order back from the restore's safety backup (with its secrets); ``failed`` when that fails."""
        safety = operation.params.get("_safety_backup")
        try:
            if "_previous_secrets" in operation.params:
                order.secrets = {**(order.secrets or {}), **operation.params["_previous_secrets"]}
                order.save()
            manifest = self.backups.find(safety)
            progress(f"restore failed: bringing the order back from safety backup {safety}")
            project = self.project(order)
            self.backups.restore_data(project, manifest, progress)
            self._deploy(order, progress, rerun_jobs=True)
            self.backups.after_restore(project, manifest, progress)
        except peewee.PeeweeException:
            raise
        except Exception as exc:  # noqa: BLE001 (whatever went wrong, the status must say the data is not back)
            said = mask_secrets(f"{type(exc).__name__}: {exc}", order.secrets)  # a restore command's output
            log.error("order %s: the rollback from safety backup %s failed: %s", order.instance, safety, said)
            public = exc.public if isinstance(exc, LiveError) else "internal error"
            progress(f"the order could not be brought back from safety backup {safety}: {public}")
            order.status = OrderStatus.FAILED
            record_event(f"order.{OrderStatus.FAILED}", f"restore failed and safety backup {safety} could not be restored",
                         order=order, operation=operation, safety_backup=safety, **{PRIVATE_EVENT_DATA: said})
            return
        progress(f"the order runs again with the data of safety backup {safety}")
        record_event("order.restore_rolled_back", f"restore failed: the order was brought back from safety backup {safety}",
                     order=order, operation=operation, safety_backup=safety)

    # -- moving an order to another swarm node -------------------------------
    def move_target(self, order: Order, node: str, *, check: bool = True) -> NodeState:
        """The swarm node named ``node`` (its id or hostname) as the node ``order`` moves to.

        Raises :class:`~app.errors.InvalidRequest` on one engine (no nodes), for an unknown node and for an order
        that has no node yet; with ``check`` also for the order's own node, and :class:`~app.errors.NoCapacity`
        when the node may not take it (:func:`~app.stacks.placement.check_target`: ready, active, reachable and
        with room; ``LIVE_SWARM_POOL`` does not apply to an operator's choice).
        """
        nodes = self.deployer.engine.nodes()
        if not nodes:
            raise InvalidRequest("moving an order needs Docker Swarm (LIVE_ORCHESTRATOR=swarm): one engine has no "
                                 "other node to move it to; nothing was changed")
        wanted = (node or "").strip()
        target = next((n for n in nodes if n.id == wanted), None) or next((n for n in nodes if n.hostname == wanted),
                                                                          None)
        if target is None:
            known = ", ".join(f"{n.hostname} ({n.id})" for n in sorted(nodes, key=lambda n: n.hostname))
            raise InvalidRequest(f"no swarm node {wanted!r}: the nodes are {known}; nothing was changed")
        if not order.node:
            raise InvalidRequest(f"order {order.instance} is not placed on a node yet: redeploy it first; nothing "
                                 "was changed")
        if check:
            if target.id == order.node:
                raise InvalidRequest(f"order {order.instance} is on node {target.hostname} already: nothing to move")
            check_target(target, order_reservation(self.project(order).stack))
        return target

    @handles(OperationKind.MOVE)
    def _do_move(self, operation: Operation, order: Order, progress: Progress) -> None:
        """Move the order to swarm node ``params.node`` (docs/OPERATIONS.md, "Moving an order to another node").

        1. check the node (:meth:`move_target`) and remember both nodes; 2. stop every service but those the
        product dumps and take a ``pre_change`` backup (every volume, left-behind ones too, but those the product
        excludes as rebuildable: they start empty there); 3. stop the rest, record the target node on the order and
        remove its services (they are made again there); 4. restore the backup into volumes created on the target and run its
        restore commands there; 5. deploy there, wait for health, run the ``after_restore`` commands (a
        suspended order is stopped again); 6. remove the order's volumes from the source node.

        Each step is remembered in the operation's params (``_source``, ``_pre_change_backup``, ``_switching``,
        ``_moved``), so a worker killed at any point resumes where it was. A failure for good before step 6
        brings the order back on its source node, whose volumes were not touched (:meth:`on_failure`).
        """
        if "_source" not in (operation.params or {}):
            target = self.move_target(order, operation.params["node"])
            self._remember(operation, _source=order.node, _source_name=order.node_name or order.node,
                           _target=target.id, _target_name=target.hostname)
        params = operation.params
        source, target, target_name = params["_source"], params["_target"], params["_target_name"]
        if not params.get("_moved"):
            project = self.project(order)
            # Consistent data: the services the product dumps (and what they need) keep running for their dump,
            # every other service stops before its volumes are archived; writes after the backup are impossible.
            # _switching first, so that any failure from here on brings the order back on its source node.
            if not params.get("_pre_change_backup") and not params.get("_switching"):
                try:  # before anything stops: the store answers, the helper image is there
                    self.backups.store.check()
                    self.deployer.require_helper_image()
                except LiveError as exc:
                    exc.public = f"{BACKUP_BEFORE[BackupKind.PRE_CHANGE]} failed: {exc.public}"
                    raise
            self._remember(operation, _switching=True)
            if not params.get("_pre_change_backup"):
                self.deployer.stop(project, progress,
                                   keep={name for name, service in self.policy(order).services.items() if service.dump})
            backup_id = self._backup_once(operation, order, BackupKind.PRE_CHANGE, "_pre_change_backup", progress,
                                          every_volume=True)
            manifest = self.backups.find(backup_id)
            self.deployer.stop(project, progress)
            if order.node != target:
                progress(f"move the order to node {target_name}")
                order.node, order.node_name = target, target_name
                order.updated_at = utcnow()
                order.save()
            self.deployer.remove_containers(project, progress)  # made again on the target node
            project = self.project(order)
            self.backups.restore_data(project, manifest, progress, every_volume=True)
            self._deploy(order, progress)
            self.backups.after_restore(project, manifest, progress)
            if order.status in transition(operation.kind).kept_while:
                progress(f"order is {order.status}: stop it again")
                self.deployer.stop(project, progress)
                record_expected(order, {})
            self._remember(operation, _moved=True)
        params = operation.params
        self._remove_volumes_on(order, source, params["_source_name"], progress)
        record_event("order.moved", f"order {order.instance} moved from node {params['_source_name']} to node "
                     f"{target_name}", order=order, operation=operation, from_node=source,
                     from_node_name=params["_source_name"], to_node=target, to_node_name=target_name,
                     backup_id=params.get("_pre_change_backup"))
        self._succeeded(operation, order, f"order {order.instance} moved to node {target_name}")

    def _remove_volumes_on(self, order: Order, node: str, node_name: str, progress: Progress) -> None:
        """Remove every volume of the order (found by its labels) from swarm node ``node`` only."""
        engine = self.deployer.engine
        for volume in engine.list_volumes(self.teardown_project(order).selector, node=node):
            progress(f"remove volume {volume.name} from node {node_name}")
            engine.remove_volume(volume.name, node=node)

    def _roll_back_move(self, operation: Operation, order: Order, progress: Progress) -> None:
        """Bring a move that failed for good back to the source node: record it on the order again, converge an
        active order there (its volumes there were never touched), then remove the volumes made on the target. A
        suspended order's services are stopped and removed (its unsuspend makes them again on the source node).
        An active order becomes ``failed`` when it cannot run on its source node again; target volumes that cannot
        be removed (the node unreachable) are only reported."""
        params = operation.params
        source, source_name = params["_source"], params["_source_name"]
        target, target_name = params["_target"], params["_target_name"]
        try:
            progress(f"move failed: bringing the order back on node {source_name}")
            if order.node != source:
                order.node, order.node_name = source, source_name
                order.save()
            if order.status in transition(operation.kind).kept_while:
                project = self.project(order)
                self.deployer.stop(project, progress)
                self.deployer.remove_containers(project, progress)
            else:
                self._deploy(order, progress)
        except peewee.PeeweeException:
            raise
        except Exception as exc:  # noqa: BLE001 (whatever went wrong, the status must say the order does not run)
            said = mask_secrets(f"{type(exc).__name__}: {exc}", order.secrets)  # a restore command's output
            log.error("order %s: the move to node %s failed and the order could not be brought back on node %s: %s",
                      order.instance, target_name, source_name, said)
            public = exc.public if isinstance(exc, LiveError) else "internal error"
            progress(f"the order could not be brought back on node {source_name}: {public}")
            order.status = OrderStatus.FAILED
            record_event(f"order.{OrderStatus.FAILED}", f"move to node {target_name} failed and the order could not "
                         f"run on node {source_name} again", order=order, operation=operation,
                         **{PRIVATE_EVENT_DATA: said})
            return
        try:  # the order runs where it was: what the target keeps is left over, not a failure of the order
            self._remove_volumes_on(order, target, target_name, progress)
        except LiveError as exc:
            log.warning("order %s: the volumes made on node %s were not removed: %s", order.instance, target_name, exc)
            progress(f"the volumes made on node {target_name} were not removed: {exc.public}")
        progress(f"the order runs on node {source_name} again, with its data as it was")
        record_event("order.move_rolled_back", f"move to node {target_name} failed: the order stays on node "
                     f"{source_name}", order=order, operation=operation, from_node=source, to_node=target)

    # -- failure ------------------------------------------------------------
    def on_failure(self, operation: Operation, reason: str, progress: Progress, *, detail: str | None = None) -> None:
        """Called once when an operation has failed for good; leaves the order's status telling the truth.

        ``reason`` is the public text (the WHMCS client area shows it),
        ``detail`` the private one for operators (defaults to ``reason``).

        The order's status follows the transition table (``fails_to``, ``restored_from``):

        - ``create``: what the create made goes into a final backup and is removed (volumes are read with the
          helper image, so also when the product's images are missing); when that cannot finish, its
          containers are at least stopped. The order becomes ``failed``.
        - ``move`` (once it began to stop the order, until the target runs it): the order is brought back on its
          source node (:meth:`_roll_back_move`); ``failed`` when it cannot run there again.
        - ``terminate``: nothing was deleted. An ``active`` order is converged back (as ``unsuspend``
          does: the containers terminate stopped start again) and stays ``active``; when that fails its
          stack is down and the order becomes ``failed``. Other statuses already mean "not running".
        """
        order = operation.order
        detail = detail or reason
        rule = TRANSITIONS.get(operation.kind)  # None: a kind this bridge does not know (``run`` refused it)
        if operation.kind == OperationKind.CREATE:
            detail = self._clean_failed_create(operation, order, progress, detail)
        elif operation.kind == OperationKind.RESTORE and (operation.params or {}).get("_restoring"):
            self._roll_back_restore(operation, order, progress)
        elif operation.kind == OperationKind.MOVE and (operation.params or {}).get("_switching") \
                and not operation.params.get("_moved"):
            self._roll_back_move(operation, order, progress)
        elif rule is not None and order.status in rule.restored_from:
            self._restore_after_failed_terminate(operation, order, progress)
        if rule is not None and rule.fails_to is not None:
            order.status = rule.fails_to
        order.last_error, order.last_error_detail = reason, detail
        order.updated_at = utcnow()
        order.save()

    def _clean_failed_create(self, operation: Operation, order: Order, progress: Progress, detail: str) -> str:
        """Take the final backup of what a failed create made and remove it; returns ``detail``, plus why the
        clean-up did not finish."""
        project = None
        try:
            project = self.teardown_project(order)
            self._back_up_and_remove(operation, order, project, progress)
            return detail
        except LiveError as exc:
            log.warning("cleanup after failed create of %s did not finish: %s", order.instance, exc)
            progress(f"cleanup did not finish: {exc.public}")  # steps are shown to customers
            unfinished = f"{detail}; cleanup did not finish: {exc}"
        if project is None:
            return unfinished
        try:  # nothing may run under a failed order
            self.deployer.stop(project, progress)
        except LiveError as exc:
            log.warning("containers of failed order %s were not stopped: %s", order.instance, exc)
        return unfinished

    def _restore_after_failed_terminate(self, operation: Operation, order: Order, progress: Progress) -> None:
        """Start the stack of an active order again after its terminate failed; ``failed`` when it cannot run.

        Most failures come before anything was stopped (helper image missing, backup store unreachable): then
        the stack already runs as it should, and nothing is started or claimed.
        """
        try:
            untouched = self.deployer.plan(self.project(order), pull=False)[0].is_noop
        except LiveError:
            untouched = False  # cannot tell: converge, which reports its own failure
        if untouched:
            progress("terminate failed before anything was stopped: the order's containers keep running")
            return
        try:
            self._deploy(order, progress)
        except peewee.PeeweeException:
            raise
        except Exception as exc:  # noqa: BLE001 (whatever went wrong, the status must say the stack is down)
            log.warning("order %s: terminate failed and its stack could not be started again: %s", order.instance, exc)
            public = exc.public if isinstance(exc, LiveError) else "internal error"
            progress(f"the order's containers could not be started again: {public}")
            order.status = OrderStatus.FAILED
            record_event(f"order.{OrderStatus.FAILED}", "terminate failed and the order's containers could not be started again",
                         order=order, operation=operation, **{PRIVATE_EVENT_DATA: f"{type(exc).__name__}: {exc}"})
            return
        progress("terminate failed and nothing was deleted: the order's containers run again")
        record_event(f"order.{order.status}", "terminate failed and nothing was deleted: the order runs again",
                     order=order, operation=operation)

    # -- helpers ------------------------------------------------------------
    def _deploy(self, order: Order, progress: Progress, *, rerun_jobs: bool = False):
        """Place the order when it has no node yet (:meth:`place`), then converge its project; a host port of the
        order that something else took is moved.

        Between choosing a free port and the engine binding it, another process or another installation on the
        same engine may take it: each such port is avoided and the deploy tried again, at most
        :data:`~app.stacks.ports.PORT_MOVES` times.
        """
        self.place(order, progress)
        try:
            result, stack = self._converge(order, progress, rerun_jobs=rerun_jobs)
        finally:
            self._placing.pop(order.id, None)  # its services hold its reservation now (or it failed)
        record_expected(order, expected_services(stack, result.config_hashes))  # what should run now (drift)
        return result

    def _converge(self, order: Order, progress: Progress, *, rerun_jobs: bool = False):
        """:meth:`_deploy` once the order is placed; returns the deploy's result and the stack deployed."""
        if self.deployer.engine.publishes_host_ports:
            self._assign_ports(order)
        avoid: set[int] = set()
        while True:
            try:
                project = self.project(order)
                result = self.deployer.deploy(project, progress, rerun_jobs=rerun_jobs)
                break
            except HostPortInUse as exc:
                taken = exc.details.get("port")
                if taken not in (order.published_ports or {}).values() or len(avoid) >= PORT_MOVES:
                    raise
                # Something else took the order's port (while it was stopped, or since it was chosen): move it.
                progress(f"host port {taken} is taken by another process; moving the endpoint to a free port")
                avoid.add(taken)
                order.published_ports = {k: v for k, v in order.published_ports.items() if v != taken}
                self._assign_ports(order, avoid=avoid)
        if result.published_ports and result.published_ports != order.published_ports:
            order.published_ports = result.published_ports
            order.save()
        return result, project.stack

    def place(self, order: Order, progress: Progress) -> None:
        """Choose the swarm node of an order that has none yet (:func:`~app.stacks.placement.choose_node`) and
        record it on the order; nothing to do on one engine (no nodes) or once the order is placed.

        Raises :class:`~app.errors.NoCapacity` when no node may take it.
        """
        if order.node:
            return
        need = order_reservation(self.project(order).stack)
        with self._placement_lock:  # operations of different orders run in parallel threads
            nodes = self.deployer.engine.nodes()
            if not nodes:
                return
            pending: dict[str, int] = {}
            for other, (where, size) in self._placing.items():
                if other != order.id:
                    pending[where] = pending.get(where, 0) + size
            nodes = [dataclasses.replace(n, reserved_bytes=n.reserved_bytes + pending.get(n.id, 0)) for n in nodes]
            node = choose_node(nodes, need, pool=self.swarm_pool)
            order.node, order.node_name = node.id, node.hostname
            order.save()
            self._placing[order.id] = (node.id, need)
        progress(f"place the order on node {node.hostname} ({node.free_bytes // MIB} MiB unreserved, "
                 f"the order reserves {need // MIB} MiB)")
        record_event("order.placed", f"order {order.instance} is placed on node {node.hostname}", order=order,
                     node=node.id, node_name=node.hostname)

    def _assign_ports(self, order: Order, avoid: set[int] = frozenset()) -> None:
        """Record a host port per endpoint before deploying, so it survives recreates and restarts."""
        definition = self.catalog.definition(order.revision)
        wanted = {f"{e.service}:{e.port}" for e in definition.endpoints}
        ports = {k: v for k, v in (order.published_ports or {}).items() if k in wanted}
        missing = sorted(wanted - set(ports))
        if not missing and ports == (order.published_ports or {}):
            return
        with self._ports_lock:  # operations of different orders run in parallel threads
            taken = _ports_in_use(exclude=order.id) | self.routed_ports() | set(avoid)
            for key in missing:
                ports[key] = self.ports.allocate(taken | set(ports.values()))
            order.published_ports = ports
            order.save()

    def _succeeded(self, operation: Operation, order: Order, message: str) -> None:
        """Give the order the status that follows the operation's success (``message`` goes to the event)."""
        self._set_status(order, transition(operation.kind).status_after_success(order.status), operation, message)

    def _set_status(self, order: Order, status: OrderStatus, operation: Operation, message: str) -> None:
        order.status = status
        order.last_error = order.last_error_detail = None
        order.updated_at = utcnow()
        order.save()
        record_event(f"order.{status}", message, order=order, operation=operation)


def _ports_in_use(exclude: int) -> set[int]:
    """The host ports recorded on every order but ``exclude`` that is not terminated: what
    :meth:`~app.stacks.ports.PortAllocator.allocate` must not choose (with the ports the proxy may still
    route, :meth:`app.ingress.service.IngressService.ports_still_routed`)."""
    taken: set[int] = set()
    for other in Order.select(Order.published_ports).where((Order.id != exclude) & (Order.status != OrderStatus.TERMINATED)):
        taken.update((other.published_ports or {}).values())
    return taken


def _masked(exc: LiveError, secrets: dict | None) -> LiveError:
    """``exc`` with the order's ``secrets`` masked in its message, public text and details (a command's output may
    hold what it was given): what the operation's error, its events and the worker's log get."""
    exc.message = mask_secrets(exc.message, secrets)
    exc.public = mask_secrets(exc.public, secrets)
    exc.args = (exc.message,)
    exc.details = {key: mask_secrets(value, secrets) if isinstance(value, str) else value
                   for key, value in exc.details.items()}
    return exc
