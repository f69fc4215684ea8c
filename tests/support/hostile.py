"""Hostile clients for tests: slow bodies, connections that never close, and a /healthz probe.

They speak HTTP/1.1 over raw sockets on loopback, as an attacker would, so that a test sees
exactly what the server does: when it answers, whether it closes the connection, and whether
``/healthz`` keeps answering meanwhile.
"""
from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

import requests

from tests.support.live_service import Service

PROBE_TIMEOUT = 5.0  # generous: on a busy 2-core machine the abuse, gunicorn and the probe share the CPUs
Result = TypeVar("Result")


class HealthProbe:
    """Asks ``url``/healthz every ``interval`` seconds in a thread, each time on a new connection."""

    def __init__(self, url: str, interval: float = 0.5):
        self.url, self.interval = url, interval
        self.answers: list[int | str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="healthz-probe", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.answers.append(requests.get(f"{self.url}/healthz", timeout=PROBE_TIMEOUT).status_code)
            except requests.RequestException as exc:
                self.answers.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(self.interval)

    def __enter__(self) -> "HealthProbe":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=PROBE_TIMEOUT + 5)

    def assert_healthy(self, at_least: int) -> None:
        """Every probe got a 200, and at least ``at_least`` probes ran."""
        failures = [answer for answer in self.answers if answer != 200]
        assert not failures, f"/healthz failed during the abuse: {failures[:5]} ({len(self.answers)} probes)"
        assert len(self.answers) >= at_least, f"only {len(self.answers)} probes ran"


def request_head(method: str, path: str, headers: dict[str, str], declared: int | None) -> bytes:
    """The head of an HTTP/1.1 request, announcing a body of ``declared`` bytes when given."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if declared is not None:
        lines.append(f"Content-Length: {declared}")
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class SlowBody:
    """One client that sends a request head, then its body at one byte a second, whatever the server says.

    Like an attacker it ignores the answer and the server's end of the connection, and goes on
    sending until a send fails (the server dropped the connection) or ``seconds`` passed.
    ``received`` is what the server sent, ``closed`` whether it ended the connection, ``sent``
    the number of body bytes sent of the ``declared`` ones (``None``: a request without a body,
    then junk bytes after it, like a client that never closes).
    """

    def __init__(self, port: int, path: str, headers: dict[str, str] | None = None, declared: int | None = 1000,
                 method: str = "POST"):
        self.port, self.path, self.declared, self.method = port, path, declared, method
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.received, self.closed, self.sent = b"", False, 0

    def run(self, seconds: float) -> "SlowBody":
        """Send until the server drops the connection or ``seconds`` pass."""
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(request_head(self.method, self.path, self.headers, self.declared))
            while time.monotonic() - started < seconds and (self.declared is None or self.sent < self.declared):
                try:
                    sock.sendall(b"[")
                except OSError:  # the server dropped the connection
                    break
                self.sent += 1
                self._listen(sock, until=started + self.sent)  # one byte a second
        return self

    def _listen(self, sock: socket.socket, until: float) -> None:
        while (left := until - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                return
            except OSError:
                self.closed = True
                return
            if not chunk:  # the server ended its side; an attacker goes on sending anyway
                self.closed = True
                time.sleep(max(0.0, until - time.monotonic()))
                return
            self.received += chunk

    @property
    def status(self) -> int | None:
        """The status code of the answer, or None if none came."""
        head = self.received.split(b"\r\n", 1)[0].split()
        return int(head[1]) if len(head) > 1 and head[1].isdigit() else None

    def header(self, name: str) -> str | None:
        """The value of the answer's header ``name``, or None."""
        for line in self.received.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
            key, _, value = line.decode("latin-1").partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None


def attack(seconds: float, clients: int, one: Callable[[], Result]) -> list[Result]:
    """``clients`` threads each calling ``one()`` again and again for ``seconds``; every result."""
    stop = time.monotonic() + seconds

    def loop(_):
        results = []
        while time.monotonic() < stop:
            results.append(one())
        return results

    with ThreadPoolExecutor(max_workers=clients) as pool:
        return [result for results in pool.map(loop, range(clients)) for result in results]


def server_errors(service: Service) -> list[str]:
    """Access-log lines of 5xx answers and tracebacks in gunicorn's log."""
    log = (service.logs / "gunicorn.log").read_text()
    return [line for line in log.splitlines() if '"status": 5' in line or "Traceback" in line]
