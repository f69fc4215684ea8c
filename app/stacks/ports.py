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

import random
import socket

from app.errors import LiveError

#: The range host ports are chosen from, both ends included.
FIRST_HOST_PORT, LAST_HOST_PORT = 20000, 29999

#: How many taken host ports one deploy moves away from before it fails.
PORT_MOVES = 5


class PortAllocator:
    """Chooses host ports on 127.0.0.1 for endpoints from ``first``-``last`` (both included).

    ``start`` is where each search begins: None (the default) is a random port of the range for each choice, so
    bridges sharing a host (two installations on one engine, tests run side by side, each with its own records)
    rarely reach for the same free port at once, and a port freed by a terminated order is not the next one handed
    out; a fixed ``start`` makes the choice predictable (tests).
    """

    def __init__(self, first: int = FIRST_HOST_PORT, last: int = LAST_HOST_PORT, start: int | None = None):
        self.first, self.last, self.start = first, last, start

    def allocate(self, taken: set[int]) -> int:
        """A port of the range that is not in ``taken`` and that nothing on this host has bound: the first such
        from ``start`` (random when None) up to ``last``, then from ``first``.

        Raises :class:`LiveError` (not transient) when there is none.
        """
        start = self.start if self.start is not None else random.randint(self.first, self.last)
        for port in [*range(start, self.last + 1), *range(self.first, start)]:
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
