"""An order's service logs, read from the engine as they are sent, secrets masked (``GET /api/v1/orders/{id}/logs``,
``GET /whmcs/v1/services/{id}/logs``, ``live orders logs``).

:meth:`OrderLogs.open` finds the order's containers by their labels (one listing; a swarm: its services), checks
the request (a service the order has, ``tail`` of at most :data:`MAX_TAIL` lines, ``since``) and opens the first
container's stream (:meth:`~app.stacks.engine.Engine.stream_logs`) before it returns, so what cannot be answered
is an error of the call, never a broken answer. The :class:`LogStream` it returns yields lines read from the engine
as they are consumed: memory holds one line per service whatever the logs' size.

Every line has the order's secrets masked (:func:`~app.orders.drift.mask_secrets`: every value of ``Order.secrets``,
today the passwords generated for the order; the customer's own password once it is stored there too), also a
secret that spans the cut of a line longer than :data:`~app.stacks.engine.LOG_LINE_MAX_CHARS` (:func:`masked`).
With one ``service`` the lines are its own; without, every service's (``tail`` lines each, one service after the
other, sorted by name; followed: as they come), each line prefixed with ``<service> | `` as ``docker compose logs``
does. A stream that fails midway ends with a line saying
so (:data:`BROKEN`), its public text unless the caller may see private detail (the full text goes to the log).
A read that is not followed has a total deadline (``timeout_seconds``, ``LIVE_LOGS_TIMEOUT_SECONDS``): a stream the
engine does not end in time is closed and the answer ends with :data:`CUT` (an engine can hang on a log read
while it holds a web thread: docker/cli#4678, moby#33183).
"""
from __future__ import annotations

import logging
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Callable, Iterator

from app.errors import Conflict, InvalidRequest, LiveError, NotFound
from app.orders.drift import MIN_MASKED_LENGTH, mask_secrets
from app.stacks.engine import ContainerState, Engine, LinePiece
from app.stacks.project import container_name, order_selector

if TYPE_CHECKING:
    from app.models import Order

log = logging.getLogger(__name__)

#: The most lines ``tail`` may ask for (per service).
MAX_TAIL = 1000
#: The lines sent when ``tail`` is not given (per service): what the WHMCS client area shows.
DEFAULT_TAIL = 100
#: The last line of a stream that failed midway; ``{reason}`` is the error's public (or private) text.
BROKEN = "(the log stream ended early: {reason})"
#: The last line of a read that was not over by its deadline (public text); ``{seconds}``: the deadline.
CUT = "(the log read was cut after {seconds:g} s: ask for fewer lines, or a later since)"
#: Lines held between followed services' reader threads and the consumer.
FOLLOW_BUFFER_LINES = 1000
#: How long closing followed streams waits for their reader threads to end (seconds, all of them).
FOLLOW_JOIN_SECONDS = 2.0
#: The earliest ``since``: the engine takes seconds since the epoch, and rejects 0 and less.
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_RELATIVE = re.compile(r"^(\d{1,9})([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SINCE_FORMS = "an ISO 8601 time (2026-12-01T08:00:00Z) or a duration (90s, 15m, 2h, 1d)"


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """The aware UTC time ``text`` gives: ISO 8601 (``2026-12-01T08:00:00Z``; without an offset: UTC) or a duration
    back from ``now`` (default: the clock), ``90s``, ``15m``, ``2h``, ``1d``; None or "" is None. The time must be
    after 1970-01-01T00:00:00Z (:data:`EPOCH`; a duration reaching back that far too) and not after ``now`` (a time
    in the future is refused, not clamped: it is most often a local time sent without its offset). Anything else
    is an :class:`~app.errors.InvalidRequest` naming ``since``."""
    if not text:
        return None
    text = text.strip()
    now = now or datetime.now(timezone.utc)
    relative = _RELATIVE.match(text)
    if relative:
        seconds = int(relative.group(1)) * _UNITS[relative.group(2)]
        if seconds >= (now - EPOCH).total_seconds():
            raise InvalidRequest(f"since: {text!r} reaches back to 1970-01-01 or earlier; the most is "
                                 f"{int((now - EPOCH).total_seconds()) // 86400 - 1}d", parameter="since")
        return now - timedelta(seconds=seconds)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        when = when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise InvalidRequest(f"since: {text!r} is not {_SINCE_FORMS}", parameter="since") from None
    if when <= EPOCH:
        raise InvalidRequest(f"since: {text!r} is not after 1970-01-01T00:00:00Z", parameter="since")
    if when > now:
        raise InvalidRequest(f"since: {text!r} is in the future (it is {now.isoformat(timespec='seconds')} UTC "
                             "here; a time without an offset is UTC)", parameter="since")
    return when


def check_tail(tail: int) -> int:
    """``tail`` when it is 0 to :data:`MAX_TAIL`; else an :class:`~app.errors.InvalidRequest` naming ``tail``."""
    if not 0 <= tail <= MAX_TAIL:
        raise InvalidRequest(f"tail: {tail} is not between 0 and {MAX_TAIL} lines", parameter="tail")
    return tail


@dataclass
class LogStream:
    """The lines of one request (``str`` each, no line ending), read as they are iterated; ``services`` are the
    services they come from (sorted), ``order_services`` every service of the order that has a container.
    ``close()`` (or the end) closes every engine stream opened."""

    services: list[str]
    order_services: list[str]
    _lines: Iterator[str] = field(repr=False)
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def __iter__(self) -> Iterator[str]:
        return self._lines

    def __next__(self) -> str:
        return next(self._lines)

    def close(self) -> None:
        for close in [getattr(self._lines, "close", None), *self._closers]:
            if close is not None:
                close()


class OrderLogs:
    """Reads orders' logs from ``engine``; ``deployment`` is the installation whose containers are the orders'."""

    def __init__(self, engine: Engine, deployment: str, timeout_seconds: float = 30.0):
        """``timeout_seconds``: the total deadline of a read that is not followed (``LIVE_LOGS_TIMEOUT_SECONDS``)."""
        self.engine = engine
        self.deployment = deployment
        self.timeout_seconds = timeout_seconds

    def containers(self, order: Order) -> dict[str, ContainerState]:
        """The order's container per service (one engine listing): of two for one service (a recreate under way),
        the running one, else the one with the service's own name."""
        chosen: dict[str, ContainerState] = {}
        for container in self.engine.list_containers(order_selector(self.deployment, order.id)):
            service = container.service
            if service is None:  # an archive helper
                continue
            current = chosen.get(service)
            if current is None or _preference(container, self.deployment, order) > _preference(
                    current, self.deployment, order):
                chosen[service] = container
        return chosen

    def open(self, order: Order, *, service: str | None = None, tail: int = DEFAULT_TAIL, since: str | None = None,
             follow: bool = False, include_private: bool = False) -> LogStream:
        """The order's log lines (see the module docstring): ``service`` (None: every service), the last ``tail``
        lines (0 to :data:`MAX_TAIL`) of each, written since ``since`` (:func:`parse_since`), then, with
        ``follow``, new lines until closed (without: the read ends with :data:`CUT` once ``timeout_seconds``
        have passed). ``include_private``: the line that ends a broken stream has the error's private text.

        Raises :class:`~app.errors.InvalidRequest` (``tail``, ``since``: the message names it),
        :class:`~app.errors.Conflict` (the order has no container: not deployed yet, or terminated),
        :class:`~app.errors.NotFound` (no such service: the message names the order's services), and the
        engine's errors (:class:`~app.errors.EngineUnavailable`) from opening the first stream.
        """
        tail = check_tail(tail)
        start = parse_since(since)
        containers = self.containers(order)
        existing = sorted(containers)
        if not existing:
            raise Conflict(f"order {order.id} ({order.instance}) has no containers (status {order.status}): "
                           "no logs to read", status=order.status)
        if service is not None and service not in containers:
            raise NotFound(f"order {order.id} ({order.instance}) has no service {service!r}; its services: "
                           + ", ".join(existing), services=existing)
        chosen = [service] if service is not None else existing

        def reason(exc: LiveError) -> str:
            return str(exc) if include_private else exc.public

        def opener(name: str) -> Callable[[], Iterator[str]]:
            return lambda: self.engine.stream_logs(containers[name].id, tail=tail, since=start, follow=follow)

        prefix = service is None
        deadline = None if follow else _Deadline(self.timeout_seconds)
        first = opener(chosen[0])()  # errors of the first stream are errors of the call
        if follow and len(chosen) > 1:
            merged = _Merged([(name, opener(name)) for name in chosen], first, reason, order.secrets)
            lines = (f"{name} | {line}" for name, line in merged)
            return LogStream(chosen, existing, lines, [merged.close])
        lines = self._one_after_another(order, chosen, opener, first, prefix, reason, deadline)
        closers = [lambda: _close(first)]  # closed too when never read
        if deadline is not None:
            closers.append(deadline.cancel)
        return LogStream(chosen, existing, lines, closers)

    def _one_after_another(self, order: Order, services: list[str], opener, first: Iterator[str], prefix: bool,
                           reason: Callable[[LiveError], str], deadline: _Deadline | None) -> Iterator[str]:
        """Every line of ``services`` in turn, masked, prefixed with the service when ``prefix``; a service whose
        stream fails gets a last line saying so (:data:`BROKEN`) and the next one is read. Past ``deadline``, the
        stream read is closed and :data:`CUT` is the last line."""
        stream: Iterator[str] | None = first
        try:
            for number, name in enumerate(services):
                head = f"{name} | " if prefix else ""
                try:
                    if number:
                        stream = opener(name)()
                    if deadline is not None:
                        deadline.watch(stream)
                    for line in masked(stream, order.secrets):
                        if deadline is not None and deadline.expired:
                            break
                        yield head + line
                except LiveError as exc:
                    if deadline is None or not deadline.expired:
                        log.warning("logs of order %s, service %s: %s", order.id, name, exc)
                        yield mask_secrets(head + BROKEN.format(reason=reason(exc)), order.secrets)
                finally:
                    _close(stream)
                    stream = None
                if deadline is not None and deadline.expired:
                    log.warning("logs of order %s: the read was cut after %g s (LIVE_LOGS_TIMEOUT_SECONDS)",
                                order.id, deadline.seconds)
                    yield head + CUT.format(seconds=deadline.seconds)
                    return
        finally:
            _close(stream)
            if deadline is not None:
                deadline.cancel()


def masked(stream: Iterator[str], secrets: dict | None) -> Iterator[str]:
    """``stream``'s lines with ``secrets`` masked (:func:`~app.orders.drift.mask_secrets`), also a secret that spans
    the cut between the pieces of a long line (:class:`~app.stacks.engine.LinePiece`): the end of a piece that may
    begin a secret (at most the longest secret's length - 1 characters, or from the start of a secret crossing the
    cut) is held back and read with the next piece. What the stream raises is raised after the held-back text."""
    values = [str(v) for v in (secrets or {}).values() if v is not None and len(str(v)) >= MIN_MASKED_LENGTH]
    keep = max((len(v) for v in values), default=1) - 1
    carry = ""
    try:
        for item in stream:
            text = carry + item
            if not isinstance(item, LinePiece):
                carry = ""
                yield mask_secrets(text, secrets)
                continue
            cut = _safe_cut(text, values, len(text) - keep)
            carry = text[cut:]
            if cut > 0:
                yield mask_secrets(text[:cut], secrets)
    except LiveError:
        if carry:
            yield mask_secrets(carry, secrets)
        raise
    if carry:
        yield mask_secrets(carry, secrets)


def _safe_cut(text: str, values: list[str], cut: int) -> int:
    """The greatest position at most ``cut`` that no occurrence of a value of ``values`` in ``text`` crosses."""
    moved = True
    while moved and cut > 0:
        moved = False
        for value in values:
            start = text.find(value, max(0, cut - len(value) + 1))
            if -1 < start < cut:
                cut, moved = start, True
    return max(cut, 0)


class _Deadline:
    """The total deadline of a read that is not followed: once ``seconds`` have passed, :attr:`expired` is set and
    the stream being read (:meth:`watch`) is closed from the timer's thread, which wakes a reader waiting for the
    engine (:meth:`~app.stacks.engine.Engine.stream_logs`: ``close()`` from another thread)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._at = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._stream: Iterator[str] | None = None
        self._fired = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.name = "logs-deadline"
        self._timer.start()

    @property
    def expired(self) -> bool:
        return self._fired or time.monotonic() >= self._at

    def watch(self, stream: Iterator[str] | None) -> None:
        with self._lock:
            self._stream = stream
            fired = self._fired
        if fired:
            _close(stream)

    def _fire(self) -> None:
        with self._lock:
            self._fired = True
            stream = self._stream
        _close(stream)

    def cancel(self) -> None:
        self._timer.cancel()


def _preference(container: ContainerState, deployment: str, order: Order) -> tuple[bool, bool]:
    return container.running, container.name == container_name(deployment, order.instance, container.service or "")


def _close(stream: Iterator[str] | None) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        close()


class _Merged:
    """Followed streams of several services read at once, one daemon thread each, their lines (masked with
    ``secrets``) in the order they come as ``(service, line)``; ``first`` is the first service's stream, already
    open. :meth:`close` stops handing lines on, closes every engine stream (which wakes the threads waiting for
    the engine) and waits for the threads, at most :data:`FOLLOW_JOIN_SECONDS`."""

    def __init__(self, openers: list[tuple[str, Callable[[], Iterator[str]]]], first: Iterator[str],
                 reason: Callable[[LiveError], str], secrets: dict | None):
        self._queue: queue.Queue = queue.Queue(maxsize=FOLLOW_BUFFER_LINES)
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._streams: list[Iterator[str]] = [first]
        self._open = len(openers)
        self._reason = reason
        self._secrets = secrets
        self._threads = []
        for number, (name, opener) in enumerate(openers):
            stream = first if number == 0 else None
            thread = threading.Thread(target=self._read, args=(name, opener, stream), name=f"logs-{name}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    def _put(self, item) -> None:
        """Hand ``item`` on, unless closed (a full queue nobody reads any more must not hold the thread)."""
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def _read(self, name: str, opener: Callable[[], Iterator[str]], stream: Iterator[str] | None) -> None:
        try:
            if stream is None:
                stream = opener()
                with self._lock:
                    self._streams.append(stream)
                if self._closed.is_set():  # closed while it was being opened
                    return
            for line in masked(stream, self._secrets):
                if self._closed.is_set():
                    break
                self._put((name, line))
        except LiveError as exc:
            if not self._closed.is_set():
                log.warning("logs of service %s: %s", name, exc)
                self._put((name, mask_secrets(BROKEN.format(reason=self._reason(exc)), self._secrets)))
        finally:
            _close(stream)
            self._put(None)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        while self._open:
            item = self._queue.get()
            if item is None:
                self._open -= 1
                continue
            yield item

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            try:
                _close(stream)
            except Exception as exc:  # noqa: BLE001 (closing on the way out: the others are closed still)
                log.debug("closing a followed log stream: %s", exc)
        end = time.monotonic() + FOLLOW_JOIN_SECONDS
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, end - time.monotonic()))
