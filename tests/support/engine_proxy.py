"""A Unix-socket proxy in front of the local Docker engine, for tests that need the engine to "go away" without
touching the real one: :meth:`EngineProxy.cut` closes every connection through it (a stream the bridge follows
breaks) and closes every new one at once (as an engine that is restarting); :meth:`EngineProxy.restore` forwards
connections again. (It keeps listening while cut: docker-py leaks the socket of a connection that is refused, which
the tests' warnings-as-errors would report.)"""
from __future__ import annotations

import os
import socket
import threading
from pathlib import Path


def engine_socket() -> str:
    """The path of the local engine's socket (``DOCKER_HOST=unix://...``, else the default)."""
    host = os.environ.get("DOCKER_HOST", "")
    return host[len("unix://"):] if host.startswith("unix://") else "/var/run/docker.sock"


class EngineProxy:
    """Forwards every connection to ``path`` (a Unix socket it makes) to the engine's socket; ``url`` is its
    ``unix://`` address for an engine adapter's ``base_url``. :meth:`stop` ends it."""

    def __init__(self, path: Path):
        self.path = str(path)
        self.url = f"unix://{self.path}"
        self._cut = False
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.path)
        self._server.listen(64)
        threading.Thread(target=self._accept, daemon=True, name="engine-proxy").start()

    def restore(self) -> None:
        """Forward new connections again."""
        self._cut = False

    def cut(self) -> None:
        """Close every connection, and each new one at once, until :meth:`restore`."""
        self._cut = True
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            _close(sock)

    def stop(self) -> None:
        """Cut, and stop listening."""
        self.cut()
        self._server.close()
        if os.path.exists(self.path):
            os.unlink(self.path)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self._cut:
                _close(client)
                continue
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(engine_socket())
            except OSError:
                _close(upstream)
                _close(client)
                continue
            with self._lock:
                self._open.update((client, upstream))
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):  # the other pump ends too; closing twice is harmless
            _close(sock)
        with self._lock:
            self._open.difference_update((source, target))


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
