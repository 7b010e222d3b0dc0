"""kubectl --as through the proxy: every requested value is checked with a SubjectAccessReview about the
caller, as kube-apiserver does it; the target goes out, the caller is kept in originaluser extras."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from kube_oidc_proxy.authz.requested import MAX_IMPERSONATED_VALUES, MAX_VALUE_BYTES
from kube_oidc_proxy.config import Config
from kube_oidc_proxy.server.reviewbudget import ReviewBudget, network, user
from tests.conftest import PROXY_SA_TOKEN, ProxyHandle, replace, start_proxy
from tests.integration.test_probe import probe
from tests.support.client import get
from tests.support.issuer import TestIssuer
from tests.support.upstream import RecordingUpstream

SAR_PATH = "/apis/authorization.k8s.io/v1/subjectaccessreviews"


def forwarded(proxy: ProxyHandle) -> list[Any]:
    return [r for r in proxy.upstream.requests if not r.target.startswith("/apis/authorization.k8s.io")]


def allow(*names: str) -> Any:
    return lambda spec: spec["resourceAttributes"]["name"] in names


async def test_an_allowed_as_goes_out_as_the_target_with_the_caller_recorded(proxy: ProxyHandle) -> None:
    proxy.upstream.sar_policy = allow("bob", "ops", "uid-7", "blue")
    headers = [
        ("Impersonate-User", "bob"),
        ("Impersonate-Group", "ops"),
        ("Impersonate-Uid", "uid-7"),
        ("Impersonate-Extra-Acme.com%2Fteam", "blue"),
    ]
    response = await get(proxy.port, proxy.ca_file, "/api/v1/pods", token=proxy.issuer.token(jti="j1"), headers=headers)
    assert response.status == 200, response.body
    seen = forwarded(proxy)[-1]
    assert seen.all("authorization") == [f"Bearer {PROXY_SA_TOKEN}"]
    assert seen.all("impersonate-user") == ["bob"]
    assert seen.all("impersonate-uid") == ["uid-7"]
    assert seen.all("impersonate-group") == ["ops", "system:authenticated"]
    assert seen.all("impersonate-extra-acme.com%2Fteam") == ["blue"]
    assert seen.all("impersonate-extra-originaluser.jetstack.io-user") == ["alice"]
    assert seen.all("impersonate-extra-originaluser.jetstack.io-groups") == ["dev", "ops"]
    original_extra = json.loads(seen.one("impersonate-extra-originaluser.jetstack.io-extra") or "")
    assert original_extra == {"authentication.kubernetes.io/credential-id": ["JTI=j1"]}
    line = await proxy.access.wait_for("AuSuccess")
    assert "inbound:[alice / dev|ops|system:authenticated / authentication.kubernetes.io/credential-id=JTI=j1]" in line
    assert " outbound:[bob / ops / uid-7 / acme.com/team=blue originaluser.jetstack.io-user=alice" in line


async def test_the_reviews_ask_about_the_caller_exactly_as_kube_apiserver_does(proxy: ProxyHandle) -> None:
    proxy.upstream.sar_policy = lambda spec: True
    headers = [
        ("Impersonate-User", "system:serviceaccount:apps:deployer"),
        ("Impersonate-Uid", "u1"),
        ("Impersonate-Extra-Scopes", "view"),
        ("Impersonate-Extra-Scopes", "edit"),
    ]
    response = await get(proxy.port, proxy.ca_file, "/api", token=proxy.issuer.token(jti="j2"), headers=headers)
    assert response.status == 200
    attributes = sorted(
        (
            s["resourceAttributes"]["group"],
            s["resourceAttributes"]["resource"],
            s["resourceAttributes"]["subresource"],
            s["resourceAttributes"]["namespace"],
            s["resourceAttributes"]["name"],
        )
        for s in proxy.upstream.sars
    )
    assert attributes == [
        ("", "serviceaccounts", "", "apps", "deployer"),
        ("authentication.k8s.io", "uids", "", "", "u1"),
        ("authentication.k8s.io", "userextras", "scopes", "", "edit"),
        ("authentication.k8s.io", "userextras", "scopes", "", "view"),
    ]
    for spec in proxy.upstream.sars:
        assert spec["resourceAttributes"]["verb"] == "impersonate"
        assert spec["user"] == "alice"
        assert spec["groups"] == ["dev", "ops", "system:authenticated"]
        assert spec["extra"] == {"authentication.kubernetes.io/credential-id": ["JTI=j2"]}
    seen = forwarded(proxy)[-1]
    # a service account with no groups asked gets its own, as kube-apiserver gives them
    assert seen.all("impersonate-group") == [
        "system:serviceaccounts",
        "system:serviceaccounts:apps",
        "system:authenticated",
    ]


async def test_a_denied_as_is_a_403_in_kube_apiservers_words_and_nothing_goes_out(proxy: ProxyHandle) -> None:
    proxy.upstream.sar_policy = allow("bob")
    users = 'User "alice" cannot impersonate resource'
    cases = [
        (
            [("Impersonate-User", "root")],
            f'users "root" is forbidden: {users} "users" in API group "" at the cluster scope',
        ),
        (
            [("Impersonate-User", "bob"), ("Impersonate-Group", "system:masters")],
            'groups "system:masters" is forbidden',
        ),
        (
            [("Impersonate-User", "system:serviceaccount:kube-system:admin")],
            f'serviceaccounts "admin" is forbidden: {users} "serviceaccounts" in API group ""'
            ' in the namespace "kube-system"',
        ),
        ([("Impersonate-User", "bob"), ("Impersonate-Extra-Scopes", "all")], 'userextras/scopes "all" is forbidden'),
        (
            [("Impersonate-User", "bob"), ("Impersonate-Uid", "0")],
            f'uids "0" is forbidden: {users} "uids" in API group "authentication.k8s.io"',
        ),
    ]
    for headers, message in cases:
        response = await get(proxy.port, proxy.ca_file, "/api/v1/secrets", token=proxy.issuer.token(), headers=headers)
        assert response.status == 403, headers
        status = response.json()
        assert status["reason"] == "Forbidden"
        assert message in status["message"], status["message"]
    assert forwarded(proxy) == []
    await proxy.access.wait_for("AuFail src:[127.0.0.1 / ] URI:/api/v1/secrets")


async def test_groups_or_extras_without_a_user_are_a_400(proxy: ProxyHandle) -> None:
    for headers in (
        [("Impersonate-Group", "ops")],
        [("Impersonate-Extra-Scopes", "x")],
        [("Impersonate-Uid", "1")],
        [("Impersonate-User", "bob"), ("Impersonate-Whatever", "x")],
        [("Impersonate-User", "bob"), ("Impersonate-User", "carol")],
    ):
        response = await get(proxy.port, proxy.ca_file, "/api", token=proxy.issuer.token(), headers=headers)
        assert response.status == 400, headers
        assert response.json()["reason"] == "BadRequest"
    assert proxy.upstream.requests == []


async def test_review_answers_are_reused_briefly(proxy: ProxyHandle) -> None:
    proxy.upstream.sar_policy = allow("bob")
    token = proxy.issuer.token()
    for _ in range(5):
        response = await get(proxy.port, proxy.ca_file, "/api", token=token, headers=[("Impersonate-User", "bob")])
        assert response.status == 200
    assert len(proxy.upstream.sars) == 1
    assert len(forwarded(proxy)) == 5


async def test_a_failing_review_api_is_a_503_not_an_allow(proxy: ProxyHandle, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="kop")
    proxy.upstream.sar_failure = 500
    response = await get(
        proxy.port, proxy.ca_file, "/api", token=proxy.issuer.token(), headers=[("Impersonate-User", "bob")]
    )
    assert response.status == 503
    assert forwarded(proxy) == []
    # the log names the review request and the kube-apiserver it went to
    assert f"SubjectAccessReview failed: POST {proxy.upstream.url}{SAR_PATH}: HTTP 500" in caplog.text


async def test_an_unauthenticated_as_is_a_401_and_asks_nothing(proxy: ProxyHandle) -> None:
    response = await get(proxy.port, proxy.ca_file, "/api", token="nope", headers=[("Impersonate-User", "bob")])
    assert response.status == 401
    assert proxy.upstream.requests == []


# -- bounded review cost, and reviews that fail closed: as an attacker with a valid token tries them ------------


async def test_a_caller_with_no_rights_asking_for_every_group_it_may_costs_one_review(proxy: ProxyHandle) -> None:
    # the caller may impersonate nothing: the user is reviewed first, and nothing after its denial
    headers = [("Impersonate-User", "root")] + [("Impersonate-Group", f"g{i}") for i in range(MAX_IMPERSONATED_VALUES)]
    response = await get(proxy.port, proxy.ca_file, "/api", token=proxy.issuer.token(), headers=headers)
    assert response.status == 403
    assert 'users "root" is forbidden' in response.json()["message"]
    assert [s["resourceAttributes"]["name"] for s in proxy.upstream.sars] == ["root"]
    # the same again: the remembered denial answers, nothing is sent
    response = await get(proxy.port, proxy.ca_file, "/api", token=proxy.issuer.token(), headers=headers)
    assert response.status == 403
    assert len(proxy.upstream.sars) == 1
    assert forwarded(proxy) == []


async def test_a_denied_group_after_an_allowed_user_costs_two_reviews(proxy: ProxyHandle) -> None:
    proxy.upstream.sar_policy = allow("bob")
    headers = [("Impersonate-User", "bob")] + [("Impersonate-Group", f"g{i}") for i in range(MAX_IMPERSONATED_VALUES)]
    response = await get(proxy.port, proxy.ca_file, "/api", token=proxy.issuer.token(), headers=headers)
    assert response.status == 403
    assert [s["resourceAttributes"]["name"] for s in proxy.upstream.sars] == ["bob", "g0"]


async def test_more_values_than_the_limit_is_a_400_that_names_it_and_asks_nothing(proxy: ProxyHandle) -> None:
    proxy.upstream.sar_policy = lambda spec: True
    groups = [("Impersonate-Group", f"g{i}") for i in range(MAX_IMPERSONATED_VALUES)]
    too_many = [("Impersonate-User", "bob"), *groups, ("Impersonate-Extra-Scopes", "view")]
    response = await get(proxy.port, proxy.ca_file, "/api", token=proxy.issuer.token(), headers=too_many)
    assert response.status == 400
    status = response.json()
    assert status["reason"] == "BadRequest"
    assert f"at most {MAX_IMPERSONATED_VALUES} groups, extra values and uid" in status["message"]
    assert proxy.upstream.requests == []
    await proxy.access.wait_for("AuFail src:[127.0.0.1 / ] URI:/api")
    # at the limit, it is reviewed and goes out
    at_limit = [("Impersonate-User", "bob"), *groups]
    response = await get(proxy.port, proxy.ca_file, "/api", token=proxy.issuer.token(), headers=at_limit)
    assert response.status == 200
    assert len(proxy.upstream.sars) == MAX_IMPERSONATED_VALUES + 1


async def test_a_value_longer_than_the_limit_is_a_400_and_asks_nothing(proxy: ProxyHandle) -> None:
    headers = [("Impersonate-User", "bob"), ("Impersonate-Group", "g" * (MAX_VALUE_BYTES + 1))]
    response = await get(proxy.port, proxy.ca_file, "/api", token=proxy.issuer.token(), headers=headers)
    assert response.status == 400
    assert f"longer than {MAX_VALUE_BYTES} bytes" in response.json()["message"]
    assert proxy.upstream.requests == []


@pytest.mark.parametrize(
    "status",
    [
        {"allowed": "false"},
        {"allowed": "true"},
        {"allowed": 1},
        {"allowed": None},
        {},
        {"allowed": True, "denied": True},
        "allowed",
    ],
    ids=["string-false", "string-true", "one", "null", "missing", "allowed-and-denied", "not-an-object"],
)
async def test_an_answer_that_is_not_a_json_true_is_a_denial(proxy: ProxyHandle, status: Any) -> None:
    proxy.upstream.sar_status = lambda spec: status
    headers = [("Impersonate-User", "system:admin")]
    response = await get(proxy.port, proxy.ca_file, "/api/v1/secrets", token=proxy.issuer.token(), headers=headers)
    assert response.status == 403
    assert 'users "system:admin" is forbidden' in response.json()["message"]
    assert len(proxy.upstream.sars) == 1
    assert forwarded(proxy) == []


@pytest.mark.parametrize(
    "name",
    [
        "Impersonate-Extra-Originaluser.jetstack.io-user",
        "Impersonate-Extra-OriginalUser.Jetstack.IO-groups",
        "Impersonate-Extra-originaluser%2Ejetstack.io-user",
        "Impersonate-Extra-originaluser.jetstack.io-uid",
        "Impersonate-Extra-%6Friginaluser.jetstack.io-extra",
    ],
)
async def test_the_proxys_record_of_who_asked_cannot_be_forged(proxy: ProxyHandle, name: str) -> None:
    # even for a caller RBAC lets impersonate any extra: the record is the proxy's, never the caller's words
    proxy.upstream.sar_policy = lambda spec: True
    headers = [("Impersonate-User", "bob"), (name, "root")]
    response = await get(proxy.port, proxy.ca_file, "/api", token=proxy.issuer.token(groups=[]), headers=headers)
    assert response.status == 400
    assert "is reserved" in response.json()["message"]
    assert proxy.upstream.requests == []


async def test_one_callers_flood_does_not_stop_another_callers_review(
    proxy: ProxyHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kop")
    # A budget whose clock stands still: slots come back only when the test says so, so what one caller can
    # take is counted exactly. 4 at once, then one per 0.1 s; 2 of the waiting slots per caller.
    proxy.app.client.budget = ReviewBudget(10, 4, caller_share=2, clock=lambda: 0.0)
    proxy.upstream.sar_policy = allow("bob")
    mallory = proxy.issuer.token(sub="mallory", groups=[])
    flood = [
        get(proxy.port, proxy.ca_file, "/api", token=mallory, headers=[("Impersonate-User", f"admin-{i}")])
        for i in range(30)
    ]
    answers = [r.status for r in await asyncio.gather(*flood)]
    assert sorted(answers) == [403] * 6 + [503] * 24  # 4 at once, 2 waiting; the rest refused at once
    assert len(proxy.upstream.sars) == 6
    refused = await get(proxy.port, proxy.ca_file, "/api", token=mallory, headers=[("Impersonate-User", "x")])
    assert refused.json()["message"] == "cannot check the impersonation right now"
    assert f"POST {proxy.upstream.url}{SAR_PATH}: not sent: no slot of --kube-client-qps in time (caller_share)" in (
        caplog.text
    )
    # alice's review waits behind mallory's two waiting slots only (0.3 s), not behind the flood
    response = await get(
        proxy.port, proxy.ca_file, "/api", token=proxy.issuer.token(), headers=[("Impersonate-User", "bob")]
    )
    assert response.status == 200
    assert proxy.upstream.sars[-1]["user"] == "alice"


async def test_a_flood_that_spends_the_whole_review_budget_does_not_make_the_proxy_unready(
    proxy: ProxyHandle,
) -> None:
    proxy.app.client.budget = ReviewBudget(0.001, 1, clock=lambda: 0.0)  # one review, then none for 1000 s
    mallory = proxy.issuer.token(sub="mallory", groups=[])
    flood = [
        get(proxy.port, proxy.ca_file, "/api", token=mallory, headers=[("Impersonate-User", f"admin-{i}")])
        for i in range(10)
    ]
    assert sorted(r.status for r in await asyncio.gather(*flood)) == [403] + [503] * 9
    status, body = await probe(proxy.running.probe_port, "/ready")
    assert status == 200, body
    assert any(r.target == "/readyz" for r in proxy.upstream.requests)  # it asked, outside the review budget


@pytest.mark.parametrize(
    "answer",
    [b"\xff\xfe{}", b"[" * 100_000, b"not json", b'"a string"'],
    ids=["not-utf-8", "nested-past-the-parser", "not-json", "not-an-object"],
)
async def test_a_review_answer_that_cannot_be_read_is_a_503_not_a_500(proxy: ProxyHandle, answer: bytes) -> None:
    proxy.upstream.review_answer = answer
    headers = [("Impersonate-User", "system:admin")]
    response = await get(proxy.port, proxy.ca_file, "/api/v1/secrets", token=proxy.issuer.token(), headers=headers)
    assert response.status == 503
    assert response.json()["message"] == "cannot check the impersonation right now"
    assert forwarded(proxy) == []


async def test_garbage_tokens_from_many_networks_cannot_take_the_review_slots_of_authenticated_callers(
    config: Config, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    # Anyone who can reach the proxy can make it ask TokenReviews (--token-passthrough): those hold at most
    # half of the waiting slots, however many networks they come from.
    cfg = replace(config, proxy=replace(config.proxy, token_passthrough=True))
    handle = await start_proxy(cfg, issuer, upstream)
    try:
        budget = ReviewBudget(10, 1, clock=lambda: 0.0)  # a clock that stands still: slots come back never
        handle.app.client.budget = budget
        assert budget.reserve(user("someone"), 1e9) == 0  # the burst, spent
        held = [budget.reserve(network(f"10.{i}.0.1"), 1e9) for i in range(40)]  # 40 networks flood
        assert sum(isinstance(h, float) for h in held) == 5  # half of the ten waiting slots
        # a garbage token from yet another network: its TokenReview is not sent
        refused = await get(handle.port, handle.ca_file, "/api", token="garbage-token")
        assert refused.status == 503
        assert upstream.token_review_requests == []
        # alice's review still finds a slot, right behind the flood's five (0.6 s)
        upstream.sar_policy = allow("bob")
        headers = [("Impersonate-User", "bob")]
        response = await get(handle.port, handle.ca_file, "/api", token=issuer.token(), headers=headers)
        assert response.status == 200
        assert upstream.sars[-1]["user"] == "alice"
    finally:
        await handle.running.stop(grace=1)


async def test_subject_access_review_timeout_bounds_a_requests_reviews_the_wait_for_a_slot_included(
    config: Config, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    cfg = replace(config, proxy=replace(config.proxy, subject_access_review_timeout=0.5))  # RafPe's flag
    handle = await start_proxy(cfg, issuer, upstream)
    try:
        handle.app.client.budget = ReviewBudget(0.25, 1)  # one review now, the next 4 s later
        upstream.sar_policy = allow("bob", "carol")
        token = issuer.token()
        first = await get(handle.port, handle.ca_file, "/api", token=token, headers=[("Impersonate-User", "bob")])
        assert first.status == 200
        # the next slot comes after the 0.5 s: refused at once (with the default 10 s it would wait for it)
        second = await get(handle.port, handle.ca_file, "/api", token=token, headers=[("Impersonate-User", "carol")])
        assert second.status == 503
        assert second.json()["message"] == "cannot check the impersonation right now"
        assert [sar["resourceAttributes"]["name"] for sar in upstream.sars] == ["bob"]
    finally:
        await handle.running.stop(grace=1)
        handle.app.access_log.close()
