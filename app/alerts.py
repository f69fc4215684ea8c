"""Outbound webhooks: events that need a person, signed and delivered by the worker (issue 16).

Which events alert (:data:`ALERT_EVENTS`): an operation that failed for good (``operation_failed``, or
``backup_failed`` for a backup operation), drift detected (``drift_detected``), an order failing after drift
(``drift_failing``), and an operation running longer than LIVE_OPERATION_STUCK_SECONDS (``operation_stuck``,
found by :meth:`AlertDeliverer.record_stuck`).

How: :func:`app.models.record_event` calls :func:`queue` in the transaction that records the event; it inserts
one :class:`app.models.AlertDelivery` row per LIVE_WEBHOOK_URLS entry, with the JSON body fixed then. The
worker's :class:`AlertDeliverer` POSTs due rows (a scheduler job, never an operation's thread), records every
attempt, and retries a failure (no answer, or a status other than 2xx) after LIVE_WEBHOOK_RETRY_SECONDS doubled
at each attempt (at most :data:`MAX_RETRY_SECONDS`) until LIVE_WEBHOOK_MAX_ATTEMPTS, then marks it ``failed``
(``live webhooks retry`` queues it again). A worker killed during an attempt leaves the row ``pending``: the
next worker sends it again, so a receiver may see a delivery twice and should ignore a repeated
``X-Live-Delivery``.

Each request carries (docs/OPERATIONS.md, "Alerts"):

- ``X-Live-Timestamp``: the attempt's time, Unix seconds (text);
- ``X-Live-Signature``: ``sha256=<hex>``, HMAC-SHA256 keyed with LIVE_WEBHOOK_SECRET over
  ``<timestamp>.<raw body>`` (bytes, UTF-8): the timestamp is signed, so a receiver can refuse old replays;
- ``X-Live-Delivery``: ``<deployment>-<row id>``, the same for every attempt of one delivery;
- ``X-Live-Alert``: the alert's type.

The targets are process-wide (:func:`configure`, called by :func:`app.bootstrap.bootstrap`): every process that
records events queues the same way.
"""
from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import requests

from app.models import AlertDelivery, Event, Operation, Order, record_event, utcnow
from app.orders.lifecycle import OperationState

log = logging.getLogger(__name__)

#: Event kinds that need a person -> the alert type sent (``operation.failed`` of a backup is ``backup_failed``).
ALERT_EVENTS = {"operation.failed": "operation_failed", "drift_detected": "drift_detected",
                "drift_failing": "drift_failing", "operation.stuck": "operation_stuck"}
#: The longest wait between two attempts of one delivery (seconds).
MAX_RETRY_SECONDS = 3600.0
#: Rows one delivery pass sends at most (the next pass, a second later, takes the rest).
BATCH = 20
#: A pass starts no new attempt after this many seconds (so one attempt, at most the timeout, may end later).
PASS_SECONDS = 10.0
#: The largest exponent of the backoff (``2**MAX_BACKOFF_EXPONENT``): beyond it the wait is the cap anyway.
MAX_BACKOFF_EXPONENT = 30
#: The longest ``last_error`` kept (characters).
MAX_ERROR_LENGTH = 200
#: Finished deliveries (delivered or failed) older than this are deleted, at most once per PRUNE_SECONDS.
KEEP_FINISHED = dt.timedelta(days=30)
PRUNE_SECONDS = 3600.0
#: How an alert is sent (the signature's header and prefix, and the User-Agent).
SIGNATURE_HEADER, TIMESTAMP_HEADER = "X-Live-Signature", "X-Live-Timestamp"
USER_AGENT = "geocat-live-bridge-webhooks/1"


class DeliveryState(str, enum.Enum):
    PENDING = "pending"      # to be sent at next_attempt_at
    DELIVERED = "delivered"  # a 2xx answer
    FAILED = "failed"        # max_attempts without a 2xx answer

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class WebhookSettings:
    """The LIVE_WEBHOOK_* settings: ``urls`` (none: nothing is queued), the HMAC ``secret``, attempts per delivery,
    the first retry's delay and one attempt's total timeout (seconds), and LIVE_OPERATION_STUCK_SECONDS."""

    urls: tuple[str, ...] = ()
    secret: str = ""
    max_attempts: int = 8
    retry_seconds: float = 10.0
    timeout_seconds: float = 5.0
    stuck_seconds: float = 1800.0
    deployment: str = "live"

    @classmethod
    def from_settings(cls, settings) -> WebhookSettings:
        """From :class:`app.config.Settings`."""
        return cls(urls=settings.webhook_urls, secret=settings.webhook_secret,
                   max_attempts=settings.webhook_max_attempts, retry_seconds=settings.webhook_retry_seconds,
                   timeout_seconds=settings.webhook_timeout_seconds, stuck_seconds=settings.operation_stuck_seconds,
                   deployment=settings.deployment)


_current = WebhookSettings()


def configure(settings: WebhookSettings) -> None:
    """Set where this process's alerts go (:func:`app.bootstrap.bootstrap` calls it with the settings)."""
    global _current
    _current = settings


def wanted(kind: str) -> bool:
    """True when an event of ``kind`` queues deliveries in this process (an alert kind, and URLs configured)."""
    return kind in ALERT_EVENTS and bool(_current.urls)


def queue(event: Event) -> int:
    """Insert one pending delivery of ``event`` per configured URL (in the caller's transaction); returns how
    many. Nothing for an event that is not an alert."""
    alert = ALERT_EVENTS.get(event.kind)
    if alert is None or not _current.urls:
        return 0
    operation = _load(Operation, event.operation_id)
    if alert == "operation_failed" and operation is not None and operation.kind == "backup":
        alert = "backup_failed"
    body = json.dumps(payload(event, alert, _load(Order, event.order_id), operation, _current.deployment),
                      sort_keys=True, separators=(",", ":"))
    now = utcnow()
    AlertDelivery.insert_many([
        {"event": event.id, "alert": alert, "url": url, "body": body, "state": DeliveryState.PENDING.value,
         "max_attempts": _current.max_attempts, "next_attempt_at": now, "created_at": now, "history": []}
        for url in _current.urls]).execute()
    return len(_current.urls)


def payload(event: Event, alert: str, order: Order | None, operation: Operation | None, deployment: str) -> dict:
    """The JSON body: ``{"alert", "deployment", "event": {"id", "kind", "message", "at"}, "order": {"id",
    "instance", "whmcs_service_id", "hostname", "status"} | null, "operation": {"id", "kind", "state",
    "attempts"} | null}``; times ISO 8601 UTC with ``Z``. Public texts only: the private detail stays in the
    bridge (``live orders show``)."""
    return {
        "alert": alert,
        "deployment": deployment,
        "event": {"id": event.id, "kind": event.kind, "message": event.message, "at": _iso(event.created_at)},
        "order": None if order is None else {"id": order.id, "instance": order.instance,
                                             "whmcs_service_id": order.whmcs_service_id, "hostname": order.hostname,
                                             "status": order.status},
        "operation": None if operation is None else {"id": operation.id, "kind": operation.kind,
                                                     "state": operation.state, "attempts": operation.attempts},
    }


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 keyed with ``secret`` over ``<timestamp>.<body>``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def retry_delay(attempts: int, base: float) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: ``base * 2**(attempts-1)``, at most
    :data:`MAX_RETRY_SECONDS` (the exponent capped at :data:`MAX_BACKOFF_EXPONENT`, so any count is a number)."""
    return min(base * 2 ** min(max(attempts - 1, 0), MAX_BACKOFF_EXPONENT), MAX_RETRY_SECONDS)


def redact_url(url: str) -> str:
    """``url`` as listings and logs show it: ``scheme://host[:port]/…``, without a user or password, and with
    the path and query (where Slack- or Discord-style URLs hold their token) replaced by ``/…``; ``https://host``
    and ``https://host/`` stay as they are."""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rsplit("@", 1)[-1]
    except ValueError:
        return "<invalid URL>"
    hidden = "/…" if parts.path not in ("", "/") or parts.query or parts.fragment else parts.path
    return urlunsplit((parts.scheme, host, hidden, "", ""))


class DeadlineExceeded(Exception):
    """An attempt got no full answer within its total time (DNS, connecting, sending and the answer's headers)."""


class AlertDeliverer:
    """The worker's side: finds stuck operations and sends due deliveries (:meth:`tick`, a scheduler job).

    ``session`` is the HTTP client (default a :class:`requests.Session`); ``clock`` gives naive UTC. The worker
    runs :meth:`record_stuck` and :meth:`send` as two scheduler jobs, so a slow receiver never delays finding a
    stuck operation.
    """

    def __init__(self, settings: WebhookSettings, session: requests.Session | None = None, clock=utcnow):
        self.settings = settings
        self.session = session or requests.Session()
        self.clock = clock
        self._pruned_at: float | None = None  # time.monotonic() of the last prune
        # URL -> the thread of an attempt given up at its deadline and still running: that URL waits for it.
        self._abandoned: dict[str, threading.Thread] = {}

    def tick(self) -> int:
        """Record newly stuck operations, then :meth:`send`; returns the attempts made."""
        self.record_stuck()
        return self.send()

    def send(self) -> int:
        """Send what is due and (hourly) delete old finished deliveries; returns the attempts made."""
        if self._pruned_at is None or time.monotonic() - self._pruned_at >= PRUNE_SECONDS:
            self.prune()
            self._pruned_at = time.monotonic()
        return self.deliver_due()

    def prune(self) -> int:
        """Delete delivered and failed deliveries finished more than :data:`KEEP_FINISHED` ago; returns how many."""
        return AlertDelivery.delete().where((AlertDelivery.state != DeliveryState.PENDING.value)
                                            & (AlertDelivery.finished_at < self.clock() - KEEP_FINISHED)).execute()

    def record_stuck(self) -> list[int]:
        """Record ``operation.stuck`` once per attempt of every operation running for longer than
        ``stuck_seconds`` (which queues its alert); returns their ids."""
        cutoff = self.clock() - dt.timedelta(seconds=self.settings.stuck_seconds)
        running = list(Operation.select().where((Operation.state == OperationState.RUNNING)
                                                & (Operation.started_at < cutoff)))
        if not running:
            return []
        seen = {(event.operation_id, (event.data or {}).get("attempt"))
                for event in Event.select(Event.operation, Event.data).where(
                    (Event.kind == "operation.stuck") & Event.operation.in_([op.id for op in running]))}
        stuck = []
        for operation in running:
            if (operation.id, operation.attempts) in seen:
                continue
            minutes = (self.clock() - operation.started_at).total_seconds() / 60
            record_event("operation.stuck", f"{operation.kind} has been running for {minutes:.0f} min "
                                            f"(attempt {operation.attempts})", order=operation.order_id,
                         operation=operation, attempt=operation.attempts)
            stuck.append(operation.id)
        return stuck

    def deliver_due(self, limit: int = BATCH) -> int:
        """Send up to ``limit`` pending deliveries whose time has come, oldest first; returns how many attempts.

        Once an attempt to a URL fails, that URL's other due rows wait for the next pass (their ``next_attempt_at``
        unchanged), as do the rows of a URL whose attempt given up at its deadline still runs: a URL that is down
        costs at most one timeout per pass, and the other URLs' rows are sent. No new attempt starts after
        :data:`PASS_SECONDS`."""
        started = time.monotonic()
        skipped = {url for url, thread in list(self._abandoned.items()) if thread.is_alive()}
        self._abandoned = {url: self._abandoned[url] for url in skipped}
        made = 0
        while made < limit and time.monotonic() - started < PASS_SECONDS:
            query = AlertDelivery.select().where((AlertDelivery.state == DeliveryState.PENDING.value)
                                                 & (AlertDelivery.next_attempt_at <= self.clock()))
            if skipped:
                query = query.where(AlertDelivery.url.not_in(sorted(skipped)))
            due = list(query.order_by(AlertDelivery.next_attempt_at, AlertDelivery.id).limit(limit - made))
            if not due:
                break
            for row in due:
                if row.url in skipped or time.monotonic() - started >= PASS_SECONDS:
                    continue
                made += 1
                if not self.attempt(row):
                    skipped.add(row.url)
        return made

    def attempt(self, row: AlertDelivery) -> bool:
        """POST ``row`` once and record the attempt; True when it was delivered (2xx)."""
        body = row.body.encode()
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, TIMESTAMP_HEADER: timestamp,
                   SIGNATURE_HEADER: sign(self.settings.secret, timestamp, body),
                   "X-Live-Delivery": f"{self.settings.deployment}-{row.id}", "X-Live-Alert": row.alert}
        started = time.monotonic()
        status, error = None, None
        try:
            status = self._post(row.url, body, headers)
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except Exception as exc:  # noqa: BLE001 refused, unreachable, timed out, TLS, a URL the client refuses: retried
            error = self._short(exc, row.url)
        now = self.clock()
        attempts = row.attempts + 1
        history = list(row.history or []) + [{"at": _iso(now), "status": status, "error": error,
                                              "seconds": round(time.monotonic() - started, 3)}]
        update = {"attempts": attempts, "last_status": status, "last_error": error, "history": history}
        if error is None:
            update.update(state=DeliveryState.DELIVERED.value, finished_at=now)
        elif attempts >= row.max_attempts:
            update.update(state=DeliveryState.FAILED.value, finished_at=now)
            log.error("webhook %s to %s failed after %d attempt(s): %s", row.id, redact_url(row.url), attempts, error)
        else:
            delay = retry_delay(attempts, self.settings.retry_seconds)
            update["next_attempt_at"] = now + dt.timedelta(seconds=delay)
            log.warning("webhook %s to %s: attempt %d failed (%s), next in %.0fs", row.id, redact_url(row.url),
                        attempts, error, delay)
        AlertDelivery.update(**update).where(AlertDelivery.id == row.id).execute()
        return error is None

    def _post(self, url: str, body: bytes, headers: dict) -> int:
        """POST ``body`` to ``url`` and return the answer's status, within ``timeout_seconds`` in all (name lookup,
        connecting, sending, the answer's headers; the body is not read). Raises what the HTTP client raises, or
        :class:`DeadlineExceeded`: the request's thread is then left to end on its own (its connect and read
        timeouts bound each step) and ``url`` waits for it (:meth:`deliver_due`)."""
        timeout = self.settings.timeout_seconds
        outcome: dict = {}

        def post() -> None:
            try:
                response = self.session.post(url, data=body, headers=headers, timeout=(timeout, timeout),
                                             allow_redirects=False, stream=True)
                outcome["status"] = response.status_code
                response.close()
            except Exception as exc:  # noqa: BLE001 handed to the caller's thread
                outcome["error"] = exc

        thread = threading.Thread(target=post, name="webhook-post", daemon=True)
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            self._abandoned[url] = thread
            raise DeadlineExceeded(f"no answer within {timeout:g}s")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["status"]

    def _short(self, exc: Exception, url: str) -> str:
        """A one-line reason of at most :data:`MAX_ERROR_LENGTH` characters, without the secret, nor a password,
        path or query of ``url`` (``url`` itself shown as :func:`redact_url` does, the rest replaced by ``***``)."""
        text = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
        try:
            parts = urlsplit(url)
            password = parts.password
        except ValueError:
            parts, password = None, None
        text = text.replace(url, redact_url(url))
        hidden = [self.settings.secret, password]
        if parts is not None:
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            hidden += [target if parts.path not in ("", "/") or parts.query else "", parts.query,
                       parts.path if parts.path not in ("", "/") else ""]
        for secret in hidden:
            if secret:
                text = text.replace(secret, "***")
        return text[:MAX_ERROR_LENGTH]


def retry(ids: list[int] | None = None, *, clock=utcnow) -> int:
    """Queue failed deliveries again (``ids``; None: every failed one) with a fresh count of attempts, history
    kept; returns how many. A pending or delivered row is left alone."""
    query = AlertDelivery.update(state=DeliveryState.PENDING.value, attempts=0, next_attempt_at=clock(),
                                 finished_at=None).where(AlertDelivery.state == DeliveryState.FAILED.value)
    if ids is not None:
        query = query.where(AlertDelivery.id.in_(ids))
    return query.execute()


def listing(state: str | None = None, limit: int = 50) -> list[dict]:
    """The newest deliveries first (``state``: only those): ``{"id", "alert", "url" (:func:`redact_url`), "state",
    "attempts", "max_attempts", "last_status", "last_error", "created_at", "next_attempt_at", "finished_at",
    "event_id", "history"}`` (``history``: every attempt, oldest first, as :class:`~app.models.AlertDelivery` keeps it:
    ``{"at", "status", "error", "seconds"}``)."""
    query = AlertDelivery.select().order_by(AlertDelivery.id.desc()).limit(limit)
    if state:
        query = query.where(AlertDelivery.state == state)
    return [{"id": row.id, "alert": row.alert, "url": redact_url(row.url), "state": row.state,
             "attempts": row.attempts, "max_attempts": row.max_attempts, "last_status": row.last_status,
             "last_error": row.last_error, "created_at": _iso(row.created_at),
             "next_attempt_at": _iso(row.next_attempt_at) if row.state == DeliveryState.PENDING.value else None,
             "finished_at": _iso(row.finished_at), "event_id": row.event_id, "history": list(row.history or [])}
            for row in query]


def _load(model, key):
    return None if key is None else model.get_or_none(model.id == key)


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds") + "Z"
