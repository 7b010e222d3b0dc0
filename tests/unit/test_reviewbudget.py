"""reviewbudget.ReviewBudget: the proxy's own reviews at client-go's rate, with a deadline, a bound on how
many wait, and each caller to its share. Time is a clock the test moves; ``reserve`` says how long a review
would wait, so nothing here sleeps."""

from __future__ import annotations

import pytest

from kube_oidc_proxy.server.reviewbudget import Caller, ReviewBudget, Throttled, network

ALICE: Caller = ("user", "alice")
MALLORY: Caller = ("user", "mallory")
FAR = 1e9  # a deadline that never matters


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def budget(qps: float = 50, burst: int = 100, **kwargs: int) -> tuple[ReviewBudget, Clock]:
    clock = Clock()
    return ReviewBudget(qps, burst, clock=clock, **kwargs), clock


def test_the_burst_goes_at_once_then_one_slot_per_1_over_qps() -> None:
    limiter, _ = budget(qps=10, burst=3)
    assert [limiter.reserve(ALICE, FAR) for _ in range(3)] == [0, 0, 0]
    assert limiter.reserve(ALICE, FAR) == pytest.approx(0.1)
    assert limiter.reserve(("user", "bob"), FAR) == pytest.approx(0.2)  # the next slot, whoever asks


def test_slots_come_back_as_time_passes() -> None:
    limiter, clock = budget(qps=10, burst=3)
    for _ in range(3):
        limiter.reserve(ALICE, FAR)
    clock.now += 0.2
    assert [limiter.reserve(ALICE, FAR) for _ in range(2)] == [0, 0]
    assert limiter.reserve(ALICE, FAR) == pytest.approx(0.1)
    clock.now += 3600
    assert [limiter.reserve(ALICE, FAR) for _ in range(3)] == [0, 0, 0]  # never more than the burst saved up


def test_a_review_whose_slot_comes_after_its_deadline_is_refused_at_once_and_takes_nothing() -> None:
    limiter, clock = budget(qps=10, burst=1)
    assert limiter.reserve(ALICE, clock.now + 10) == 0
    assert limiter.reserve(ALICE, clock.now + 0.05) is Throttled.DEADLINE  # its slot would come at +0.1
    assert limiter.reserve(ALICE, clock.now + 0.1) == pytest.approx(0.1)  # the same slot: nobody took it


def test_the_number_of_reviews_waiting_is_bounded() -> None:
    limiter, _ = budget(qps=1, burst=1, max_waiting=5, caller_share=5)
    assert limiter.reserve(ALICE, FAR) == 0  # not waiting
    delays = [limiter.reserve(("user", f"u{i}"), FAR) for i in range(5)]
    assert delays == [1, 2, 3, 4, 5]
    assert limiter.waiting == 5
    assert limiter.reserve(("user", "late"), FAR) is Throttled.QUEUE_FULL


def test_waiting_reviews_leave_the_queue_when_their_slot_comes() -> None:
    limiter, clock = budget(qps=1, burst=1, max_waiting=2, caller_share=3)
    assert [limiter.reserve(ALICE, FAR) for _ in range(3)] == [0, 1, 2]
    assert limiter.reserve(ALICE, FAR) is Throttled.QUEUE_FULL
    clock.now += 1
    assert limiter.waiting == 1
    assert limiter.reserve(ALICE, FAR) == 2  # behind the one still waiting


def test_one_caller_cannot_hold_more_than_its_share_of_the_waiting_slots() -> None:
    limiter, _ = budget(qps=50, burst=100)  # the defaults: 100 may wait, 10 of them for one caller
    assert (limiter.max_waiting, limiter.caller_share) == (100, 10)
    results = [limiter.reserve(MALLORY, FAR) for _ in range(1000)]
    assert results.count(0) == 100  # the burst
    assert len([r for r in results if isinstance(r, float) and r > 0]) == 10
    assert results.count(Throttled.CALLER_SHARE) == 890
    # another caller's review waits behind those ten only: (10 + 1) / qps
    assert limiter.reserve(ALICE, FAR) == pytest.approx(11 / 50)


def test_while_one_caller_floods_without_pause_another_waits_at_most_its_share_behind() -> None:
    limiter, clock = budget(qps=50, burst=100)
    bound = (limiter.caller_share + 1) / 50
    worst = 0.0
    for step in range(5000):  # 5 s of a flood, one attempt per millisecond; alice asks every 250 ms
        clock.now += 0.001
        limiter.reserve(MALLORY, clock.now + 10)
        if step % 250 == 0:
            delay = limiter.reserve(ALICE, clock.now + 10)
            assert isinstance(delay, float)
            worst = max(worst, delay)
    assert 0 < worst <= bound + 1e-9


def test_each_flooding_caller_puts_at_most_its_share_ahead_of_another() -> None:
    limiter, _ = budget(qps=50, burst=100)
    for flooder in range(3):
        for _ in range(1000):
            limiter.reserve(("user", f"mallory-{flooder}"), FAR)
    assert limiter.waiting == 30
    assert limiter.reserve(network("10.0.0.9"), FAR) == pytest.approx(31 / 50)


def test_small_bursts_still_leave_one_waiting_slot_per_caller() -> None:
    limiter, _ = budget(qps=5, burst=1)
    assert (limiter.max_waiting, limiter.caller_share) == (10, 1)


def test_no_qps_means_no_limit() -> None:
    limiter, _ = budget(qps=0, burst=1)
    assert all(limiter.reserve(MALLORY, 0) == 0 for _ in range(10_000))


def test_reviews_of_unverified_tokens_hold_at_most_half_the_waiting_slots_however_many_networks_ask() -> None:
    limiter, _ = budget(qps=50, burst=100)
    for _ in range(100):
        limiter.reserve(MALLORY, FAR)  # the burst, spent
    floods = [limiter.reserve(network(f"10.{i // 256}.{i % 256}.1"), FAR) for i in range(1000)]
    assert sum(isinstance(r, float) for r in floods) == limiter.unverified_share == 50
    assert floods.count(Throttled.UNVERIFIED_SHARE) == 950
    # an authenticated caller's review still gets a slot, behind those 50 only
    assert limiter.reserve(ALICE, FAR) == pytest.approx(51 / 50)


def test_a_clients_network_is_its_share_of_unverified_reviews() -> None:
    assert network("192.0.2.7") == network("192.0.2.200") != network("192.0.3.7")
    assert network("2001:db8:1:2::1") == network("2001:db8:1:2:ffff::9") != network("2001:db8:1:3::1")
    assert network("not-an-address") == ("network", "not-an-address")  # a unix socket peer, say
