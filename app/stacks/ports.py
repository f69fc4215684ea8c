"""Host ports that publish projects' endpoints on ``127.0.0.1``.

Each endpoint of an order (``"service:port"``) is published on a host port of its own, chosen once from
:data:`FIRST_HOST_PORT`-:data:`LAST_HOST_PORT` and recorded on the order, so it stays the same across
recreates and restarts for the order's whole life (docs/PRODUCTS.md). Which ports other orders hold is
the order records' business (``app.orders``): :meth:`PortAllocator.allocate` is given that set.

A port free when it is chosen may be taken before the engine binds it (another process, another Live
installation on the same engine): the engine then refuses with :class:`~app.errors.HostPortInUse`, and a
deploy moves such an endpoint to another free port at most :data:`PORT_MOVES` times.
"""
from __future__ import annotations

import socket

from app.errors import LiveError

#: The range host ports are chosen from, both ends included.
FIRST_HOST_PORT, LAST_HOST_PORT = 20000, 29999

#: How many taken host ports one deploy moves away from before it fails.
PORT_MOVES = 5


class PortAllocator:
    """Chooses host ports on 127.0.0.1 for endpoints from ``first``-``last`` (both included)."""

    def __init__(self, first: int = FIRST_HOST_PORT, last: int = LAST_HOST_PORT):
        self.first, self.last = first, last

    def allocate(self, taken: set[int]) -> int:
        """The lowest port of the range that is not in ``taken`` and that nothing on this host has bound.

        Raises :class:`LiveError` (not transient) when there is none.
        """
        for port in range(self.first, self.last + 1):
            if port not in taken and _is_free(port):
                return port
        raise LiveError(f"no free host port left in {self.first}-{self.last}")


def _is_free(port: int) -> bool:
    """Whether ``port`` of 127.0.0.1 can be bound now (a probe: the engine may still find it taken later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
