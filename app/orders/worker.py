"""The worker process: executes operations recorded in the database.

One worker runs per deployment (a lock makes sure of it). APScheduler drives
two periodic jobs: dispatching operations and syncing the catalog. Operations
of one order run one at a time, in the order they were requested; those of
different orders run in parallel up to ``concurrency``. Transient errors are
retried with exponential backoff. Killed at any moment, the worker converges
on restart: operations left ``running`` go back to ``pending`` and are
re-executed by handlers that are idempotent. It writes a heartbeat that the
web side reads (``app/orders/heartbeat.py``), sends alert webhooks (``app/alerts.py``), and follows
the engine's events in a thread of its own (the engine mirror the views read, ``app/stacks/mirror.py``).
"""
from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import peewee
from apscheduler.schedulers.blocking import BlockingScheduler

from app.alerts import AlertDeliverer
from app.backups.drill import RestoreDrills
from app.backups.schedule import BackupScheduler
from app.catalog.catalog import Catalog
from app.errors import LiveError, WorkerAlreadyRunning
from app.ingress.service import IngressService
from app.models import Operation, Order, record_event, utcnow
from app.orders.drift import DriftChecker, mask_secrets
from app.orders.heartbeat import Heartbeat
from app.orders.lifecycle import UNFINISHED_STATES, OperationState
from app.orders.operations import OperationRunner
from app.orders.usage import UsageSampler
from app.presenters import PRIVATE_EVENT_DATA
from app.stacks.mirror import MirrorFollower

log = logging.getLogger(__name__)

PG_LOCK_KEY = 0x4C495645  # "LIVE"
MAX_BACKOFF_SECONDS = 60.0
#: How often due backups are looked for (cron has minute resolution), and how often the store is tidied.
BACKUP_SCHEDULE_SECONDS = 60.0
BACKUP_HOUSEKEEPING_SECONDS = 3600.0
#: How often the worker looks for a restore drill that is due (one runs at a time).
DRILL_SECONDS = 300.0
#: How often the worker looks for stuck operations and sends the webhooks that are due (app/alerts.py).
ALERT_SECONDS = 1.0


class Worker:
    def __init__(self, db: peewee.Database, runner: OperationRunner, catalog: Catalog, *, concurrency: int = 4,
                 poll_seconds: float = 1.0, retry_base_seconds: float = 2.0, catalog_sync_seconds: float = 300.0,
                 lease_seconds: float = 60.0, ingress: IngressService | None = None,
                 ingress_resync_seconds: float = 30.0, backups: BackupScheduler | None = None,
                 drills: RestoreDrills | None = None, usage: UsageSampler | None = None,
                 mirror: MirrorFollower | None = None, drift: DriftChecker | None = None,
                 drift_seconds: float = 2.0, alerts: AlertDeliverer | None = None):
        self.db = db
        # Stuck operations found and webhooks sent (app/alerts.py) every ALERT_SECONDS; None: neither.
        self.alerts = alerts
        # The background usage sampler (app/orders/usage.py); None: usage is not sampled.
        self.usage = usage
        # The engine mirror's follower (app/stacks/mirror.py): a thread from start to stop; None: no mirror.
        self.mirror = mirror
        # Drift found and repaired (app/orders/drift.py) every drift_seconds; None: not checked.
        self.drift = drift
        self.drift_seconds = drift_seconds
        # Scheduled backups and the store's housekeeping (app/backups/schedule.py); None: no schedule.
        self.backups = backups
        # Restore drills of products that opt in (app/backups/drill.py); None: no drills.
        self.drills = drills
        # Routes follow the operations (app/ingress/service.py); None or a disabled service: no ingress.
        self.ingress = ingress
        self.ingress_resync_seconds = ingress_resync_seconds
        self.runner = runner
        self.catalog = catalog
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.retry_base_seconds = retry_base_seconds
        self.catalog_sync_seconds = catalog_sync_seconds
        self.lease_seconds = lease_seconds
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.heartbeat = Heartbeat(self.worker_id, poll_seconds=poll_seconds, concurrency=concurrency)
        if mirror is not None:
            mirror.follower = self.worker_id
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="operation")
        self._in_flight: set[int] = set()
        self._busy_orders: set[int] = set()
        self._lock = threading.Lock()
        # One dispatch tick at a time: recover() must never see an operation claimed by another tick that is not in
        # _in_flight yet (it would put it back in the queue while it runs).
        self._dispatch_lock = threading.Lock()
        self._lock_file = None
        self._lock_connection = None
        self._scheduler: BlockingScheduler | None = None

    # -- process lifecycle --------------------------------------------------
    def run_forever(self) -> None:
        """Run until SIGTERM or SIGINT: take the lock, beat, recover, sync, then dispatch on a schedule.

        The signal handlers are installed first: a SIGTERM during start-up (``make run`` stopping a worker
        whose gunicorn died at once) must still end in a clean stop that removes the heartbeat, not in the
        default action that leaves a fresh "alive" row behind.
        """
        stopping = threading.Event()
        scheduler = BlockingScheduler(job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30})

        def stop(signum, _frame):
            log.info("signal %s: finishing running operations, then exiting", signum)
            stopping.set()
            if self.usage is not None:
                self.usage.stop()
            if scheduler.running:
                scheduler.shutdown(wait=False)

        def stop_if_asked() -> None:  # a signal that came just before the scheduler ran
            if stopping.is_set():
                scheduler.shutdown(wait=False)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.acquire_singleton_lock()
        try:
            with self.db.connection_context():
                self.heartbeat.start()
            if self.mirror is not None and not stopping.is_set():
                self.mirror.start()  # the views' status comes from it: first, before anything slow
            if not stopping.is_set():
                self.recover()
                self.sync_catalog_safely()
            scheduler.add_job(self.dispatch_safely, "interval", seconds=self.poll_seconds, id="dispatch-operations",
                              next_run_time=dt.datetime.now())
            scheduler.add_job(self.sync_catalog_safely, "interval", seconds=self.catalog_sync_seconds,
                              id="sync-catalog")
            scheduler.add_job(stop_if_asked, "interval", seconds=self.poll_seconds, id="stop-if-asked")
            if self.ingress is not None and self.ingress.enabled:
                scheduler.add_job(self.resync_ingress_safely, "interval", seconds=self.ingress_resync_seconds,
                                  id="resync-ingress", next_run_time=dt.datetime.now())
                # New orders get their "being prepared" page before their create starts (it may queue).
                scheduler.add_job(self.apply_pending_routes_safely, "interval", seconds=max(self.poll_seconds, 2.0),
                                  id="apply-pending-routes")
            if self.backups is not None:
                scheduler.add_job(self.queue_due_backups_safely, "interval", seconds=BACKUP_SCHEDULE_SECONDS,
                                  id="schedule-backups", next_run_time=dt.datetime.now())
                scheduler.add_job(self.backup_housekeeping_safely, "interval", seconds=BACKUP_HOUSEKEEPING_SECONDS,
                                  id="backup-housekeeping")
            if self.drills is not None:
                scheduler.add_job(self.restore_drill_safely, "interval", seconds=DRILL_SECONDS, id="restore-drills")
            if self.usage is not None:
                scheduler.add_job(self.sample_usage_safely, "interval", seconds=self.usage.tick_seconds,
                                  id="sample-usage", next_run_time=dt.datetime.now())
            if self.drift is not None:
                scheduler.add_job(self.check_drift_safely, "interval", seconds=self.drift_seconds, id="check-drift")
            if self.alerts is not None:  # own jobs: a slow receiver never holds an operation or the stuck check
                scheduler.add_job(self.find_stuck_safely, "interval", seconds=ALERT_SECONDS, id="find-stuck",
                                  next_run_time=dt.datetime.now())
                scheduler.add_job(self.deliver_alerts_safely, "interval", seconds=ALERT_SECONDS, id="deliver-alerts",
                                  next_run_time=dt.datetime.now())
            self._scheduler = scheduler
            if not stopping.is_set():
                log.info("worker %s started (concurrency %d)", self.worker_id, self.concurrency)
                scheduler.start()
        finally:
            self._drain()
            self._pool.shutdown(wait=True)
            if self.mirror is not None:
                self.mirror.stop()
            with self.db.connection_context():
                self.heartbeat.stop()
            log.info("worker %s stopped", self.worker_id)

    def _drain(self) -> None:
        """Wait for the running operations to finish, beating meanwhile: the worker is still at work."""
        while True:
            with self._lock:
                running = len(self._in_flight)
            if not running:
                return
            self._beat_safely()
            time.sleep(min(self.poll_seconds, 1.0))

    def _beat_safely(self) -> None:
        try:
            with self.db.connection_context():
                self.heartbeat.beat()
        except peewee.PeeweeException as exc:
            log.warning("heartbeat not written, will try again: %s", exc)

    def acquire_singleton_lock(self) -> None:
        """Two workers would run the same operations twice: refuse to start a second one."""
        if isinstance(self.db, peewee.PostgresqlDatabase):
            # A session-level advisory lock on a connection of its own, kept for the process's life
            # (peewee's pooled per-thread connections come and go).
            self._lock_connection = self.db._connect()
            with self._lock_connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", (PG_LOCK_KEY,))
                (acquired,) = cursor.fetchone()
            self._lock_connection.commit()
        else:
            path = Path(self.db.database + ".worker.lock") if self.db.database != ":memory:" else None
            if path is None:
                return
            self._lock_file = open(path, "w")
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                acquired = True
            except BlockingIOError:
                acquired = False
        if not acquired:
            raise WorkerAlreadyRunning("another worker is already running against this database")

    def recover(self) -> int:
        """Operations left running by a dead worker go back to the queue (or fail if they keep dying)."""
        recovered = 0
        # What runs here is read BEFORE the running rows: an operation that finishes in between is then in this
        # copy and skipped, never taken for a dead worker's (read after, it would be gone from the set while its
        # row still said running, and a last attempt's success would be failed and cleaned up). No operation
        # starts meanwhile: claims happen only in dispatch, under the same dispatch lock as this call.
        with self._lock:
            in_flight = set(self._in_flight)
        with self.db.connection_context():
            # Read in full before writing: see app/db.py on SQLite read snapshots.
            for operation in list(Operation.select().where(Operation.state == OperationState.RUNNING)):
                if operation.id in in_flight:
                    continue
                if operation.attempts >= operation.max_attempts:
                    self._fail(operation, f"the worker stopped during this operation {operation.attempts} times",
                               self._progress_recorder(operation))
                else:
                    Operation.update(state=OperationState.PENDING, next_attempt_at=utcnow(), lease_owner=None).where(
                        (Operation.id == operation.id) & (Operation.state == OperationState.RUNNING)).execute()
                    record_event("operation.recovered", f"{operation.kind} resumes after an interrupted attempt",
                                 order=operation.order, operation=operation)
                recovered += 1
        if recovered:
            log.info("recovered %d interrupted operation(s)", recovered)
        return recovered

    # -- dispatching --------------------------------------------------------
    def dispatch_safely(self) -> None:
        """One dispatch tick: beat, recover, claim what may run, start a requested catalog sync; never raises
        for an unreachable database or engine (logged; the next tick tries again)."""
        try:
            with self._dispatch_lock:
                with self.db.connection_context():
                    self.heartbeat.beat()
                self.recover()  # also catches operations whose result could not be recorded
                self.dispatch()
            self._sync_if_requested()
        except (peewee.PeeweeException, LiveError) as exc:
            log.warning("dispatch failed, will try again: %s", exc)

    def _dispatch_soon(self) -> None:
        """An operation finished, so a slot is free: run a dispatch tick now rather than at the next poll (up to
        ``poll_seconds`` later; a burst of creates lost that at every slot). Nothing when no scheduler runs."""
        scheduler = self._scheduler
        if scheduler is None or not scheduler.running:
            return
        try:
            # One waiting at most (replace_existing); several may run at once (slots that finish together), which
            # _dispatch_lock serialises: APScheduler would otherwise skip one with a warning.
            scheduler.add_job(self.dispatch_safely, id="dispatch-now", replace_existing=True,
                              max_instances=self.concurrency + 1)
        except Exception:  # noqa: BLE001 (the scheduler is shutting down: the next start recovers the queue)
            log.debug("no dispatch after operation: the scheduler is stopping", exc_info=True)

    def _sync_if_requested(self) -> None:
        """A webhook asked for a sync: run it now, off the dispatch thread when the scheduler runs."""
        with self.db.connection_context():
            requested = self.catalog.sync_requested()
        if not requested:
            return
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.add_job(self.sync_catalog_safely, id="sync-catalog-requested", replace_existing=True)
        else:
            self.sync_catalog_safely()

    def sync_catalog_safely(self) -> None:
        """Sync the catalog; never raises, so neither start-up nor the scheduler dies of catalog content.

        A source or database that cannot be reached is expected (logged as a
        warning, tried again at the next interval); anything else is a bug met
        by the catalog's content and is logged with its traceback. Either way the
        last catalog stays in use.
        """
        try:
            with self.db.connection_context():
                self.catalog.sync()
        except (peewee.PeeweeException, LiveError, OSError) as exc:
            log.warning("catalog sync failed, keeping the last catalog: %s", exc)
        except Exception:  # noqa: BLE001 (the worker outlives any catalog content)
            log.exception("catalog sync crashed, keeping the last catalog")

    def dispatch(self) -> list[int]:
        """Claim the operations that may run now and hand them to the pool."""
        with self._lock:
            capacity = self.concurrency - len(self._in_flight)
            busy = set(self._busy_orders)
        if capacity <= 0:
            return []
        claimed = []
        with self.db.connection_context():
            first_pending = (Operation.select(peewee.fn.MIN(Operation.id))
                             .where(Operation.state == OperationState.PENDING).group_by(Operation.order))
            running_orders = Operation.select(Operation.order).where(Operation.state == OperationState.RUNNING)
            candidates = (Operation.select(Operation.id, Operation.order)
                          .where(Operation.id.in_(first_pending) & (Operation.next_attempt_at <= utcnow())
                                 & Operation.order.not_in(running_orders))
                          .order_by(Operation.id).limit(capacity + len(busy)))
            for candidate in list(candidates):  # read in full before the claims write (see app/db.py)
                if len(claimed) >= capacity or candidate.order_id in busy:
                    continue
                now = utcnow()
                updated = (Operation.update(state=OperationState.RUNNING, attempts=Operation.attempts + 1, started_at=now,
                                            lease_owner=self.worker_id,
                                            lease_expires_at=now + dt.timedelta(seconds=self.lease_seconds))
                           .where((Operation.id == candidate.id) & (Operation.state == OperationState.PENDING)).execute())
                if updated == 1:
                    claimed.append(candidate.id)
                    busy.add(candidate.order_id)
                    with self._lock:
                        self._in_flight.add(candidate.id)
                        self._busy_orders.add(candidate.order_id)
                    self._pool.submit(self.execute, candidate.id, candidate.order_id)
        return claimed

    def run_until_idle(self, timeout: float = 120.0) -> None:
        """Dispatch until no operation is pending or running (for tests and one-shot CLI use)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.dispatch()
            with self._lock:
                idle = not self._in_flight
            if idle:
                with self.db.connection_context():
                    ready = Operation.select().where(Operation.state.in_(UNFINISHED_STATES)).exists()
                if not ready:
                    return
            time.sleep(0.05)
        raise TimeoutError(f"operations still unfinished after {timeout}s")

    # -- execution ----------------------------------------------------------
    def execute(self, operation_id: int, order_id: int) -> None:
        try:
            with self.db.connection_context():
                operation = Operation.get_by_id(operation_id)
                self._execute(operation)
        except Exception:
            # The database itself failed: the operation stays "running" and is
            # picked up again by recover() once this worker forgets it.
            log.exception("operation %s could not be recorded", operation_id)
        finally:
            with self._lock:
                self._in_flight.discard(operation_id)
                self._busy_orders.discard(order_id)
            self._dispatch_soon()

    def queue_due_backups_safely(self) -> None:
        """Queue the scheduled backups that are due (app/backups/schedule.py); never raises."""
        self._periodic_job("queueing scheduled backups", self.backups.queue_due)

    def backup_housekeeping_safely(self) -> None:
        """Delete expired final backups and abandoned uploads; never raises (a store that is down: next hour)."""
        self._periodic_job("backup housekeeping", self.backups.housekeeping)

    def restore_drill_safely(self) -> None:
        """Run the most overdue restore drill, if any; never raises."""
        self._periodic_job("restore drill", self.drills.run_due)

    def check_drift_safely(self) -> None:
        """Compare what runs with what should and repair or report it (app/orders/drift.py); never raises."""
        self._periodic_job("drift check", self.drift.check)

    def find_stuck_safely(self) -> None:
        """Record operations running past LIVE_OPERATION_STUCK_SECONDS, which queues their alerts (app/alerts.py);
        never raises."""
        self._periodic_job("stuck operations check", self.alerts.record_stuck)

    def deliver_alerts_safely(self) -> None:
        """Send the webhooks that are due (app/alerts.py); never raises."""
        self._periodic_job("alert delivery", self.alerts.send)

    def resync_ingress_safely(self) -> None:
        """The periodic compare-and-repair of the proxy's routes (app/ingress/service.py); never raises."""
        self._periodic_job("ingress resync", self.ingress.resync)

    def apply_pending_routes_safely(self) -> None:
        """Write the routes still pending (new orders, failed writes); never raises."""
        self._periodic_job("applying pending routes", self.ingress.apply_pending)

    def sample_usage_safely(self) -> None:
        """Sample the orders' usage when due (memory/CPU, and disk: app/orders/usage.py); never raises."""
        self._periodic_job("usage sample", self.usage.tick)

    def _periodic_job(self, what: str, job) -> None:
        """Run a periodic job in a database connection; log and swallow its failure (the next interval tries again)."""
        try:
            with self.db.connection_context():
                job()
        except LiveError as exc:  # the store or the proxy is down: expected, the next interval tries again
            log.warning("%s failed: %s", what, exc)
        except Exception:  # the database, or a bug: the next interval tries again
            log.exception("%s failed", what)

    def _route(self, order_id: int, finishing: int | None = None) -> None:
        """Apply the order's route as it is now (``finishing``: an operation about to be recorded as succeeded,
        counted as finished); the proxy being down never fails or holds the operation."""
        if self.ingress is None:
            return
        try:
            self.ingress.apply(order_id, finishing=finishing)
        except peewee.PeeweeException:
            raise
        except Exception:
            log.exception("route of order %s not applied", order_id)

    def _execute(self, operation: Operation) -> None:
        self._route(operation.order_id)  # "being prepared" while the stack is (re)deployed
        routed = False
        try:
            routed = self._run(operation)
        finally:
            if not routed:  # failed, retried later, or the database went away
                self._route(operation.order_id)

    def _run(self, operation: Operation) -> bool:
        """Run the operation and record how it ended; True when it succeeded and its route was applied first."""
        order = operation.order
        log.info("operation %s: %s of %s (attempt %d/%d)", operation.id, operation.kind, order.instance,
                 operation.attempts, operation.max_attempts)
        progress = self._progress_recorder(operation)
        try:
            self.runner.run(operation, progress)
        except LiveError as exc:
            public, detail = _masked(operation, *failure_texts(operation.id, exc))
            if exc.transient and operation.attempts < operation.max_attempts:
                self._schedule_retry(operation, public, detail)
            else:
                self._fail(operation, public, progress, detail=detail)
            return False
        except peewee.PeeweeException:
            raise  # the database is gone; leave the operation to recovery
        except Exception as exc:  # a bug: fail loudly, never retry blindly
            log.exception("operation %s crashed", operation.id)  # the traceback is for the operators only
            public, detail = _masked(operation, *failure_texts(operation.id, exc))
            self._fail(operation, public, progress, detail=detail)
            return False
        # The route first: a caller waiting for the operation opens the order's URL as soon as it succeeded.
        self._route(operation.order_id, finishing=operation.id)
        Operation.update(state=OperationState.SUCCEEDED, finished_at=utcnow(), error=None, error_detail=None,
                         lease_owner=None).where(Operation.id == operation.id).execute()
        record_event("operation.succeeded", f"{operation.kind} succeeded", order=order, operation=operation)
        log.info("operation %s: %s of %s succeeded", operation.id, operation.kind, order.instance)
        return True

    def _progress_recorder(self, operation: Operation):
        steps = list(operation.steps or [])
        lock = threading.Lock()

        def record(snapshot: list) -> None:
            Operation.update(steps=snapshot, lease_expires_at=utcnow() + dt.timedelta(seconds=self.lease_seconds)).where(
                Operation.id == operation.id).execute()

        def progress(message: str) -> None:
            with lock:  # the deployer reports from several threads at once
                steps.append({"at": utcnow().isoformat(timespec="seconds") + "Z", "attempt": operation.attempts,
                              "message": message})
                snapshot = list(steps)
            if self.db.is_closed():
                # A deployer thread: open a connection for this write and give it back, so
                # short-lived threads never keep pooled connections.
                with self.db.connection_context():
                    record(snapshot)
            else:
                record(snapshot)
            log.info("operation %s (%s): %s", operation.id, operation.order.instance, message)

        return progress

    def _schedule_retry(self, operation: Operation, reason: str, detail: str | None = None) -> None:
        """Put the operation back in the queue after a transient failure (``reason`` public, ``detail`` private)."""
        detail = detail or reason
        delay = min(self.retry_base_seconds * 2 ** (operation.attempts - 1), MAX_BACKOFF_SECONDS)
        Operation.update(state=OperationState.PENDING, error=reason, error_detail=detail, lease_owner=None,
                         next_attempt_at=utcnow() + dt.timedelta(seconds=delay)).where(
            Operation.id == operation.id).execute()
        record_event("operation.retry", f"{operation.kind} will be retried in {delay:.0f}s: {reason}",
                     order=operation.order, operation=operation, delay=delay, **_private_event_data(reason, detail))
        log.warning("operation %s: transient failure, retry in %.1fs: %s", operation.id, delay, detail)

    def _fail(self, operation: Operation, reason: str, progress, *, detail: str | None = None) -> None:
        """Fail the operation for good: let the runner clean up, then record it.

        ``reason`` is the public text (customers and WHMCS see it), ``detail``
        the private one (operators; defaults to ``reason``).
        """
        detail = detail or reason
        try:
            self.runner.on_failure(operation, reason, progress, detail=detail)
        except LiveError as exc:
            log.warning("operation %s: clean-up after failure did not finish: %s", operation.id, exc)
        self._finish_failed(operation, reason, detail)

    def _finish_failed(self, operation: Operation, reason: str, detail: str | None = None) -> None:
        """Record the failure on the operation and in the event log; the log line has the detail.

        One transaction: the operation is never ``failed`` without its ``operation.failed`` event and so without
        its alert rows (app/alerts.py); a worker killed before the commit leaves it ``running``, and recovery
        runs it again."""
        detail = detail or reason
        with self.db.atomic():
            Operation.update(state=OperationState.FAILED, error=reason, error_detail=detail, finished_at=utcnow(),
                             lease_owner=None).where(Operation.id == operation.id).execute()
            record_event("operation.failed", f"{operation.kind} failed: {reason}", order=operation.order,
                         operation=operation, **_private_event_data(reason, detail))
        log.error("operation %s: %s of %s failed: %s", operation.id, operation.kind, operation.order.instance, detail)


def failure_texts(operation_id: int, exc: BaseException) -> tuple[str, str]:
    """The public and the private text of an operation that failed with ``exc``.

    A Live error gives its public text (with the operation id when that
    text hides something, so operators can find the detail) and its message.
    Anything else is a bug: customers get a neutral sentence, operators the
    exception's type and text (the traceback is in the log).
    """
    if isinstance(exc, LiveError):
        public, detail = exc.public, str(exc)
        return (public if public == detail else f"{public} (operation {operation_id})"), detail
    return (f"internal error in operation {operation_id}; the operators have the details",
            f"{type(exc).__name__}: {exc}")


def _masked(operation: Operation, public: str, detail: str) -> tuple[str, str]:
    """``public`` and ``detail`` with the order's secrets masked (:func:`~app.orders.drift.mask_secrets`): the
    operation's, its events', the order's last error and the worker log's texts of a failure. A command's output or
    an engine's message may hold a generated password or the customer's own (also one stored while it ran)."""
    stored = Order.select(Order.secrets).where(Order.id == operation.order_id).first()
    values = [*(operation.order.secrets or {}).values(), *((stored.secrets or {}).values() if stored else ())]
    secrets = dict(enumerate(values))
    return mask_secrets(public, secrets), mask_secrets(detail, secrets)


def _private_event_data(reason: str, detail: str) -> dict[str, str]:
    """Event data holding the private detail when it says more than the public text (see PRIVATE_EVENT_DATA)."""
    return {PRIVATE_EVENT_DATA: detail} if detail != reason else {}
