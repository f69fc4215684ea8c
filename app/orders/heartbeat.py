"""The worker's heartbeat: how the web side knows whether a worker runs the operations it records.

The worker process writes one row of ``worker_heartbeat`` (:class:`app.models.WorkerHeartbeat`):

- at start, after it took the single-instance lock: it deletes the rows other workers left (a worker
  killed with SIGKILL cannot delete its own; the lock proves those workers are gone) and inserts its own;
- on its dispatch ticks (every LIVE_WORKER_POLL_SECONDS, at most once per
  :data:`BEAT_INTERVAL_SECONDS`): one UPDATE of ``beat_at``, and while a shutdown waits for running
  operations to finish;
- on a clean shutdown (SIGTERM, SIGINT): it deletes its row.

**The rule** (:func:`stale_after`, used by ``/readyz``, lifecycle answers, ``/metrics`` and
``live doctor``): a worker is *alive* while its newest beat is younger than
``max(15 s, 10 × its LIVE_WORKER_POLL_SECONDS)`` (15 s with the default poll of 1 s). Ten missed ticks
are no hiccup: the worker is dead, stopped, hung, or cannot reach the database. Ages are measured with
the reader's clock against the worker's UTC timestamps, so processes on different hosts need
synchronised clocks (NTP); a beat "from the future" counts as age 0.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

import peewee

from app.db import PreparedSelect
from app.errors import LiveError
from app.models import WorkerHeartbeat, utcnow

log = logging.getLogger(__name__)

#: A worker counts as gone when its newest beat is older than max(MIN_STALE_SECONDS, STALE_POLLS × poll).
MIN_STALE_SECONDS = 15.0
STALE_POLLS = 10
#: The worker writes its beat at most this often (seconds), however short its poll interval.
BEAT_INTERVAL_SECONDS = 1.0


def stale_after(poll_seconds: float) -> float:
    """Seconds after its last beat a worker polling every ``poll_seconds`` counts as gone.

    ``max(15, 10 × poll_seconds)``: 15 s for polls up to 1.5 s, 50 s for a poll of 5 s.
    """
    return max(MIN_STALE_SECONDS, STALE_POLLS * poll_seconds)


@dataclass(frozen=True)
class WorkerStatus:
    """What the newest heartbeat says.

    ``alive``: its age is within :func:`stale_after` of the worker's poll interval.
    ``age_seconds``: seconds since that beat (never negative), ``None`` when no worker has a row
    (none ever started, or the last one stopped cleanly). ``worker`` (``host:pid``), the times
    (naive UTC), ``concurrency`` and ``stale_after`` (seconds) are ``None`` without a row.
    """

    alive: bool
    age_seconds: float | None
    worker: str | None = None
    started_at: dt.datetime | None = None
    beat_at: dt.datetime | None = None
    concurrency: int | None = None
    stale_after: float | None = None

    def describe_age(self) -> str:
        """The age in words for people: ``0.4 s``, ``42 s``, ``7 min``, ``3 h``, ``2 d``; ``-`` without a beat."""
        return describe_seconds(self.age_seconds)


def describe_seconds(seconds: float | None) -> str:
    """``seconds`` in the largest unit that keeps a number ≥ 1: ``0.4 s``, ``42 s``, ``7 min``, ``3 h``, ``2 d``."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


#: The newest heartbeat (read by every lifecycle answer), compiled once (app.db.PreparedSelect).
_NEWEST_HEARTBEAT = PreparedSelect(lambda: WorkerHeartbeat.select().order_by(WorkerHeartbeat.beat_at.desc()).limit(1))


def worker_status(now: dt.datetime | None = None) -> WorkerStatus:
    """The state of the newest heartbeat, read from the database (one query).

    ``now`` (naive UTC) defaults to the current time. Raises peewee's errors when the database
    cannot be read (callers that must answer anyway catch ``peewee.PeeweeException``).
    """
    row = _NEWEST_HEARTBEAT.first()
    if row is None:
        return WorkerStatus(alive=False, age_seconds=None)
    age = max(0.0, ((now or utcnow()) - row.beat_at).total_seconds())
    threshold = stale_after(row.poll_seconds)
    return WorkerStatus(alive=age <= threshold, age_seconds=round(age, 3), worker=row.worker,
                        started_at=row.started_at, beat_at=row.beat_at, concurrency=row.concurrency,
                        stale_after=threshold)


class Heartbeat:
    """The worker side: writes the row of one worker process (``worker`` = ``host:pid``).

    Every method needs an open database connection (the worker opens one around each call).
    ``clock`` is a monotonic clock in seconds (tests pass their own).
    """

    def __init__(self, worker: str, *, poll_seconds: float, concurrency: int,
                 clock: Callable[[], float] = time.monotonic):
        self.worker = worker
        self.poll_seconds = poll_seconds
        self.concurrency = concurrency
        self._clock = clock
        self._last_beat: float | None = None
        # A dispatch tick of the scheduler may still be beating when the worker stops (the scheduler shuts
        # down without waiting for it): once stopped, no beat may re-create the row.
        self._stopped = False
        self._lock = threading.Lock()

    def start(self) -> int:
        """Record this worker, deleting every other worker's row; returns how many were deleted.

        Only call it holding the single-instance lock: other rows then belong to workers that are
        gone. Raises :class:`LiveError` naming the likely cause when the table cannot be written.
        """
        try:
            gone = WorkerHeartbeat.delete().where(WorkerHeartbeat.worker != self.worker).execute()
            self._write()
        except peewee.PeeweeException as exc:
            raise LiveError(f"cannot record the worker's heartbeat: {exc}; is the database reachable and migrated? "
                            "(`flask --app wsgi live db upgrade`)") from exc
        if gone:
            log.info("removed the heartbeat of %d worker(s) that stopped without saying so", gone)
        return gone

    def beat(self, *, force: bool = False) -> bool:
        """Move ``beat_at`` to now, at most once per :data:`BEAT_INTERVAL_SECONDS` unless ``force``.

        Returns whether it wrote. Re-creates the row if it disappeared. Raises peewee's errors
        when the database cannot be written (the dispatch tick logs them and tries again).
        """
        now = self._clock()
        if not force and self._last_beat is not None and now - self._last_beat < BEAT_INTERVAL_SECONDS:
            return False
        with self._lock:
            if self._stopped:
                return False
            self._write()
        self._last_beat = now
        return True

    def stop(self) -> None:
        """Delete this worker's row (clean shutdown); a database error is logged, not raised."""
        try:
            with self._lock:
                self._stopped = True
                WorkerHeartbeat.delete().where(WorkerHeartbeat.worker == self.worker).execute()
        except peewee.PeeweeException as exc:
            log.warning("could not remove the worker's heartbeat (it goes stale by itself): %s", exc)

    def _write(self) -> None:
        now = utcnow()
        updated = (WorkerHeartbeat.update(beat_at=now, poll_seconds=self.poll_seconds, concurrency=self.concurrency)
                   .where(WorkerHeartbeat.worker == self.worker).execute())
        if not updated:
            WorkerHeartbeat.create(worker=self.worker, started_at=now, beat_at=now, poll_seconds=self.poll_seconds,
                                   concurrency=self.concurrency)
