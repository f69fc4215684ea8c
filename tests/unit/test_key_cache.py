"""The per-process cache of verified API keys (app/apikeys.py): expiry, revocation within the TTL, and a wrong
secret never answered from the cache."""
from __future__ import annotations

import pytest

from app.apikeys import Principal, VerifiedKeys, create_key, revoke_key, verify_token
from app.models import ApiKey, utcnow
from tests.support.key_cache import ManualClock, manual_key_cache


@pytest.fixture
def keys(fake_live, monkeypatch):
    """A fresh cache (5 s) on a clock the test moves, and a whmcs key: ``(cache, clock, token)``."""
    cache, clock = manual_key_cache(monkeypatch)
    assert cache.seconds == 5.0
    return cache, clock, create_key("billing", "whmcs")[1]


def _revoke_elsewhere(name: str) -> None:
    """What `live apikey revoke` does in another process: the row changes, this process's cache does not."""
    ApiKey.update(revoked_at=utcnow()).where(ApiKey.name == name).execute()


def test_a_verified_key_is_answered_without_its_row_until_it_expires(keys):
    cache, clock, token = keys
    assert verify_token(token) == Principal("billing", "whmcs")
    _revoke_elsewhere("billing")
    clock.now += 4.9
    assert verify_token(token) == Principal("billing", "whmcs")  # within the TTL: the cached answer
    clock.now += 0.2
    assert verify_token(token) is None  # past it: the row is read again, and it is revoked
    clock.now += 100
    assert verify_token(token) is None  # a refused key is never cached: still refused


def test_revoking_in_this_process_takes_effect_at_once(keys):
    _cache, _clock, token = keys
    assert verify_token(token) is not None
    revoke_key("billing")
    assert verify_token(token) is None


def test_a_wrong_secret_with_a_cached_keys_prefix_is_refused(keys):
    cache, _clock, token = keys
    assert verify_token(token) is not None
    prefix = token.rsplit("_", 1)[0]
    wrong = f"{prefix}_{'x' * 43}"
    assert verify_token(wrong) is None
    assert verify_token(wrong) is None
    assert len(cache._found) == 1  # only the valid token is remembered
    assert verify_token(token) == Principal("billing", "whmcs")


def test_an_unknown_token_is_never_cached(keys):
    cache, _clock, _token = keys
    assert verify_token("live_abcdefgh_" + "y" * 43) is None
    assert verify_token("not a token") is None
    assert cache._found == {}


def test_the_cache_is_bounded(fake_live):
    cache = VerifiedKeys(seconds=5.0, entries=3, clock=ManualClock())
    for n in range(3):
        cache.put(f"digest{n}", Principal(f"k{n}", "read"))
    assert cache.get("digest2") == Principal("k2", "read")
    cache.put("digest3", Principal("k3", "read"))  # full: starts empty again
    assert cache.get("digest0") is None and cache.get("digest3") == Principal("k3", "read")
