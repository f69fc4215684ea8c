"""A cache of verified API keys on a clock the test moves (app/apikeys.py's ``verified_keys``)."""
from __future__ import annotations

from app import apikeys
from app.apikeys import VerifiedKeys


class ManualClock:
    """A monotonic clock in seconds that moves only when the test adds to ``now``."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def manual_key_cache(monkeypatch) -> tuple[VerifiedKeys, ManualClock]:
    """Replace the process's cache of verified keys by an empty one (TTL ``CACHE_SECONDS``) on a manual clock."""
    clock = ManualClock()
    cache = VerifiedKeys(seconds=apikeys.CACHE_SECONDS, clock=clock)
    monkeypatch.setattr(apikeys, "verified_keys", cache)
    return cache, clock
