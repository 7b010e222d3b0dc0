"""The bounds one HTTP/2 connection meets beyond the library's: the reset budget, the control frame backlog."""

from __future__ import annotations

import pytest

from kube_oidc_proxy.server.h2_limits import (
    DEFAULT_MAX_STREAMS,
    MAX_QUEUED_CONTROL_FRAMES,
    RESET_BURST_PER_STREAM,
    RESETS_REGAINED_PER_SECOND,
    ControlFrameBacklog,
    ResetBudget,
    running_limit,
)


def resets_until_refused(budget: ResetBudget, now: float, limit: int = 100_000) -> int:
    """How many resets at ``now`` the budget takes before it refuses one."""
    for taken in range(limit):
        if not budget.reset(now):
            return taken
    raise AssertionError("the budget never refused")


@pytest.mark.parametrize("max_streams", [1, 2, 10, DEFAULT_MAX_STREAMS, 250])
def test_a_burst_of_resets_up_to_twice_the_stream_limit(max_streams: int) -> None:
    budget = ResetBudget(max_streams, now=100.0)
    assert resets_until_refused(budget, 100.0) == RESET_BURST_PER_STREAM * max_streams == running_limit(max_streams)


def test_once_spent_the_budget_stays_spent_without_time_or_answers() -> None:
    budget = ResetBudget(10, now=0.0)
    resets_until_refused(budget, 0.0)
    assert [budget.reset(0.0) for _ in range(5)] == [False] * 5


def test_every_answered_response_gives_one_reset_back() -> None:
    budget = ResetBudget(10, now=0.0)
    resets_until_refused(budget, 0.0)
    budget.reset(0.0)  # refused ones are owed too: the level is below zero
    for _ in range(3):
        budget.answered()
    assert resets_until_refused(budget, 0.0) == 1


def test_answers_never_raise_the_budget_above_its_burst() -> None:
    budget = ResetBudget(10, now=0.0)
    for _ in range(1000):
        budget.answered()
    assert resets_until_refused(budget, 0.0) == 20


def test_time_gives_resets_back_at_a_fixed_rate_up_to_the_burst() -> None:
    budget = ResetBudget(10, now=0.0)
    assert resets_until_refused(budget, 0.0) == 20
    # one second later: the refused one is paid back, then RESETS_REGAINED_PER_SECOND more
    assert resets_until_refused(budget, 1.0) == int(RESETS_REGAINED_PER_SECOND) - 1
    # an hour later: no more than the burst
    assert resets_until_refused(budget, 3600.0) == 20


def test_a_client_that_cancels_now_and_then_never_meets_the_budget() -> None:
    budget = ResetBudget(DEFAULT_MAX_STREAMS, now=0.0)
    now = 0.0
    for request in range(100_000):  # one reset in ten requests, all at the same instant
        if request % 10 == 0:
            assert budget.reset(now)
        else:
            budget.answered()


def test_a_steady_stream_of_resets_faster_than_the_refill_is_cut() -> None:
    budget = ResetBudget(DEFAULT_MAX_STREAMS, now=0.0)
    allowed = 0
    for n in range(10_000):  # 100 resets a second, nothing answered
        if not budget.reset(n / 100):
            break
        allowed += 1
    # the burst, plus what 10/s regained while it was spent at 100/s
    assert 200 < allowed < 250


def test_control_frames_are_counted_only_while_the_client_does_not_read() -> None:
    backlog = ControlFrameBacklog()
    assert all(backlog.answered(client_reading=False) for _ in range(MAX_QUEUED_CONTROL_FRAMES))
    assert not backlog.answered(client_reading=False)


def test_a_client_that_reads_again_starts_its_count_afresh() -> None:
    backlog = ControlFrameBacklog()
    for _ in range(3):
        assert all(backlog.answered(client_reading=False) for _ in range(MAX_QUEUED_CONTROL_FRAMES - 1))
        assert backlog.answered(client_reading=True)
    assert all(backlog.answered(client_reading=True) for _ in range(5 * MAX_QUEUED_CONTROL_FRAMES))
