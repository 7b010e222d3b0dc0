"""login.ratelimit: a token bucket per address, a bounded table of addresses."""

from __future__ import annotations

import pytest

from kube_oidc_proxy.login.ratelimit import BURST, RateLimiter

T0 = 1_000.0


def test_an_address_gets_its_burst_at_once_then_waits() -> None:
    limiter = RateLimiter()
    assert [limiter.take("192.0.2.1", T0) for _ in range(BURST)] == [0] * BURST
    assert limiter.take("192.0.2.1", T0) == 1


def test_the_bucket_refills_at_the_rate() -> None:
    limiter = RateLimiter(rate=0.5, burst=2)
    limiter.take("a", T0)
    limiter.take("a", T0)
    assert limiter.take("a", T0) == 2  # one token takes two seconds
    assert limiter.take("a", T0 + 1) == 1
    assert limiter.take("a", T0 + 2) == 0
    assert limiter.take("a", T0 + 2) == 2


def test_refilling_stops_at_the_burst() -> None:
    limiter = RateLimiter(rate=1, burst=3)
    limiter.take("a", T0)
    assert [limiter.take("a", T0 + 3600) for _ in range(4)] == [0, 0, 0, 1]


def test_addresses_have_buckets_of_their_own() -> None:
    limiter = RateLimiter(rate=1, burst=1)
    assert limiter.take("a", T0) == 0
    assert limiter.take("a", T0) == 1
    assert limiter.take("b", T0) == 0


def test_refused_requests_do_not_push_the_wait_further() -> None:
    limiter = RateLimiter(rate=1, burst=1)
    limiter.take("a", T0)
    for _ in range(100):
        assert limiter.take("a", T0 + 0.5) == 1
    assert limiter.take("a", T0 + 1) == 0


def test_a_clock_going_back_gives_no_tokens() -> None:
    limiter = RateLimiter(rate=1, burst=1)
    limiter.take("a", T0)
    assert limiter.take("a", T0 - 100) == 1


@pytest.mark.parametrize("addresses", [10, 1000])
def test_the_table_of_addresses_never_passes_its_bound(addresses: int) -> None:
    limiter = RateLimiter(max_addresses=addresses)
    for n in range(addresses * 3):
        limiter.take(f"2001:db8::{n:x}", T0)
    assert len(limiter) == addresses


def test_the_least_recently_seen_address_is_forgotten_first() -> None:
    limiter = RateLimiter(rate=0.001, burst=1, max_addresses=2)
    limiter.take("a", T0)
    limiter.take("b", T0)
    assert limiter.take("a", T0 + 1) > 0  # seen again: now the most recent
    limiter.take("c", T0 + 2)  # forgets b
    assert limiter.take("a", T0 + 3) > 0
    assert limiter.take("b", T0 + 3) == 0, "b was forgotten: a full bucket again"
