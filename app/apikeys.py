"""API keys: creation, verification in constant time, revocation.

A token looks like ``live_<prefix>_<secret>``. The prefix (public) finds the
row; the SHA-256 of the whole token is compared with ``hmac.compare_digest``.
Only the hash is stored, so a database leak does not leak usable tokens.

A verified key is remembered per process for :data:`CACHE_SECONDS` (5 s), keyed by the token's SHA-256:
the hot calls do not read the key's row on every request. Revoking a key therefore takes effect within
5 s in every web process (at once in the process that revokes it). Only valid keys are remembered:
an unknown, wrong or revoked token is checked against the database every time.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass

from app.errors import Conflict, InvalidRequest, NotFound
from app.models import ApiKey, utcnow

SCOPES = ("whmcs", "read", "admin")
# What each scope may do; admin may do everything.
GRANTS = {"whmcs": {"whmcs"}, "read": {"read"}, "admin": {"admin", "whmcs", "read"}}
_TOKEN_RE = re.compile(r"^live_([A-Za-z0-9]{8})_([A-Za-z0-9_-]{20,100})$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")
# Writing last_used_at on every request would make every read a write.
_LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
#: Seconds a verified key is trusted without reading its row again, per process: a key revoked elsewhere
#: (another process, the CLI) keeps working in a process that verified it for at most this long.
CACHE_SECONDS = 5.0
#: At most this many verified tokens are remembered; past it the cache starts empty again.
CACHE_ENTRIES = 1024


@dataclass(frozen=True)
class Principal:
    name: str
    scope: str

    @property
    def grants(self) -> set[str]:
        return GRANTS[self.scope]


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_key(name: str, scope: str) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the token (which is never stored)."""
    if not _NAME_RE.match(name or ""):
        raise InvalidRequest(f"invalid key name {name!r}: letters, digits and _.@- only, at most 100 characters")
    if scope not in SCOPES:
        raise InvalidRequest(f"unknown scope {scope!r} (scopes: {', '.join(SCOPES)})")
    if ApiKey.select().where(ApiKey.name == name).exists():
        raise Conflict(f"an API key named {name!r} already exists")
    prefix = secrets.token_hex(4)
    token = f"live_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey.create(name=name, scope=scope, token_prefix=prefix, token_hash=_hash(token))
    return key, token


class VerifiedKeys:
    """The keys this process verified recently: ``{sha256 of the token: (Principal, monotonic expiry)}``.

    An entry lives :data:`CACHE_SECONDS`; only tokens that matched a key that was not revoked go in (the key
    is the hash of the whole token, so another secret with the same prefix never finds it). ``clock`` is
    ``time.monotonic`` (tests replace it). Thread-safe.
    """

    def __init__(self, seconds: float = CACHE_SECONDS, entries: int = CACHE_ENTRIES, clock=time.monotonic):
        self.seconds = seconds
        self.entries = entries
        self.clock = clock
        self._found: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str) -> Principal | None:
        found = self._found.get(digest)
        if found is None:
            return None
        if self.clock() >= found[1]:
            with self._lock:
                self._found.pop(digest, None)
            return None
        return found[0]

    def put(self, digest: str, principal: Principal) -> None:
        with self._lock:
            if len(self._found) >= self.entries:
                self._found.clear()
            self._found[digest] = (principal, self.clock() + self.seconds)

    def clear(self) -> None:
        with self._lock:
            self._found.clear()


#: This process's verified keys (see :class:`VerifiedKeys`).
verified_keys = VerifiedKeys()


def verify_token(token: str) -> Principal | None:
    """The key's principal for a ``live_<prefix>_<secret>`` token, None for a malformed, unknown, wrong or
    revoked one. Answered from :data:`verified_keys` when this process verified the same token less than
    :data:`CACHE_SECONDS` ago; else from the key's row (and ``last_used_at`` written at most once a minute)."""
    match = _TOKEN_RE.match(token or "")
    if not match:
        return None
    digest = _hash(token)
    principal = verified_keys.get(digest)
    if principal is not None:
        return principal
    key = ApiKey.get_or_none(ApiKey.token_prefix == match.group(1))
    expected = key.token_hash if key is not None else _hash("")  # compare anyway: same time either way
    valid = hmac.compare_digest(expected, digest)
    if key is None or not valid or key.revoked_at is not None:
        return None
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at > _LAST_USED_RESOLUTION:
        ApiKey.update(last_used_at=now).where(ApiKey.id == key.id).execute()
    principal = Principal(name=key.name, scope=key.scope)
    verified_keys.put(digest, principal)
    return principal


def revoke_key(name: str) -> ApiKey:
    key = ApiKey.get_or_none(ApiKey.name == name)
    if key is None:
        raise NotFound(f"no API key named {name!r}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        key.save()
    verified_keys.clear()  # at once in this process; other processes within CACHE_SECONDS
    return key


def list_keys() -> list[ApiKey]:
    return list(ApiKey.select().order_by(ApiKey.name))
