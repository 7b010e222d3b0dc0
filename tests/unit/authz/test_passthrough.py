"""Token passthrough: what TokenReview says, and how long the answer is trusted."""

from __future__ import annotations

import base64
import json
from typing import Any

from kube_oidc_proxy.authn.model import Authenticated, Rejected
from kube_oidc_proxy.authn.passthrough import Passthrough
from kube_oidc_proxy.authz.checker import ReviewError


class FakeReviews:
    def __init__(self, status: dict[str, Any] | None = None, fail: bool = False) -> None:
        self.status = status or {}
        self.fail = fail
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    async def token_review(self, token: str, audiences: tuple[str, ...]) -> dict[str, Any]:
        self.calls.append((token, audiences))
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


async def test_refusals_and_failures_are_not_cached() -> None:
    refused = Passthrough(FakeReviews({"authenticated": False}))
    assert isinstance(await refused.authenticate(b"t"), Rejected)
    assert isinstance(await refused.authenticate(b"t"), Rejected)
    assert refused.reviews == 2
    errored = await Passthrough(FakeReviews({"authenticated": True, "error": "bad audience"})).authenticate(b"t")
    assert isinstance(errored, Rejected) and "bad audience" in errored.reason
    down = await Passthrough(FakeReviews(fail=True)).authenticate(b"t")
    assert isinstance(down, Rejected) and down.code == 503
