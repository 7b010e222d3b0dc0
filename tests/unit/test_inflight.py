"""The in-flight limit's counting: reads and writes apart, 0 for no limit, a slot freed by leave()."""

from __future__ import annotations

import pytest

from kube_oidc_proxy.server.inflight import IDLE_CEILING, IDLE_FLOOR, InflightLimit, idle_connections, is_mutating


@pytest.mark.parametrize(
    ("method", "mutating"),
    [
        (b"GET", False),
        (b"HEAD", False),
        (b"POST", True),
        (b"PUT", True),
        (b"PATCH", True),
        (b"DELETE", True),
        (b"OPTIONS", True),
        (b"get", True),
    ],
)
def test_only_get_and_head_are_reads_as_kube_apiserver_counts_them(method: bytes, mutating: bool) -> None:
    # kube-apiserver: get, list and watch are the read verbs, and HTTP methods are case-sensitive
    assert is_mutating(method) is mutating


def test_each_kind_is_admitted_up_to_its_own_limit() -> None:
    limit = InflightLimit(max_reads=2, max_mutating=1)
    assert [limit.enter(mutating=False) for _ in range(3)] == [True, True, False]
    assert [limit.enter(mutating=True) for _ in range(2)] == [True, False]
    assert (limit.reads, limit.mutating) == (2, 1)


def test_a_request_that_leaves_frees_its_slot_for_the_next() -> None:
    limit = InflightLimit(max_reads=1, max_mutating=1)
    assert limit.enter(mutating=False)
    assert not limit.enter(mutating=False)
    limit.leave(mutating=False)
    assert limit.enter(mutating=False)
    assert limit.reads == 1


def test_zero_is_no_limit() -> None:
    limit = InflightLimit(max_reads=0, max_mutating=0)
    assert all(limit.enter(mutating=m) for m in (False, True) for _ in range(10_000))
    assert (limit.reads, limit.mutating) == (10_000, 10_000)


@pytest.mark.parametrize(
    ("max_reads", "max_mutating", "idle"),
    [
        (400, 200, 600),  # the defaults: every request they admit can have its connection kept
        (3, 2, IDLE_FLOOR),  # reviews and HTTP/1.1 streams are not counted by the limits
        (5000, 5000, IDLE_CEILING),
        (0, 200, IDLE_CEILING),
        (400, 0, IDLE_CEILING),
    ],
)
def test_idle_connections_follow_what_the_limits_let_run_at_once(max_reads: int, max_mutating: int, idle: int) -> None:
    assert idle_connections(max_reads, max_mutating) == idle
