"""A Unix-socket proxy in front of the local Docker engine, for tests that need the engine to "go away" without
touching the real one: :meth:`EngineProxy.cut` closes every connection through it (a stream the bridge follows
breaks, new connections are refused) and :meth:`EngineProxy.restore` accepts connections again."""
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
    ``unix://`` address for DOCKER_HOST or an engine adapter's ``base_url``."""

    def __init__(self, path: Path):
        self.path = str(path)
        self.url = f"unix://{self.path}"
        self._server: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.restore()

    def restore(self) -> None:
        """Listen (again) and forward new connections."""
        if os.path.exists(self.path):
            os.unlink(self.path)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(self.path)
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True, name="engine-proxy").start()

    def cut(self) -> None:
        """Close the listener and every connection (as an engine that stopped); new connections are refused."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        if os.path.exists(self.path):
            os.unlink(self.path)
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    close = cut

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(engine_socket())
            except OSError:
                client.close()
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
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
