"""--token-passthrough and --disable-impersonation: the caller's own token goes upstream, unimpersonated."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from kube_oidc_proxy.config import Config
from tests.conftest import ProxyHandle, start_proxy
from tests.support.client import get
from tests.support.issuer import TestIssuer
from tests.support.upstream import RecordingUpstream

SA_TOKEN = "sa.token.from-tokenrequest"


def forwarded(handle: ProxyHandle) -> list[object]:
    return [r for r in handle.upstream.requests if "reviews" not in r.target]


@pytest.fixture
async def passthrough(config: Config, issuer: TestIssuer, upstream: RecordingUpstream) -> AsyncIterator[ProxyHandle]:
    cfg = replace(config, proxy=replace(config.proxy, token_passthrough=True, token_passthrough_audiences=("api",)))
    handle = await start_proxy(cfg, issuer, upstream)
    yield handle
    await handle.running.stop(grace=1)


async def test_a_token_the_api_server_accepts_passes_through_unimpersonated(passthrough: ProxyHandle) -> None:
    upstream = passthrough.upstream
    upstream.token_reviews[SA_TOKEN] = {
        "authenticated": True,
        "user": {"username": "system:serviceaccount:ci:deployer", "groups": ["system:serviceaccounts"]},
    }
    headers = [("Impersonate-User", "someone")]
    response = await get(passthrough.port, passthrough.ca_file, "/api/v1/pods", token=SA_TOKEN, headers=headers)
    assert response.status == 200
    review = upstream.token_review_requests[-1]
    assert review == {"token": SA_TOKEN, "audiences": ["api"]}
    seen = upstream.requests[-1]
    assert seen.all("authorization") == [f"Bearer {SA_TOKEN}"]
    # the caller's own impersonation request is for kube-apiserver to authorize, against the caller
    assert seen.all("impersonate-user") == ["someone"]
    line = await passthrough.access.wait_for("AuSuccess")
    assert "inbound:[system:serviceaccount:ci:deployer / system:serviceaccounts|system:authenticated /]" in line
    # answered from the cache for a while
    assert (await get(passthrough.port, passthrough.ca_file, "/api", token=SA_TOKEN)).status == 200
    assert len(upstream.token_review_requests) == 1


async def test_a_token_the_api_server_refuses_is_a_401(passthrough: ProxyHandle) -> None:
    response = await get(passthrough.port, passthrough.ca_file, "/api", token="unknown.token.x")
    assert response.status == 401
    assert forwarded(passthrough) == []


async def test_an_invalid_id_token_of_our_issuer_is_refused_not_passed_through(passthrough: ProxyHandle) -> None:
    expired = passthrough.issuer.token(exp=1)
    response = await get(passthrough.port, passthrough.ca_file, "/api", token=expired)
    assert response.status == 401
    assert "expired" in response.json()["message"]
    assert passthrough.upstream.token_review_requests == []


async def test_id_tokens_are_still_impersonated_with_passthrough_on(passthrough: ProxyHandle) -> None:
    response = await get(passthrough.port, passthrough.ca_file, "/api", token=passthrough.issuer.token())
    assert response.status == 200
    assert passthrough.upstream.requests[-1].one("impersonate-user") == "alice"


async def test_disable_impersonation_forwards_the_callers_own_token(
    config: Config, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    handle = await start_proxy(
        replace(config, proxy=replace(config.proxy, disable_impersonation=True)), issuer, upstream
    )
    try:
        token = issuer.token()
        assert (await get(handle.port, handle.ca_file, "/api", token=token)).status == 200
        seen = upstream.requests[-1]
        # the Go proxy sent no credential at all here; the caller's own token is what this mode means
        assert seen.all("authorization") == [f"Bearer {token}"]
        assert seen.all("impersonate-user") == []
        refused = await get(handle.port, handle.ca_file, "/api", token="not-a-jwt")
        assert refused.status == 401
    finally:
        await handle.running.stop(grace=1)


async def test_a_flood_of_one_bad_token_costs_one_token_review(passthrough: ProxyHandle) -> None:
    garbage = "not.a-token.anyone-knows"
    one_by_one = [await get(passthrough.port, passthrough.ca_file, "/api", token=garbage) for _ in range(10)]
    at_once = await asyncio.gather(
        *(get(passthrough.port, passthrough.ca_file, "/api", token=garbage) for _ in range(20))
    )
    assert {r.status for r in [*one_by_one, *at_once]} == {401}
    assert len(passthrough.upstream.token_review_requests) == 1  # the refusal is remembered for 10 s
    assert forwarded(passthrough) == []


@pytest.mark.parametrize(
    "status",
    [
        {"authenticated": "true", "user": {"username": "system:serviceaccount:ci:deployer"}},
        {"authenticated": 1, "user": {"username": "system:serviceaccount:ci:deployer"}},
        {"authenticated": True, "user": {"username": 7}},
        {"authenticated": True, "user": {"username": "sa", "groups": "system:masters"}},
        {"authenticated": True, "user": {"username": "sa", "extra": {"scopes": "all"}}},
        {"authenticated": True},
    ],
    ids=["string-true", "one", "username-number", "groups-string", "extra-not-a-list", "no-user"],
)
async def test_a_token_review_answer_that_is_not_well_formed_is_a_401(
    passthrough: ProxyHandle, status: dict[str, object]
) -> None:
    passthrough.upstream.token_reviews[SA_TOKEN] = status
    response = await get(passthrough.port, passthrough.ca_file, "/api", token=SA_TOKEN)
    assert response.status == 401  # never a 500, never a partial identity
    assert response.json()["reason"] == "Unauthorized"
    assert forwarded(passthrough) == []
    await passthrough.access.wait_for("AuFail")


@pytest.mark.parametrize("answer", [b"\xff\xfe{}", b"[" * 100_000], ids=["not-utf-8", "nested-past-the-parser"])
async def test_a_token_review_answer_that_cannot_be_read_is_a_503_not_a_500(
    passthrough: ProxyHandle, answer: bytes
) -> None:
    passthrough.upstream.review_answer = answer
    response = await get(passthrough.port, passthrough.ca_file, "/api", token=SA_TOKEN)
    assert response.status == 503  # kube-apiserver's answer could not be read: not the token's fault
    assert response.json()["message"] == "cannot verify the token right now"
    assert forwarded(passthrough) == []
