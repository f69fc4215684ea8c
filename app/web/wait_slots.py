"""A per-process bound on lifecycle calls that wait for their operation.

A call with ``wait`` > 0 holds a gunicorn thread for up to 120 s. Without a bound,
as many waiting calls as there are threads would leave none for ``/healthz`` and
every other call. A waiting call takes a slot without blocking; when every slot is
taken it does not wait at all and answers at once, as with ``wait: 0``.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator


class WaitSlots:
    """At most ``size`` concurrent waits in this process; ``size`` 0 turns waiting off."""

    def __init__(self, size: int):
        if size < 0:
            raise ValueError("the number of wait slots cannot be negative")
        self.size = size
        self._free = threading.BoundedSemaphore(size) if size else None

    @contextmanager
    def slot(self) -> Iterator[bool]:
        """Yield True with a slot held until the block ends, or False at once when none is free."""
        granted = self._free is not None and self._free.acquire(blocking=False)
        try:
            yield granted
        finally:
            if granted:
                self._free.release()
