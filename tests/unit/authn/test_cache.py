"""cache.TokenCache: verified tokens by hash, until min(exp, verified + max_ttl), bounded in size."""

from __future__ import annotations

import hashlib

import pytest

from kube_oidc_proxy.authn.cache import TokenCache, token_key
from kube_oidc_proxy.authn.model import Authenticated, UserInfo

T0 = 1_000.0


def result(name: str = "alice", expires_at: float = T0 + 3600) -> Authenticated:
    return Authenticated(UserInfo(name, groups=("dev",)), expires_at=expires_at, issuer="https://issuer.example")


def key(n: int) -> bytes:
    return token_key(f"token-{n}".encode())


def test_a_token_not_seen_before_is_a_miss() -> None:
    cache = TokenCache()
    assert cache.get(key(1), T0) is None
    assert (cache.hits, cache.misses) == (0, 1)


def test_a_stored_token_is_a_hit() -> None:
    cache = TokenCache()
    stored = result()
    cache.put(key(1), stored, T0)
    assert cache.get(key(1), T0 + 1) is stored
    assert cache.get(key(2), T0 + 1) is None
    assert (cache.hits, cache.misses) == (1, 1)
    assert len(cache) == 1


@pytest.mark.parametrize(
    ("expires_at", "max_ttl", "last_hit", "first_miss"),
    [
        pytest.param(T0 + 3600, 60.0, T0 + 59.999, T0 + 60, id="max-ttl-first"),
        pytest.param(T0 + 30, 60.0, T0 + 29.999, T0 + 30, id="exp-first"),
        pytest.param(T0 + 60, 60.0, T0 + 59.999, T0 + 60, id="both-equal"),
        pytest.param(T0 + 0.5, 60.0, T0 + 0.25, T0 + 0.5, id="half-a-second-left"),
    ],
)
def test_an_entry_lives_until_the_earlier_of_exp_and_max_ttl(
    expires_at: float, max_ttl: float, last_hit: float, first_miss: float
) -> None:
    cache = TokenCache(max_ttl=max_ttl)
    cache.put(key(1), result(expires_at=expires_at), T0)
    assert cache.get(key(1), last_hit) is not None
    assert cache.get(key(1), first_miss) is None
    assert len(cache) == 0  # the expired entry is dropped when found
    assert cache.get(key(1), last_hit) is None  # and does not come back for an earlier clock


@pytest.mark.parametrize("expires_at", [T0, T0 - 1, T0 - 3600])
def test_a_token_is_never_stored_past_its_exp(expires_at: float) -> None:
    cache = TokenCache()
    cache.put(key(1), result(expires_at=expires_at), T0)
    assert len(cache) == 0
    assert cache.get(key(1), T0 - 7200) is None


def test_a_zero_max_ttl_stores_nothing() -> None:
    cache = TokenCache(max_ttl=0)
    cache.put(key(1), result(), T0)
    assert len(cache) == 0


def test_storing_a_token_again_replaces_its_entry() -> None:
    cache = TokenCache(max_ttl=60)
    cache.put(key(1), result("old"), T0)
    newer = result("new")
    cache.put(key(1), newer, T0 + 50)
    assert len(cache) == 1
    assert cache.get(key(1), T0 + 100) is newer


def test_a_full_cache_evicts_the_oldest_entries() -> None:
    cache = TokenCache(max_entries=10, max_ttl=3600)
    for n in range(10):
        cache.put(key(n), result(f"u{n}"), T0 + n)
    cache.put(key(10), result("u10"), T0 + 10)
    assert len(cache) <= 10
    now = T0 + 11
    assert cache.get(key(0), now) is None
    assert cache.get(key(10), now) is not None
    assert cache.get(key(9), now) is not None


def test_a_full_cache_evicts_expired_entries_before_the_oldest_live_ones() -> None:
    cache = TokenCache(max_entries=10, max_ttl=3600)
    cache.put(key(0), result("u0"), T0)  # the oldest, and alive
    for n in range(1, 10):
        expires = T0 + 5 if n == 5 else T0 + 3600
        cache.put(key(n), result(f"u{n}", expires_at=expires), T0 + n / 100)
    now = T0 + 6  # entry 5 has expired
    cache.put(key(10), result("u10"), now)
    assert len(cache) == 10
    assert cache.get(key(5), now) is None
    for n in (0, 1, 2, 3, 4, 6, 7, 8, 9, 10):
        assert cache.get(key(n), now) is not None, n


def test_the_cache_never_grows_past_its_bound() -> None:
    cache = TokenCache(max_entries=50, max_ttl=3600)
    for n in range(1_000):
        cache.put(key(n), result(), T0 + n / 1000)
        assert len(cache) <= 50
    assert cache.get(key(999), T0 + 1) is not None


def test_replacing_an_entry_in_a_full_cache_evicts_nothing() -> None:
    cache = TokenCache(max_entries=3, max_ttl=3600)
    for n in range(3):
        cache.put(key(n), result(), T0)
    cache.put(key(1), result("again"), T0 + 1)
    assert all(cache.get(key(n), T0 + 2) is not None for n in range(3))


def test_clear_empties_the_cache() -> None:
    cache = TokenCache()
    cache.put(key(1), result(), T0)
    cache.clear()
    assert len(cache) == 0
    assert cache.get(key(1), T0) is None


def test_the_cache_key_is_a_sha256_of_the_token_not_the_token() -> None:
    token = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
    digest = token_key(token)
    assert digest == hashlib.sha256(token).digest()
    assert len(digest) == 32
    assert token not in digest
    assert token_key(token + b"x") != digest


def test_the_token_never_appears_in_the_cache() -> None:
    token = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
    cache = TokenCache()
    cache.put(token_key(token), result(), T0)
    for stored_key, value in cache._cache._entries.items():
        assert token not in stored_key
        assert token.decode() not in repr(value)
        for part in token.split(b"."):
            assert part not in stored_key
            assert part.decode() not in repr(value)
