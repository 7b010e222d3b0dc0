"""oidc.JWTAuthenticator.verify: signature with the issuer's keys (in memory, fake fetcher), then the claims."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from typing import Any

import pytest

from kube_oidc_proxy.authn.jwks import KeySource
from kube_oidc_proxy.authn.model import Authenticated, Rejected
from kube_oidc_proxy.authn.oidc import JWTAuthenticator
from kube_oidc_proxy.authn.token import ParsedToken, b64url_decode, parse_compact
from tests.support.issuer import Key
from tests.unit.authn.conftest import Keyring, ManualClock
from tests.unit.authn.fakes import NOW, FakeIssuer, b64url, base_claims, segment, sign, spec

ALL_ALGS = frozenset({"RS256", "ES256", "PS256"})


async def loaded(issuer: FakeIssuer, *keys: Key, min_refetch_interval: float = 0.0) -> KeySource:
    issuer.publish(*keys)
    source = issuer.key_source(min_refetch_interval=min_refetch_interval)
    assert await source.refresh()
    issuer.calls.clear()
    return source


def authenticator(source: KeySource, algs: frozenset[str] = ALL_ALGS, **kwargs: Any) -> JWTAuthenticator:
    return JWTAuthenticator(spec(signing_algs=algs), source, clock=lambda: NOW, **kwargs)


@pytest.fixture
async def source(keyring: Keyring) -> KeySource:
    return await loaded(FakeIssuer(), keyring.rsa1, keyring.ec256)


@pytest.mark.parametrize(("alg", "which"), [("RS256", "rsa1"), ("ES256", "ec256"), ("PS256", "rsa1")])
async def test_a_valid_token_is_accepted_when_its_algorithm_is_allowed(
    keyring: Keyring, source: KeySource, alg: str, which: str
) -> None:
    token = sign(getattr(keyring, which), base_claims(), alg)
    result = await authenticator(source).verify(parse_compact(token))
    assert isinstance(result, Authenticated), result
    assert result.user.username == "alice"
    assert result.user.groups == ("dev", "ops")
    assert result.expires_at == base_claims()["exp"]


@pytest.mark.parametrize(
    ("alg", "which", "allowed"),
    [
        ("ES256", "ec256", frozenset({"RS256"})),
        ("PS256", "rsa1", frozenset({"RS256"})),
        ("RS256", "rsa1", frozenset({"PS256", "ES256"})),
        ("RS384", "rsa1", frozenset({"RS256"})),
    ],
)
async def test_a_token_whose_algorithm_is_not_allowed_is_rejected(
    keyring: Keyring, source: KeySource, alg: str, which: str, allowed: frozenset[str]
) -> None:
    token = sign(getattr(keyring, which), base_claims(), alg)
    result = await authenticator(source, allowed).verify(parse_compact(token))
    assert isinstance(result, Rejected)
    assert "not allowed" in result.reason


def _forged(header: dict[str, Any], claims: dict[str, Any], signature: bytes) -> ParsedToken:
    return parse_compact(b".".join((segment(header), segment(claims), b64url(signature))))


@pytest.mark.parametrize(
    "algs",
    [
        pytest.param(frozenset({"RS256"}), id="default-algs"),
        pytest.param(frozenset({"RS256", "none", "HS256"}), id="misconfigured-algs-still-refuse"),
    ],
)
@pytest.mark.parametrize("kid", [None, "rsa-1"])
async def test_an_alg_none_token_is_rejected(source: KeySource, algs: frozenset[str], kid: str | None) -> None:
    header: dict[str, Any] = {"alg": "none", "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    token = _forged(header, base_claims(), b"x")
    result = await authenticator(source, algs).verify(token)
    assert isinstance(result, Rejected)
    # and the signature-less form, taken apart by hand because parse_compact refuses its empty third segment
    bare = ParsedToken(raw=token.raw.rsplit(b".", 1)[0] + b".", alg="none", kid=kid, claims=token.claims)
    assert isinstance(await authenticator(source, algs).verify(bare), Rejected)


@pytest.mark.parametrize(
    "algs",
    [
        pytest.param(frozenset({"RS256"}), id="default-algs"),
        pytest.param(frozenset({"RS256", "HS256"}), id="misconfigured-algs-still-refuse"),
    ],
)
async def test_an_hs256_token_keyed_with_the_rsa_public_key_is_rejected(
    keyring: Keyring, source: KeySource, algs: frozenset[str]
) -> None:
    header = {"alg": "HS256", "kid": "rsa-1", "typ": "JWT"}
    claims = base_claims()
    signing_input = segment(header) + b"." + segment(claims)
    for secret in (keyring.rsa1.as_pem(private=False), json.dumps(keyring.rsa1.as_dict(private=False)).encode()):
        signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
        token = parse_compact(signing_input + b"." + b64url(signature))
        result = await authenticator(source, algs).verify(token)
        assert isinstance(result, Rejected), result


async def test_a_token_with_a_tampered_payload_is_rejected(keyring: Keyring, source: KeySource) -> None:
    header, _, signature = sign(keyring.rsa1, base_claims(), "RS256").split(b".")
    tampered = b".".join((header, segment(base_claims(sub="admin", groups=["admins"])), signature))
    result = await authenticator(source).verify(parse_compact(tampered))
    assert isinstance(result, Rejected)
    assert "signature" in result.reason


@pytest.mark.parametrize(("alg", "which"), [("RS256", "rsa1"), ("ES256", "ec256"), ("PS256", "rsa1")])
@pytest.mark.parametrize("position", [0, 17, -1])
async def test_a_token_with_a_tampered_signature_is_rejected(
    keyring: Keyring, source: KeySource, alg: str, which: str, position: int
) -> None:
    header, payload, signature = sign(getattr(keyring, which), base_claims(), alg).split(b".")
    raw = bytearray(b64url_decode(signature))
    raw[position] ^= 0x01
    tampered = b".".join((header, payload, b64url(bytes(raw))))
    result = await authenticator(source).verify(parse_compact(tampered))
    assert isinstance(result, Rejected)
    assert "signature" in result.reason


async def test_a_token_signed_with_an_unpublished_key_under_a_published_kid_is_rejected(
    keyring: Keyring, source: KeySource
) -> None:
    token = sign(keyring.rsa2, base_claims(), "RS256", kid="rsa-1")
    result = await authenticator(source).verify(parse_compact(token))
    assert isinstance(result, Rejected)
    assert "signature" in result.reason


async def test_an_unknown_kid_refetches_once_and_accepts_a_key_published_meanwhile(keyring: Keyring) -> None:
    issuer = FakeIssuer()
    source = await loaded(issuer, keyring.rsa1)
    issuer.publish(keyring.rsa1, keyring.rsa2)  # the issuer rotates
    token = sign(keyring.rsa2, base_claims(), "RS256")
    result = await authenticator(source).verify(parse_compact(token))
    assert isinstance(result, Authenticated), result
    assert issuer.calls == [issuer.discovery_url, issuer.jwks_url]


async def test_an_unknown_kid_refetches_once_and_is_rejected_when_the_key_is_still_missing(keyring: Keyring) -> None:
    issuer = FakeIssuer()
    source = await loaded(issuer, keyring.rsa1)
    token = sign(keyring.rsa2, base_claims(), "RS256")
    result = await authenticator(source).verify(parse_compact(token))
    assert isinstance(result, Rejected)
    assert "kid" in result.reason
    assert issuer.calls == [issuer.discovery_url, issuer.jwks_url]


async def test_an_unknown_kid_waits_for_a_slow_refetch_only_briefly_and_the_log_says_it_is_still_running(
    keyring: Keyring,
) -> None:
    issuer = FakeIssuer()
    issuer.publish(keyring.rsa1)
    source = issuer.key_source(min_refetch_interval=0.0, unknown_kid_wait=0.05)
    assert await source.refresh()
    issuer.gate = asyncio.Event()  # the IdP now holds every request
    issuer.publish(keyring.rsa1, keyring.rsa2)
    token = parse_compact(sign(keyring.rsa2, base_claims(), "RS256"))
    result = await asyncio.wait_for(authenticator(source).verify(token), 5)
    assert isinstance(result, Rejected)
    assert "still running" in result.reason
    issuer.gate.set()  # the fetch went on without the request and now brings the new key
    while source.fetching:
        await asyncio.sleep(0.001)
    assert isinstance(await authenticator(source).verify(token), Authenticated)


async def test_an_unknown_kid_during_an_outage_is_rejected_naming_the_failed_fetch(keyring: Keyring) -> None:
    issuer = FakeIssuer()
    source = await loaded(issuer, keyring.rsa1)
    issuer.responses[issuer.discovery_url] = ConnectionRefusedError("connection refused")
    result = await authenticator(source).verify(parse_compact(sign(keyring.rsa2, base_claims(), "RS256")))
    assert isinstance(result, Rejected)
    assert "the last fetch of the keys failed" in result.reason and "connection refused" in result.reason


async def test_a_flood_of_made_up_kids_costs_one_fetch(keyring: Keyring, monotonic: ManualClock) -> None:
    issuer = FakeIssuer()
    source = await loaded(issuer, keyring.rsa1, min_refetch_interval=10.0)
    monotonic.advance(10.0)  # past the interval the initial load started
    auth = authenticator(source)
    for n in range(20):
        token = sign(keyring.rsa2, base_claims(), "RS256", kid=f"made-up-{n}")
        assert isinstance(await auth.verify(parse_compact(token)), Rejected)
    assert issuer.count(issuer.discovery_url) == 1
    assert issuer.count(issuer.jwks_url) == 1


async def test_a_token_without_kid_is_tried_against_every_key_of_its_type(keyring: Keyring) -> None:
    issuer = FakeIssuer()
    source = await loaded(issuer, keyring.rsa2, keyring.ec256, keyring.rsa1)
    auth = authenticator(source)
    for which, alg in (("rsa1", "RS256"), ("rsa2", "PS256"), ("ec256", "ES256")):
        token = sign(getattr(keyring, which), base_claims(), alg, with_kid=False)
        assert parse_compact(token).kid is None
        result = await auth.verify(parse_compact(token))
        assert isinstance(result, Authenticated), (which, result)
    assert issuer.calls == []


async def test_a_token_without_kid_signed_by_an_unknown_key_is_rejected_without_a_refetch(keyring: Keyring) -> None:
    issuer = FakeIssuer()
    source = await loaded(issuer, keyring.rsa1)
    token = sign(keyring.rsa2, base_claims(), "RS256", with_kid=False)
    result = await authenticator(source).verify(parse_compact(token))
    assert isinstance(result, Rejected)
    assert issuer.calls == []


async def test_a_token_is_rejected_with_503_while_the_keys_are_not_loaded(keyring: Keyring) -> None:
    issuer = FakeIssuer()
    issuer.responses[issuer.discovery_url] = ConnectionRefusedError("connection refused")
    source = issuer.key_source()
    assert await source.refresh() is False
    token = sign(keyring.rsa1, base_claims(), "RS256")
    result = await authenticator(source).verify(parse_compact(token))
    assert isinstance(result, Rejected)
    assert result.code == 503
    assert "refused" in result.reason  # the log says why
    assert "refused" not in result.message  # the client does not learn the issuer's internals


async def test_the_claims_are_checked_after_the_signature(keyring: Keyring, source: KeySource) -> None:
    expired = sign(keyring.rsa1, base_claims(exp=int(NOW) - 1), "RS256")
    result = await authenticator(source).verify(parse_compact(expired))
    assert isinstance(result, Rejected)
    assert "expired" in result.reason
    foreign_aud = sign(keyring.ec256, base_claims(aud="other"), "ES256")
    assert isinstance(await authenticator(source).verify(parse_compact(foreign_aud)), Rejected)


@pytest.mark.parametrize(("allow", "accepted"), [(False, False), (True, True)])
async def test_system_identities_follow_the_authenticator_setting(
    keyring: Keyring, source: KeySource, allow: bool, accepted: bool
) -> None:
    token = sign(keyring.rsa1, base_claims(sub="system:admin"), "RS256")
    result = await authenticator(source, allow_system_identities=allow).verify(parse_compact(token))
    assert isinstance(result, Authenticated) is accepted


async def test_a_token_naming_an_ec_key_but_using_an_rsa_alg_is_rejected(keyring: Keyring, source: KeySource) -> None:
    token = sign(keyring.rsa1, base_claims(), "RS256", kid="ec-256")
    result = await authenticator(source).verify(parse_compact(token))
    assert isinstance(result, Rejected)
