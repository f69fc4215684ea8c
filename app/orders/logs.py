"""An order's service logs, read from the engine as they are sent, secrets masked (``GET /api/v1/orders/{id}/logs``,
``GET /whmcs/v1/services/{id}/logs``, ``live orders logs``).

:meth:`OrderLogs.open` finds the order's containers by their labels (one listing; a swarm: its services), checks
the request (a service the order has, ``tail`` of at most :data:`MAX_TAIL` lines, ``since``) and opens the first
container's stream (:meth:`~app.stacks.engine.Engine.stream_logs`) before it returns, so what cannot be answered
is an error of the call, never a broken answer. The :class:`LogStream` it returns yields lines read from the engine
as they are consumed: memory holds one line per service whatever the logs' size.

Every line has the order's secrets masked (:func:`~app.orders.drift.mask_secrets`: the generated passwords and the
customer's own password, all in ``Order.secrets``). With one ``service`` the lines are its own; without, every
service's (``tail`` lines each, one service after the other, sorted by name; followed: as they come), each line
prefixed with ``<service> | `` as ``docker compose logs`` does. A stream that fails midway ends with a line saying
so (:data:`BROKEN`), its public text unless the caller may see private detail (the full text goes to the log).
"""
from __future__ import annotations

import logging
import queue
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Callable, Iterator

from app.errors import Conflict, InvalidRequest, LiveError, NotFound
from app.orders.drift import mask_secrets
from app.stacks.engine import ContainerState, Engine
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
#: Lines held between followed services' reader threads and the consumer.
FOLLOW_BUFFER_LINES = 1000
_RELATIVE = re.compile(r"^(\d{1,9})([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """The aware UTC time ``text`` gives: ISO 8601 (``2026-12-01T08:00:00Z``; without an offset: UTC) or a duration
    back from ``now`` (default: the clock), ``90s``, ``15m``, ``2h``, ``1d``; None or "" is None. Anything else
    is an :class:`~app.errors.InvalidRequest` naming ``since``."""
    if not text:
        return None
    text = text.strip()
    relative = _RELATIVE.match(text)
    if relative:
        now = now or datetime.now(timezone.utc)
        return now - timedelta(seconds=int(relative.group(1)) * _UNITS[relative.group(2)])
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidRequest(f"since: {text!r} is neither an ISO 8601 time (2026-12-01T08:00:00Z) nor a duration "
                             "(90s, 15m, 2h, 1d)", parameter="since") from None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


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

    def __init__(self, engine: Engine, deployment: str):
        self.engine = engine
        self.deployment = deployment

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
        ``follow``, new lines until closed. ``include_private``: the line that ends a broken stream has the
        error's private text.

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
        first = opener(chosen[0])()  # errors of the first stream are errors of the call
        if follow and len(chosen) > 1:
            merged = _Merged([(name, opener(name)) for name in chosen], first, reason)
            lines = (mask_secrets(f"{name} | {line}", order.secrets) for name, line in merged)
            return LogStream(chosen, existing, lines, [merged.close])
        lines = self._one_after_another(order, chosen, opener, first, prefix, reason)
        return LogStream(chosen, existing, lines, [lambda: _close(first)])  # closed too when never read

    def _one_after_another(self, order: Order, services: list[str], opener, first: Iterator[str], prefix: bool,
                           reason: Callable[[LiveError], str]) -> Iterator[str]:
        """Every line of ``services`` in turn, masked, prefixed with the service when ``prefix``; a service whose
        stream fails gets a last line saying so (:data:`BROKEN`) and the next one is read."""
        stream: Iterator[str] | None = first
        try:
            for number, name in enumerate(services):
                head = f"{name} | " if prefix else ""
                try:
                    if number:
                        stream = opener(name)()
                    for line in stream:
                        yield mask_secrets(head + line, order.secrets)
                except LiveError as exc:
                    log.warning("logs of order %s, service %s: %s", order.id, name, exc)
                    yield mask_secrets(head + BROKEN.format(reason=reason(exc)), order.secrets)
                finally:
                    _close(stream)
                    stream = None
        finally:
            _close(stream)


def _preference(container: ContainerState, deployment: str, order: Order) -> tuple[bool, bool]:
    return container.running, container.name == container_name(deployment, order.instance, container.service or "")


def _close(stream: Iterator[str] | None) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        close()


class _Merged:
    """Followed streams of several services read at once, one daemon thread each, their lines in the order they
    come as ``(service, line)``; ``first`` is the first service's stream, already open. :meth:`close` stops
    handing lines on (a thread blocked in a followed stream ends with the process: only the CLI follows)."""

    def __init__(self, openers: list[tuple[str, Callable[[], Iterator[str]]]], first: Iterator[str],
                 reason: Callable[[LiveError], str]):
        self._queue: queue.Queue = queue.Queue(maxsize=FOLLOW_BUFFER_LINES)
        self._closed = threading.Event()
        self._open = len(openers)
        self._reason = reason
        for number, (name, opener) in enumerate(openers):
            stream = first if number == 0 else None
            threading.Thread(target=self._read, args=(name, opener, stream), name=f"logs-{name}", daemon=True).start()

    def _read(self, name: str, opener: Callable[[], Iterator[str]], stream: Iterator[str] | None) -> None:
        try:
            stream = stream if stream is not None else opener()
            for line in stream:
                if self._closed.is_set():
                    break
                self._queue.put((name, line))
        except LiveError as exc:
            log.warning("logs of service %s: %s", name, exc)
            self._queue.put((name, BROKEN.format(reason=self._reason(exc))))
        finally:
            _close(stream)
            self._queue.put(None)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        while self._open:
            item = self._queue.get()
            if item is None:
                self._open -= 1
                continue
            yield item

    def close(self) -> None:
        self._closed.set()
