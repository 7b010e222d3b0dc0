"""What one kubectl --as check costs, as an attacker counts it: reviews sent, memory held, time taken.

The fake reviewer counts every SubjectAccessReview and can hold them in flight until the test lets them go;
time is a clock the test moves."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

import pytest

from kube_oidc_proxy.authn.model import UserInfo
from kube_oidc_proxy.authz.checker import CACHE_ENTRY_BYTES, ImpersonationChecker, ReviewError, ReviewNotSent
from kube_oidc_proxy.authz.requested import ImpersonationRequest
from kube_oidc_proxy.authz.review import Attributes

ALICE = UserInfo("alice", uid="u-a", groups=("dev",), extra={"k": ("v",)})
MALLORY = UserInfo("mallory", groups=("interns",))


def request(user: str = "bob", **kwargs: Any) -> ImpersonationRequest:
    return ImpersonationRequest(
        user=user, uid=kwargs.get("uid", ""), groups=kwargs.get("groups", ()), extra=kwargs.get("extra", {})
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def settle() -> None:
    """Let every task that can run, run (no time passes)."""
    for _ in range(10):
        await asyncio.sleep(0)


class FakeReviewer:
    """Allows the values in ``allowed``; every review is recorded, with the timeout it was given."""

    def __init__(self, allowed: Collection[str] = (), *, clock: Clock | None = None, takes: float = 0.0) -> None:
        self.allowed = allowed
        self.names: list[str] = []
        self.callers: list[str] = []
        self.timeouts: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.release = asyncio.Event()
        self.release.set()
        self.fail: Exception | None = None
        self._clock = clock
        self._takes = takes  # seconds of the test's clock each review takes

    @property
    def count(self) -> int:
        return len(self.names)

    async def subject_access_review(self, body: dict[str, Any], *, caller: str, timeout: float) -> bool:
        name = str(body["spec"]["resourceAttributes"]["name"])
        self.names.append(name)
        self.callers.append(caller)
        self.timeouts.append(timeout)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self.release.wait()
        finally:
            self.in_flight -= 1
        if self._clock is not None:
            self._clock.now += self._takes
        if self.fail is not None:
            raise self.fail
        return name in self.allowed


async def test_a_caller_with_no_rights_costs_one_review_however_much_it_asks_for() -> None:
    reviewer = FakeReviewer()
    checker = ImpersonationChecker(reviewer)
    groups = tuple(f"g{i}" for i in range(200))
    extra = {"scopes": tuple(f"s{i}" for i in range(50))}
    denied = await checker.first_denied(MALLORY, request("root", groups=groups, extra=extra, uid="0"))
    assert denied == Attributes("users", "root")
    assert reviewer.names == ["root"]


async def test_a_denied_group_after_an_allowed_user_costs_two_reviews() -> None:
    reviewer = FakeReviewer({"bob"})
    checker = ImpersonationChecker(reviewer)
    denied = await checker.first_denied(MALLORY, request(groups=tuple(f"g{i}" for i in range(200))))
    assert denied == Attributes("groups", "g0")
    assert reviewer.names == ["bob", "g0"]


async def test_reviews_go_one_at_a_time_in_kube_apiservers_order_about_the_caller() -> None:
    reviewer = FakeReviewer({"bob", "a", "b", "x", "7"})
    checker = ImpersonationChecker(reviewer)
    allowed = request(groups=("a", "b"), extra={"scopes": ("x",)}, uid="7")
    assert await checker.first_denied(ALICE, allowed) is None
    assert reviewer.names == ["bob", "a", "b", "x", "7"]
    assert reviewer.max_in_flight == 1
    assert set(reviewer.callers) == {"alice"}  # whose share of the review budget each takes


async def test_a_remembered_denial_decides_without_a_review() -> None:
    reviewer = FakeReviewer({"bob"})
    checker = ImpersonationChecker(reviewer)
    assert await checker.first_denied(ALICE, request(groups=("ops",))) == Attributes("groups", "ops")
    assert reviewer.count == 2
    # the same denied group behind a user never asked about: the denial is known, nothing is sent
    assert await checker.first_denied(ALICE, request("carol", groups=("ops",))) == Attributes("groups", "ops")
    assert reviewer.count == 2


async def test_answers_are_remembered_per_caller_for_a_while() -> None:
    clock = Clock()
    reviewer = FakeReviewer({"bob"})
    checker = ImpersonationChecker(reviewer, ttl=10, clock=clock)
    assert await checker.first_denied(ALICE, request()) is None
    assert await checker.first_denied(ALICE, request()) is None
    assert reviewer.count == 1
    assert await checker.first_denied(UserInfo("alice"), request()) is None  # other groups: another caller
    assert await checker.first_denied(MALLORY, request()) is None
    assert reviewer.count == 3
    clock.now += 10
    assert await checker.first_denied(ALICE, request()) is None
    assert reviewer.count == 4


async def test_a_flood_of_one_request_costs_one_review_per_value() -> None:
    reviewer = FakeReviewer({"bob", "ops"})
    reviewer.release.clear()
    checker = ImpersonationChecker(reviewer)
    flood = [asyncio.ensure_future(checker.first_denied(MALLORY, request(groups=("ops",)))) for _ in range(500)]
    await settle()
    assert reviewer.count == 1  # the user, once; every other check waits for that answer
    reviewer.release.set()
    assert await asyncio.gather(*flood) == [None] * 500
    assert reviewer.names == ["bob", "ops"]


async def test_a_check_whose_client_left_does_not_cancel_the_review_others_wait_for() -> None:
    reviewer = FakeReviewer({"bob"})
    reviewer.release.clear()
    checker = ImpersonationChecker(reviewer)
    first = asyncio.ensure_future(checker.first_denied(ALICE, request()))
    await settle()
    second = asyncio.ensure_future(checker.first_denied(ALICE, request()))
    await settle()
    first.cancel()
    reviewer.release.set()
    assert await second is None
    assert reviewer.count == 1


async def test_a_failed_review_fails_every_check_waiting_for_it_and_is_not_remembered() -> None:
    reviewer = FakeReviewer({"bob"})
    reviewer.release.clear()
    reviewer.fail = ReviewError("kube-apiserver is down")
    checker = ImpersonationChecker(reviewer)
    waiting = [asyncio.ensure_future(checker.first_denied(ALICE, request())) for _ in range(3)]
    await settle()
    reviewer.release.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, ReviewError) for r in results)
    assert reviewer.count == 1
    reviewer.fail = None
    assert await checker.first_denied(ALICE, request()) is None  # asked again: a failure is never an answer
    assert reviewer.count == 2


async def test_all_reviews_of_one_check_share_one_deadline() -> None:
    clock = Clock()
    reviewer = FakeReviewer({"bob", "a", "b", "c"}, clock=clock, takes=4.0)
    checker = ImpersonationChecker(reviewer, timeout=10, clock=clock)
    with pytest.raises(ReviewError, match="longer than 10s"):
        await checker.first_denied(ALICE, request(groups=("a", "b", "c")))
    assert reviewer.timeouts == [10, 6, 2]  # what each review had left, the wait for a slot included
    assert reviewer.names == ["bob", "a", "b"]  # "c" would start after the deadline: not sent


async def test_reviews_sent_per_check_are_reported() -> None:
    counts: list[int] = []
    reviewer = FakeReviewer({"bob", "a"})
    checker = ImpersonationChecker(reviewer, on_reviews=counts.append)
    await checker.first_denied(ALICE, request(groups=("a", "b", "c")))
    await checker.first_denied(ALICE, request(groups=("a", "b", "c")))
    await checker.first_denied(ALICE, request(groups=("a",)))
    assert counts == [3, 0, 0]


async def test_a_review_the_budget_did_not_send_is_not_counted_as_sent() -> None:
    counts: list[int] = []
    reviewer = FakeReviewer({"bob"})
    checker = ImpersonationChecker(reviewer, on_reviews=counts.append)
    reviewer.fail = ReviewNotSent("no slot in time")
    with pytest.raises(ReviewNotSent):
        await checker.first_denied(ALICE, request())
    reviewer.fail = ReviewError("kube-apiserver did not answer")
    with pytest.raises(ReviewError):
        await checker.first_denied(ALICE, request())
    assert counts == [0, 1]  # the second was sent, though not answered


async def test_an_answer_costs_the_same_memory_whatever_the_caller_and_value_hold() -> None:
    reviewer = FakeReviewer()
    checker = ImpersonationChecker(reviewer)
    huge_caller = UserInfo("m" * 100_000, groups=tuple("g" * 1000 + str(i) for i in range(200)))
    for i in range(20):
        await checker.first_denied(huge_caller, request("u" * 4000 + str(i)))
    assert len(checker._answers) == 20
    assert checker._answers.held_bytes == 20 * CACHE_ENTRY_BYTES


async def test_the_answers_are_bounded_and_expired_ones_swept_out() -> None:
    clock = Clock()
    reviewer = FakeReviewer()
    checker = ImpersonationChecker(reviewer, max_entries=10, ttl=10, clock=clock)
    for i in range(50):
        await checker.first_denied(ALICE, request(f"u{i}"))
        assert len(checker._answers) <= 10
    clock.now += 10
    await checker.first_denied(ALICE, request("late"))  # the first answer after they expired sweeps them
    assert len(checker._answers) == 1


async def test_a_value_asked_for_many_times_is_reviewed_once() -> None:
    reviewer = FakeReviewer({"bob", "ops"})
    checker = ImpersonationChecker(reviewer)
    assert await checker.first_denied(ALICE, request(groups=("ops",) * 60, extra={"k": ("v",) * 3})) is not None
    assert reviewer.names == ["bob", "ops", "v"]
