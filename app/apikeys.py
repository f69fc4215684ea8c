"""API keys: creation, verification in constant time, revocation.

A token looks like ``live_<prefix>_<secret>``. The prefix (public) finds the
row; the SHA-256 of the whole token is compared with ``hmac.compare_digest``.
Only the hash is stored, so a database leak does not leak usable tokens.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
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


def verify_token(token: str) -> Principal | None:
    match = _TOKEN_RE.match(token or "")
    if not match:
        return None
    key = ApiKey.get_or_none(ApiKey.token_prefix == match.group(1))
    expected = key.token_hash if key is not None else _hash("")  # compare anyway: same time either way
    valid = hmac.compare_digest(expected, _hash(token))
    if key is None or not valid or key.revoked_at is not None:
        return None
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at > _LAST_USED_RESOLUTION:
        ApiKey.update(last_used_at=now).where(ApiKey.id == key.id).execute()
    return Principal(name=key.name, scope=key.scope)


def revoke_key(name: str) -> ApiKey:
    key = ApiKey.get_or_none(ApiKey.name == name)
    if key is None:
        raise NotFound(f"no API key named {name!r}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        key.save()
    return key


def list_keys() -> list[ApiKey]:
    return list(ApiKey.select().order_by(ApiKey.name))
