"""expiring.ExpiringCache: what an attacker who controls the size and the number of answers can make it
hold (TokenCache, the TokenReview refusals and the SubjectAccessReview answers are built on it)."""

from __future__ import annotations

from kube_oidc_proxy.authn.cache import TokenCache, token_key
from kube_oidc_proxy.authn.model import Authenticated, UserInfo
from kube_oidc_proxy.expiring import ExpiringCache

T0 = 1_000.0


def cache(max_entries: int = 100, max_bytes: int = 64_000, sweep_interval: float = 10.0) -> ExpiringCache[int, str]:
    return ExpiringCache(max_entries=max_entries, max_bytes=max_bytes, sweep_interval=sweep_interval)


def test_an_entry_lives_until_its_own_deadline() -> None:
    answers = cache()
    answers.put(1, "a", until=T0 + 5, now=T0, size=10)
    assert answers.get(1, T0 + 4.999) == "a"
    assert answers.get(1, T0 + 5) is None
    assert (len(answers), answers.held_bytes) == (0, 0)


def test_expired_entries_are_swept_out_though_the_cache_never_fills() -> None:
    answers = cache(sweep_interval=10)
    for n in range(50):
        answers.put(n, "x", until=T0 + 1, now=T0, size=100)
    assert len(answers) == 50
    answers.put(100, "y", until=T0 + 30, now=T0 + 9, size=100)  # not yet time to sweep
    assert len(answers) == 51
    answers.put(101, "z", until=T0 + 30, now=T0 + 10, size=100)
    assert len(answers) == 2
    assert answers.held_bytes == 200


def test_the_bytes_held_never_pass_the_bound_however_large_the_entries() -> None:
    answers = cache(max_entries=10_000, max_bytes=64_000)
    for n in range(5_000):
        answers.put(n, "x", until=T0 + 60, now=T0, size=900)
        assert answers.held_bytes <= 64_000
    assert answers.get(4_999, T0) == "x"  # the newest stay
    assert answers.get(0, T0) is None  # the oldest went


def test_one_oversized_entry_is_not_stored_and_flushes_nothing() -> None:
    answers = cache(max_bytes=64_000)
    for n in range(50):
        answers.put(n, "x", until=T0 + 60, now=T0, size=1_000)
    answers.put(999, "huge", until=T0 + 60, now=T0, size=1_001)  # more than a 64th of the bound
    assert answers.get(999, T0) is None
    assert len(answers) == 50


def test_entries_are_bounded_too() -> None:
    answers = cache(max_entries=10)
    for n in range(1_000):
        answers.put(n, "x", until=T0 + 60, now=T0, size=1)
        assert len(answers) <= 10


def test_replacing_an_entry_counts_its_bytes_once() -> None:
    answers = cache()
    answers.put(1, "a", until=T0 + 60, now=T0, size=300)
    answers.put(1, "b", until=T0 + 60, now=T0, size=200)
    assert (len(answers), answers.held_bytes) == (1, 200)
    answers.clear()
    assert (len(answers), answers.held_bytes) == (0, 0)


def test_token_cache_entries_are_as_large_as_the_identities_they_hold() -> None:
    bound = 8 * 1024 * 1024
    tokens = TokenCache(max_bytes=bound)
    small = Authenticated(UserInfo("alice", groups=("dev",)), expires_at=T0 + 60)
    tokens.put(token_key(b"small"), small, T0)
    after_small = tokens.held_bytes
    big = Authenticated(UserInfo("bob", groups=tuple(f"group-{i:04}" for i in range(1_000))), expires_at=T0 + 60)
    tokens.put(token_key(b"big"), big, T0)
    assert tokens.held_bytes - after_small > 50 * 1_000  # a thousand groups weigh what they hold
    for n in range(1_000):  # a flood of large identities cannot grow it past its bound
        tokens.put(token_key(b"%d" % n), big, T0)
        assert tokens.held_bytes <= bound
    assert len(tokens) < 200
    huge = Authenticated(UserInfo("carol", groups=tuple(f"group-{i:05}" for i in range(20_000))), expires_at=T0 + 60)
    tokens.put(token_key(b"huge"), huge, T0)  # more than a 64th of the bound: verified again next time instead
    assert tokens.get(token_key(b"huge"), T0) is None
