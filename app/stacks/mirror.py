"""The engine mirror: the worker follows the engine's event stream and keeps a table of every container's state
(``observed_container``, :class:`~app.models.ObservedContainer`); views read that table, never the engine.

**The follower** (:class:`MirrorFollower`, a thread of the worker, ``app/orders/worker.py``):

1. opens the engine's stream of container events for this installation's label (:meth:`Engine.events`), with
   ``since`` = the engine time of the last event it applied (``engine_mirror.last_event_at``; none at the very first
   start), so nothing that happened while it was away is lost (the Docker engine holds its last 256 events);
2. lists every container by label once (the truth after any gap: a restarted worker, a restarted engine) and
   writes the rows that differ from the table, deleting those of containers that are gone;
3. applies the events as they come, in batches (:meth:`MirrorFollower.apply_batch`): the engine calls of a batch
   first, then its rows and the point to resume from in one transaction; only a row that changes is written; a
   ``die`` the engine did not cause by a ``kill`` (a stop, a removal by force; the kill is kept on the row,
   ``killed_at``, so the next worker knows it too) is a death (``deaths``, ``last_died_at``), and so is a failed
   swarm task;
4. beats ``engine_mirror.beat_at`` every :data:`BEAT_SECONDS` with ``connected`` true, each beat after the engine
   answered a ping (a hung engine or swarm manager stops the beat, and the mirror goes stale); and lists again
   every :data:`RESYNC_SECONDS` while the stream is quiet: a stream that stopped delivering without breaking (a
   half-open connection to a remote engine, a hung swarm poll) leaves rows wrong for at most that long, and when
   the listing finds changes no event reported, the follower reconnects;
5. when the stream breaks (the engine restarts, cannot be reached, the database fails), writes ``connected`` false
   with the error and starts again from 1 after a backoff (:data:`BACKOFF_BASE_SECONDS` doubling up to
   :data:`BACKOFF_MAX_SECONDS`). A worker SIGKILLed leaves ``connected`` true, but its beat ages: the next worker's
   follower takes the row over and resumes from ``last_event_at``.

In swarm mode a row is a swarm service; the adapter's stream polls services and tasks (2 manager calls) every
LIVE_MIRROR_POLL_SECONDS and at every manager event, and reports each service whose state changed
(:data:`~app.stacks.engine.LISTED`), removed services and failed tasks (``die``).

**The readers** (every view): :func:`freshness` (is the mirror fresh: connected, and beaten within
LIVE_MIRROR_STALE_SECONDS) and :func:`observed` (the rows of some orders, one query). A view shows runtime states only
from a fresh mirror, else ``unknown`` (``app/presenters.py`` :func:`~app.presenters.runtime_view`): it never shows
a stale ``running``.
"""
from __future__ import annotations

import calendar
import datetime as dt
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import peewee

from app.db import PreparedSelect
from app.errors import EngineUnavailable, LiveError, NotFound
from app.models import EngineMirror, ObservedContainer, utcnow
from app.stacks.engine import LISTED, RUNNING_STATES, ContainerState, Engine, EngineEvent
from app.stacks.project import CONFIG_HASH_LABEL, deployment_selector, order_id_of, service_of

log = logging.getLogger(__name__)

#: How often the follower moves ``engine_mirror.beat_at`` while connected (seconds).
BEAT_SECONDS = 2.0
#: LIVE_MIRROR_STALE_SECONDS's default: a mirror whose beat is older is not fresh (views say ``unknown``).
DEFAULT_STALE_SECONDS = 10.0
#: LIVE_MIRROR_POLL_SECONDS's default: how often a swarm's tasks are polled (seconds).
DEFAULT_POLL_SECONDS = 2.0
#: Reconnection backoff: BASE × 2^(failures − 1) seconds, at most MAX.
#: How often the follower lists every container again while its stream is quiet (one engine call): the bound on how
#: long a silently dead stream can leave rows wrong.
RESYNC_SECONDS = 30.0
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0
#: At most this many events are applied in one database transaction.
BATCH_EVENTS = 200
#: A ``die`` at most this long (engine seconds) after the container's last ``kill`` is the end of a stop or a removal,
#: not a death. ``docker stop`` sends SIGKILL (a second ``kill``) when the grace period ends, so its ``die`` follows
#: its last ``kill`` within the service's ``stop_grace_period``; a kill that did not end the container (a signal it
#: handles) stops excusing a crash after this long.
KILL_SECONDS = 300.0

#: The columns of a row the engine decides (compared to decide whether a row changed).
_FIELDS = ("order_id", "service", "name", "state", "health", "exit_code", "config_hash", "node", "error")


# -- readers ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MirrorFreshness:
    """How fresh the mirror of a deployment is (:func:`freshness`).

    ``fresh``: the follower is connected and its beat is at most ``stale_after`` seconds old; only then may a view
    show what the rows say. ``age_seconds`` is the beat's age (never negative; None without a row: no worker ever
    followed the engine), ``beat_at``/``last_event_at``/``last_listing_at`` naive UTC, ``follower`` the worker
    (``host:pid``), ``error`` why the stream is down (private text).
    """

    fresh: bool
    connected: bool
    age_seconds: float | None
    stale_after: float
    beat_at: dt.datetime | None = None
    follower: str | None = None
    error: str | None = None
    last_event_at: dt.datetime | None = None
    last_listing_at: dt.datetime | None = None


def freshness(deployment: str, *, stale_seconds: float = DEFAULT_STALE_SECONDS,
              now: dt.datetime | None = None) -> MirrorFreshness:
    """The freshness of ``deployment``'s mirror (one query): fresh only if connected and beaten within
    ``stale_seconds`` (LIVE_MIRROR_STALE_SECONDS). ``now`` is naive UTC (default: now). Raises peewee's errors."""
    row = EngineMirror.get_or_none(EngineMirror.deployment == deployment)
    if row is None:
        return _no_follower(stale_seconds)
    return _freshness_of(row.connected, row.beat_at, row.follower, row.error, row.last_event_at, row.last_listing_at,
                         stale_seconds=stale_seconds, now=now)


def observed(order_ids: Iterable[int]) -> dict[int, dict[str, ObservedContainer]]:
    """The mirror's rows of the orders ``order_ids`` (one query): ``{order_id: {service: ObservedContainer}}``; an
    order without rows is absent. Where a service has two containers (one engine, while the deployer swaps a
    recreated container in), the running one wins, else the one changed last."""
    ids = sorted(set(order_ids))
    found: dict[int, dict[str, ObservedContainer]] = {}
    if not ids:
        return found
    rows = ObservedContainer.select().where(ObservedContainer.order_id.in_(ids) & ObservedContainer.service.is_null(False))
    for row in rows:
        services = found.setdefault(row.order_id, {})
        other = services.get(row.service)
        if other is None or _rank(row) > _rank(other):
            services[row.service] = row
    return found


def _rank(row: ObservedContainer) -> tuple:
    return (row.state in RUNNING_STATES, row.changed_at or dt.datetime.min, row.id or 0)


@dataclass(frozen=True)
class MirrorReading:
    """What a view needs from the mirror for one order: its freshness and the order's rows by service."""

    freshness: MirrorFreshness
    containers: dict[str, ObservedContainer] = field(default_factory=dict)


def readings(deployment: str, order_ids: Iterable[int], *,
             stale_seconds: float = DEFAULT_STALE_SECONDS) -> dict[int, MirrorReading]:
    """:class:`MirrorReading` of each order of ``order_ids``: the mirror's freshness and the orders' rows in ONE
    query whatever their number (the ``engine_mirror`` row left-joined with the orders' ``observed_container``
    rows; :func:`freshness` and :func:`observed` give the same answers). Raises peewee's errors."""
    ids = sorted(set(order_ids))
    if len(ids) == 1:  # the status view's case: compiled once
        found_rows = _ONE_ORDER_READING.rows(deployment=deployment, order_id=ids[0])
    else:
        on = (ObservedContainer.order_id.in_(ids) & ObservedContainer.service.is_null(False)) if ids else (
            ObservedContainer.id.is_null(True) & ObservedContainer.id.is_null(False))  # no order: no row joins
        found_rows = _reading_query(deployment, on)
    found: dict[int, dict[str, ObservedContainer]] = {}
    state = None
    for values in found_rows:
        if state is None:
            state = _freshness_of(*values[:len(_MIRROR_COLUMNS)], stale_seconds=stale_seconds)
        data = dict(zip(_ROW_COLUMNS, values[len(_MIRROR_COLUMNS):]))
        if data["id"] is None:
            continue
        row = ObservedContainer(**data)
        services = found.setdefault(row.order_id, {})
        other = services.get(row.service)
        if other is None or _rank(row) > _rank(other):
            services[row.service] = row
    if state is None:
        state = _no_follower(stale_seconds)
    return {order_id: MirrorReading(state, found.get(order_id, {})) for order_id in order_ids}


_ROW_COLUMNS = ("id", "container_id", "order_id", "service", "name", "state", "health", "exit_code", "config_hash",
                "node", "error", "deaths", "last_died_at", "changed_at", "observed_at")
_MIRROR_COLUMNS = ("connected", "beat_at", "follower", "error", "last_event_at", "last_listing_at")


def _reading_query(deployment: Any, on: peewee.Expression) -> peewee.ModelSelect:
    """The ``engine_mirror`` row of ``deployment`` left-joined with the ``observed_container`` rows ``on`` selects."""
    return (EngineMirror.select(*(getattr(EngineMirror, name) for name in _MIRROR_COLUMNS),
                                *(getattr(ObservedContainer, name) for name in _ROW_COLUMNS))
            .join(ObservedContainer, peewee.JOIN.LEFT_OUTER, on=on)
            .where(EngineMirror.deployment == deployment).tuples())


_ONE_ORDER_READING = PreparedSelect(
    lambda deployment, order_id: _reading_query(
        deployment, (ObservedContainer.order_id == order_id) & ObservedContainer.service.is_null(False)),
    "deployment", "order_id")


def _no_follower(stale_seconds: float) -> MirrorFreshness:
    return MirrorFreshness(fresh=False, connected=False, age_seconds=None, stale_after=stale_seconds,
                           error="no worker has followed the engine yet")


def _freshness_of(connected, beat_at, follower, error, last_event_at, last_listing_at, *, stale_seconds: float,
                  now: dt.datetime | None = None) -> MirrorFreshness:
    age = max(0.0, ((now or utcnow()) - beat_at).total_seconds())
    return MirrorFreshness(fresh=bool(connected) and age <= stale_seconds, connected=bool(connected),
                           age_seconds=round(age, 3), stale_after=stale_seconds, beat_at=beat_at, follower=follower,
                           error=error, last_event_at=last_event_at, last_listing_at=last_listing_at)


# -- the follower -------------------------------------------------------------------------------------------------
def engine_time(value: dt.datetime) -> float:
    """A naive UTC time as engine time (seconds since the epoch)."""
    return calendar.timegm(value.timetuple()) + value.microsecond / 1e6


def utc_of(seconds: float) -> dt.datetime:
    """Engine time (seconds since the epoch) as naive UTC."""
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).replace(tzinfo=None)


_END = object()  # the engine ended its stream
_KEEP = object()  # MirrorFollower._put: leave ``killed_at`` as it is


class MirrorFollower:
    """Keeps ``observed_container`` and the ``engine_mirror`` row of ``deployment`` up to date (module docstring).

    ``follower`` names the worker (``host:pid``). :meth:`start` runs :meth:`run` in a daemon thread,
    :meth:`stop` ends it (the row is left ``connected`` false: no worker follows the engine any more). Each step
    opens its own database connection. ``sleep``/``clock`` are for tests.
    """

    def __init__(self, engine: Engine, db: peewee.Database, deployment: str, follower: str, *,
                 beat_seconds: float = BEAT_SECONDS, resync_seconds: float = RESYNC_SECONDS,
                 backoff_base: float = BACKOFF_BASE_SECONDS,
                 backoff_max: float = BACKOFF_MAX_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.engine = engine
        self.db = db
        self.deployment = deployment
        self.follower = follower
        self.beat_seconds = beat_seconds
        self.resync_seconds = resync_seconds
        self._last_sync: float | None = None
        self._events_since_sync = 0
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # container id -> {field: value, "deaths", "last_died_at", "killed_at"} as in the table (loaded at each listing)
        self._rows: dict[str, dict[str, Any]] = {}
        self._last_time: float | None = None  # latest engine time of the events applied (not bridge-clock ones)
        self._resumed_from: float | None = None  # the ``since`` of the current stream: events up to it are replays
        self._last_beat: float | None = None
        self._connected_once = False  # the current connection got as far as its listing
        #: Counters for tests and benchmarks: rows written (inserted, updated, deleted), events applied, connections.
        self.writes = 0
        self.events_applied = 0
        self.connections = 0
        self.failures = 0

    # -- thread -----------------------------------------------------------------
    def start(self) -> threading.Thread:
        """Run :meth:`run` in a daemon thread named ``engine-mirror``."""
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="engine-mirror", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the follower to stop and wait for it (at most ``timeout`` seconds)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """Follow until :meth:`stop`: connect, list, apply events, beat; on a failure mark the mirror disconnected
        and try again after the backoff. Never raises."""
        failures = 0
        while not self._stop.is_set():
            try:
                self.follow()
            except Exception as exc:  # noqa: BLE001 (the engine, the database, or a bug: the mirror says so, retries)
                if self._stop.is_set():
                    break
                failures = 1 if self._connected_once else failures + 1
                self._connected_once = False
                self.failures += 1
                delay = min(self.backoff_base * 2 ** (failures - 1), self.backoff_max)
                if isinstance(exc, (LiveError, peewee.PeeweeException)):
                    log.warning("engine mirror disconnected, reconnecting in %.1fs: %s", delay, exc)
                else:
                    log.exception("engine mirror crashed, reconnecting in %.1fs", delay)
                self._mark_disconnected(f"{type(exc).__name__}: {exc}" if not isinstance(exc, LiveError) else str(exc))
                self._stop.wait(delay)
        self._mark_disconnected("the worker stopped following the engine")

    def follow(self) -> None:
        """One connection: claim the row, open the stream from the last event, list, then apply events and beat
        until :meth:`stop` (returns) or the stream breaks (raises)."""
        with self.db.connection_context():
            since = self._claim()
        with self.engine.events(deployment_selector(self.deployment), since) as stream:
            items: queue.Queue = queue.Queue()
            reader = threading.Thread(target=_read_into, args=(stream, items), name="engine-mirror-reader",
                                      daemon=True)
            reader.start()
            with self.db.connection_context():
                self.sync()
            self._connected_once = True
            self.connections += 1
            while not self._stop.is_set():
                try:
                    first = items.get(timeout=min(0.5, self.beat_seconds))
                except queue.Empty:
                    first = None
                batch = []
                item = first
                while item is not None:
                    if item is _END:
                        raise EngineUnavailable("the engine ended its event stream")
                    if isinstance(item, BaseException):
                        raise item
                    batch.append(item)
                    if len(batch) >= BATCH_EVENTS:
                        break
                    try:
                        item = items.get_nowait()
                    except queue.Empty:
                        item = None
                with self.db.connection_context():
                    if batch:
                        self._events_since_sync += len(batch)
                        self.apply_batch(batch)
                    elif self._last_sync is not None and self._clock() - self._last_sync >= self.resync_seconds:
                        self._resync()
                    self.beat()
        reader.join(5.0)  # leaving the stream's context closed it: the reader thread ends

    # -- steps (also called by tests, with a database connection open) -------------------------------------------
    def _claim(self) -> float | None:
        """Take the deployment's row (creating it) for this follower; returns the ``since`` to resume from."""
        now = utcnow()
        row = EngineMirror.get_or_none(EngineMirror.deployment == self.deployment)
        if row is None:
            EngineMirror.create(deployment=self.deployment, follower=self.follower, connected=False, started_at=now,
                                beat_at=now)
            since = None
        else:
            EngineMirror.update(follower=self.follower, started_at=now).where(
                EngineMirror.deployment == self.deployment).execute()
            since = engine_time(row.last_event_at) if row.last_event_at is not None else None
        if self._last_time is None and since is not None:
            # The table's time has microseconds; the engine's may have more digits: what is at most 1 µs later was
            # applied already (the stream replays from ``since`` inclusive).
            self._last_time = since + 1e-6
        self._resumed_from = self._last_time if self._last_time is not None else since
        return self._resumed_from

    def sync(self) -> int:
        """The full listing by label: write the rows that differ, delete those of containers gone; mark the mirror
        connected. Returns the rows written."""
        listed = self.engine.list_containers(deployment_selector(self.deployment))
        self._rows = {row.container_id: _as_cache(row) for row in ObservedContainer.select()}
        written = 0
        seen = set()
        with self.db.atomic():
            for container in listed:
                if service_of(container.labels) is None or order_id_of(container.labels) is None:
                    continue  # an archive helper, or not an order's container
                seen.add(container.id)
                written += self._put(container.id, _values_of_state(container))
            for gone in [cid for cid in self._rows if cid not in seen]:
                written += self._delete(gone)
            now = utcnow()
            EngineMirror.update(connected=True, error=None, beat_at=now, last_listing_at=now,
                                follower=self.follower).where(EngineMirror.deployment == self.deployment).execute()
        self._last_beat = self._last_sync = self._clock()
        self._events_since_sync = 0
        log.log(logging.DEBUG if self._connected_once else logging.INFO,  # a resync of a live connection: debug
                "engine mirror listed %d container(s), %d row(s) written", len(seen), written)
        return written

    def _resync(self) -> None:
        """The periodic listing of a quiet stream (:data:`RESYNC_SECONDS`): rows it had to correct although no event
        came since the last listing mean the stream stopped delivering: raises EngineUnavailable to reconnect."""
        quiet = self._events_since_sync == 0
        written = self.sync()
        if written and quiet:
            raise EngineUnavailable(f"the engine's event stream reported nothing while {written} container(s) "
                                    "changed: reconnecting")

    def beat(self, force: bool = False) -> bool:
        """Move ``beat_at`` (and record the last event's time) at most every ``beat_seconds``, each time after the
        engine answered a ping (``force``: without one); returns whether it wrote. Raises the engine's
        EngineUnavailable when it does not answer: the beat stops and the mirror goes stale."""
        now = self._clock()
        if not force and self._last_beat is not None and now - self._last_beat < self.beat_seconds:
            return False
        if not force:
            self.engine.ping()
        values: dict[Any, Any] = {EngineMirror.beat_at: utcnow(), EngineMirror.connected: True,
                                  EngineMirror.error: None}
        if self._last_time is not None:
            values[EngineMirror.last_event_at] = utc_of(self._last_time)
        EngineMirror.update(values).where(EngineMirror.deployment == self.deployment).execute()
        self._last_beat = now
        return True

    def apply_batch(self, events: list[EngineEvent]) -> int:
        """Apply ``events`` (at most :data:`BATCH_EVENTS`) in ONE database transaction, together with the point to
        resume from (``engine_mirror.last_event_at``); returns the rows written.

        The engine calls the events need (an inspect per started container) are made first, before the transaction:
        an engine slow to answer (its timeout is minutes) never holds the database's write lock (SQLite's is one for
        the whole database). The rows and the resume point commit together: a worker killed at any moment either
        applied the batch and resumes after it, or did not and replays it, so no death is counted twice. Raises the
        engine's and peewee's errors (the transaction is rolled back, and the resume point in memory with it)."""
        inspected = self._inspect_started(events)
        before = self._last_time
        written = 0
        try:
            with self.db.atomic():
                for event in events:
                    written += self.apply(event, inspected)
                if self._last_time is not None and self._last_time != before:
                    EngineMirror.update(last_event_at=utc_of(self._last_time)).where(
                        EngineMirror.deployment == self.deployment).execute()
        except BaseException:
            self._last_time = before  # not committed: the next connection replays the batch
            raise
        return written

    def _inspect_started(self, events: list[EngineEvent]) -> dict[str, ContainerState | None]:
        """The state of each order container ``events`` start (one inspect per container, however many starts; None:
        gone already). Replays are not inspected: :meth:`apply` skips them."""
        found: dict[str, ContainerState | None] = {}
        for event in events:
            if (event.action not in ("start", "restart") or event.container_id in found or self._replayed(event)
                    or service_of(event.labels) is None or order_id_of(event.labels) is None):
                continue
            try:
                found[event.container_id] = self.engine.inspect_container(event.container_id)
            except NotFound:
                found[event.container_id] = None  # already gone: its destroy follows
        return found

    def _replayed(self, event: EngineEvent) -> bool:
        """Whether ``event`` was applied before the stream resumed (at or before its ``since``)."""
        return (event.action != LISTED and not event.bridge_clock and self._resumed_from is not None
                and event.time <= self._resumed_from)

    def apply(self, event: EngineEvent, inspected: dict[str, ContainerState | None] | None = None) -> bool:
        """Apply one event to the table; returns whether a row was written. :meth:`apply_batch` calls it in its
        transaction, with ``inspected`` (:meth:`_inspect_started`) for a ``start``; without, a ``start`` inspects
        the container itself (tests).

        Events at or before the ``since`` the stream resumed from (a replay after a reconnection) are skipped,
        except :data:`LISTED` ones (a whole state: idempotent) and those on the bridge's clock
        (:attr:`~app.stacks.engine.EngineEvent.bridge_clock`: a swarm poll's observations, which neither replay
        nor move the point to resume from). An event older than one applied on the same stream is applied (a
        swarm's failed task reported by a later poll than a newer one); the point to resume from is the latest
        engine time applied."""
        if event.action != LISTED and not event.bridge_clock:
            if self._replayed(event):
                return False
            if self._last_time is None or event.time > self._last_time:
                self._last_time = event.time
        self.events_applied += 1
        cid = event.container_id
        action = event.action
        if action == LISTED:
            if event.state is None or service_of(event.state.labels) is None or order_id_of(event.state.labels) is None:
                return False
            return bool(self._put(cid, _values_of_state(event.state)))
        if action == "destroy":
            return bool(self._delete(cid))
        if service_of(event.labels) is None or order_id_of(event.labels) is None:
            return False  # an archive helper
        current = self._rows.get(cid)
        values = dict(current) if current is not None else _values_of_labels(event)
        if action == "kill":  # on the row: the next worker knows it too
            return bool(self._put(cid, values, killed_at=utc_of(event.time)))
        if action in ("start", "restart"):
            if inspected is not None and cid in inspected:
                state = inspected[cid]
            else:
                try:
                    state = self.engine.inspect_container(cid)
                except NotFound:
                    state = None
            if state is None:
                return False  # already gone: its destroy follows
            return bool(self._put(cid, _values_of_state(state), killed_at=None))
        if action == "create":
            values.update(state="created", exit_code=None)
        elif action == "die":
            if event.state is not None:  # a swarm's failed task: the service as the same poll saw it (a new task)
                values = _values_of_state(event.state)
            else:
                values.update(state="exited", exit_code=_int(event.attributes.get("exitCode")))
            killed_at = current.get("killed_at") if current is not None else None
            death = killed_at is None or event.time - engine_time(killed_at) > KILL_SECONDS
            return bool(self._put(cid, values, died_at=utc_of(event.time) if death else None, killed_at=None))
        elif action == "stop":
            if values.get("state") in RUNNING_STATES:
                values.update(state="exited")
        elif action == "pause":
            values.update(state="paused")
        elif action == "unpause":
            values.update(state="running")
        elif action.startswith("health_status"):
            health = action.partition(":")[2].strip() or event.attributes.get("health_status")
            if not health:
                return False
            values.update(health=health.replace("health: ", ""))
        elif action == "rename":
            values.update(name=event.attributes.get("name") or values.get("name"))
        else:
            return False  # exec_*, attach, resize, top, oom (its die follows), ...
        return bool(self._put(cid, values))

    # -- writes -------------------------------------------------------------------------------------------------
    def _put(self, cid: str, values: dict[str, Any], died_at: dt.datetime | None = None,
             killed_at: Any = _KEEP) -> int:
        """Insert or update the row of ``cid`` when ``values`` (or a death, or ``killed_at``: a kill's time, None to
        clear it, :data:`_KEEP` to leave it) change it; returns rows written."""
        current = self._rows.get(cid)
        wanted = {name: values.get(name) for name in _FIELDS}
        was_killed_at = current.get("killed_at") if current is not None else None
        kill_changes = killed_at is not _KEEP and was_killed_at != killed_at
        if (current is not None and died_at is None and not kill_changes
                and all(current[name] == wanted[name] for name in _FIELDS)):
            return 0
        now = utcnow()
        if current is None:
            deaths = 1 if died_at else 0
            killed = None if killed_at is _KEEP else killed_at
            ObservedContainer.insert(container_id=cid, **wanted, deaths=deaths, last_died_at=died_at, changed_at=now,
                                     observed_at=now, killed_at=killed).on_conflict(
                conflict_target=[ObservedContainer.container_id],
                update={**{getattr(ObservedContainer, name): wanted[name] for name in _FIELDS},
                        ObservedContainer.observed_at: now}).execute()
            self._rows[cid] = {**wanted, "deaths": deaths, "last_died_at": died_at, "killed_at": killed}
        else:
            changes: dict[Any, Any] = {getattr(ObservedContainer, name): wanted[name] for name in _FIELDS
                                       if current[name] != wanted[name]}
            if kill_changes:
                changes[ObservedContainer.killed_at] = killed_at
                current["killed_at"] = killed_at
            changes[ObservedContainer.observed_at] = now
            if current["state"] != wanted["state"] or current["health"] != wanted["health"]:
                changes[ObservedContainer.changed_at] = now
            if died_at is not None:
                changes[ObservedContainer.deaths] = ObservedContainer.deaths + 1
                changes[ObservedContainer.last_died_at] = died_at
                current["deaths"] = current["deaths"] + 1
                current["last_died_at"] = died_at
            ObservedContainer.update(changes).where(ObservedContainer.container_id == cid).execute()
            current.update(wanted)
        self.writes += 1
        return 1

    def _delete(self, cid: str) -> int:
        if self._rows.pop(cid, None) is None:
            return 0
        ObservedContainer.delete().where(ObservedContainer.container_id == cid).execute()
        self.writes += 1
        return 1

    def _mark_disconnected(self, error: str) -> None:
        """Record that the stream is down (views say ``unknown`` at once); a database that is down is only logged."""
        try:
            with self.db.connection_context():
                EngineMirror.update(connected=False, error=error[:2000]).where(
                    (EngineMirror.deployment == self.deployment) & (EngineMirror.follower == self.follower)).execute()
        except peewee.PeeweeException as exc:
            log.warning("engine mirror: could not record the disconnection: %s", exc)


def _read_into(stream, items: queue.Queue) -> None:
    """The reader thread: every event of ``stream`` into ``items``, then its error or the end marker."""
    try:
        for event in stream:
            items.put(event)
    except BaseException as exc:  # noqa: BLE001 (handed to the follower, which decides)
        items.put(exc)
        return
    items.put(_END)


def _as_cache(row: ObservedContainer) -> dict[str, Any]:
    return {**{name: getattr(row, name) for name in _FIELDS}, "deaths": row.deaths, "last_died_at": row.last_died_at,
            "killed_at": row.killed_at}


def _values_of_state(container: ContainerState) -> dict[str, Any]:
    return {"order_id": order_id_of(container.labels), "service": service_of(container.labels),
            "name": container.name[:255], "state": container.state[:16],
            "health": container.health, "exit_code": container.exit_code,
            "config_hash": container.labels.get(CONFIG_HASH_LABEL), "node": container.node,
            "error": container.error}


def _values_of_labels(event: EngineEvent) -> dict[str, Any]:
    """A row known only from an event (its container was not listed): what its labels say."""
    return {"order_id": order_id_of(event.labels), "service": service_of(event.labels),
            "name": (event.attributes.get("name") or event.container_id)[:255], "state": "created",
            "health": None, "exit_code": None, "config_hash": event.labels.get(CONFIG_HASH_LABEL), "node": None,
            "error": None}


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
