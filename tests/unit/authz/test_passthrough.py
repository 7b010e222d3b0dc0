"""Token passthrough: what TokenReview says, and how long the answer is trusted."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from kube_oidc_proxy.authn.model import Authenticated, Failure, Rejected, UserInfo
from kube_oidc_proxy.authn.passthrough import CACHE_TTL_SECONDS, Passthrough, reviewed_user
from kube_oidc_proxy.authz.checker import ReviewError


class FakeReviews:
    def __init__(self, status: dict[str, Any] | None = None, fail: bool = False) -> None:
        self.status = status or {}
        self.fail = fail
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.clients: list[str] = []
        self.release = asyncio.Event()
        self.release.set()

    async def token_review(self, token: str, audiences: tuple[str, ...], *, client: str) -> dict[str, Any]:
        self.calls.append((token, audiences))
        self.clients.append(client)
        await self.release.wait()
        if self.fail:
            raise ReviewError("apiserver down")
        return self.status


def jwt_with_exp(exp: int) -> bytes:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part({'exp': exp})}.c2ln".encode()


async def test_an_authenticated_token_becomes_the_reviewed_user_and_is_cached_briefly() -> None:
    now = [1000.0]
    reviews = FakeReviews({"authenticated": True, "user": {"username": "sa", "groups": ["g"], "extra": {"k": ["v"]}}})
    passthrough = Passthrough(reviews, ("aud",), clock=lambda: now[0])
    result = await passthrough.authenticate(b"opaque-token")
    assert isinstance(result, Authenticated)
    assert (result.user.username, result.user.groups, dict(result.user.extra)) == ("sa", ("g",), {"k": ("v",)})
    await passthrough.authenticate(b"opaque-token")
    assert reviews.calls == [("opaque-token", ("aud",))]
    now[0] += 11
    await passthrough.authenticate(b"opaque-token")
    assert len(reviews.calls) == 2


async def test_a_cached_answer_never_outlives_the_tokens_exp() -> None:
    now = [1000.0]
    reviews = FakeReviews({"authenticated": True, "user": {"username": "sa"}})
    passthrough = Passthrough(reviews, clock=lambda: now[0])
    token = jwt_with_exp(1003)
    await passthrough.authenticate(token)
    now[0] = 1004
    await passthrough.authenticate(token)
    assert len(reviews.calls) == 2


async def test_a_flood_of_one_refused_token_costs_one_review_per_ttl() -> None:
    now = [1000.0]
    reviews = FakeReviews({"authenticated": False})
    passthrough = Passthrough(reviews, clock=lambda: now[0])
    for _ in range(100):
        result = await passthrough.authenticate(b"garbage", "10.0.0.7")
        assert isinstance(result, Rejected) and result.code == 401
    assert len(reviews.calls) == 1
    assert reviews.clients == ["10.0.0.7"]  # whose share of the review budget it took
    now[0] += CACHE_TTL_SECONDS
    await passthrough.authenticate(b"garbage")
    assert len(reviews.calls) == 2


async def test_concurrent_requests_with_one_token_share_one_review() -> None:
    reviews = FakeReviews({"authenticated": False})
    reviews.release.clear()
    counts: list[int] = []
    passthrough = Passthrough(reviews, on_reviews=counts.append)
    flood = [asyncio.ensure_future(passthrough.authenticate(b"garbage")) for _ in range(200)]
    for _ in range(10):
        await asyncio.sleep(0)
    reviews.release.set()
    assert all(isinstance(r, Rejected) for r in await asyncio.gather(*flood))
    assert len(reviews.calls) == 1
    assert sorted(counts) == [0] * 199 + [1]


async def test_an_error_answer_is_a_remembered_refusal_and_a_failed_review_is_not_remembered() -> None:
    errored = Passthrough(FakeReviews({"authenticated": True, "error": "bad audience" + "!" * 10_000}))
    result = await errored.authenticate(b"t")
    assert isinstance(result, Rejected) and "bad audience" in result.reason
    assert len(result.reason) < 300  # what is remembered and logged of kube-apiserver's words is bounded
    assert await errored.authenticate(b"t") is result
    assert errored.reviews == 1
    down_reviews = FakeReviews(fail=True)
    down = Passthrough(down_reviews)
    for _ in range(2):
        result = await down.authenticate(b"t")
        assert isinstance(result, Rejected) and result.code == 503
    assert len(down_reviews.calls) == 2


@pytest.mark.parametrize(
    "status",
    [
        {"authenticated": "true", "user": {"username": "sa"}},
        {"authenticated": 1, "user": {"username": "sa"}},
        {"authenticated": None, "user": {"username": "sa"}},
        {"user": {"username": "sa"}},
        {"authenticated": True},
        {"authenticated": True, "user": None},
        {"authenticated": True, "user": "sa"},
        {"authenticated": True, "user": {}},
        {"authenticated": True, "user": {"username": ""}},
        {"authenticated": True, "user": {"username": 7}},
        {"authenticated": True, "user": {"username": ["sa"]}},
        {"authenticated": True, "user": {"username": "sa", "uid": 1}},
        {"authenticated": True, "user": {"username": "sa", "uid": None}},
        {"authenticated": True, "user": {"username": "sa", "groups": "system:masters"}},
        {"authenticated": True, "user": {"username": "sa", "groups": ["ok", 1]}},
        {"authenticated": True, "user": {"username": "sa", "groups": None}},
        {"authenticated": True, "user": {"username": "sa", "extra": {"k": "v"}}},
        {"authenticated": True, "user": {"username": "sa", "extra": {"k": ["v", None]}}},
        {"authenticated": True, "user": {"username": "sa", "extra": ["k"]}},
    ],
)
async def test_only_a_json_true_with_a_well_formed_user_authenticates(status: dict[str, Any]) -> None:
    # a 401, never a 500, never a partial identity (the previous code kept what it could read)
    result = await Passthrough(FakeReviews(status)).authenticate(b"t")
    assert isinstance(result, Rejected)
    assert (result.code, result.failure) == (401, Failure.TOKEN_REVIEW_REJECTED)


def test_a_well_formed_user_is_taken_whole() -> None:
    user = reviewed_user(
        {"user": {"username": "sa", "uid": "u", "groups": ["g1", "g2"], "extra": {"k": ["a", "b"], "e": []}}}
    )
    assert user == UserInfo("sa", "u", ("g1", "g2"), {"k": ("a", "b"), "e": ()})
    assert reviewed_user({"user": {"username": "sa"}}) == UserInfo("sa")
