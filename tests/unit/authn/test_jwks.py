"""jwks: parsing a key set, choosing candidate keys, and KeySource's fetch/refresh/refetch rules (fake fetcher)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from joserfc.jwk import ECKey, RSAKey

from kube_oidc_proxy.authn.jwks import KeySet, discovery_url_for, parse_jwks
from kube_oidc_proxy.httpclient import FetchError, FetchResponse
from tests.unit.authn.conftest import Keyring, ManualClock
from tests.unit.authn.fakes import ISSUER, NOW, FakeIssuer, json_response

PRIVATE_PARTS = ("d", "p", "q", "dp", "dq", "qi", "oth")


def public(key: RSAKey | ECKey, **changes: Any) -> dict[str, Any]:
    entry = dict(key.as_dict(private=False))
    entry.update(changes)
    return {k: v for k, v in entry.items() if v is not None}


# parse_jwks -------------------------------------------------------------------------------------------


def test_a_jwks_of_rsa_and_ec_keys_is_parsed_by_kid(keyring: Keyring) -> None:
    keys = parse_jwks({"keys": [public(keyring.rsa1), public(keyring.ec256)]}, NOW)
    assert keys.fetched_at == NOW
    assert len(keys.all_keys) == 2
    assert sorted(keys.by_kid) == ["ec-256", "rsa-1"]
    assert keys.by_kid["rsa-1"][0].as_dict(private=False)["n"] == keyring.rsa1.as_dict(private=False)["n"]


@pytest.mark.parametrize(
    "skipped",
    [
        pytest.param({"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0", "kid": "hmac"}, id="oct-key"),
        pytest.param({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "use": "sig", "alg": "HS256"}, id="oct-sig-key"),
        pytest.param({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}, id="okp"),
        pytest.param({"kty": "RSA", "n": "!!!", "e": "AQAB", "kid": "bad-n"}, id="rsa-n-not-base64url"),
        pytest.param({"kty": "RSA", "e": "AQAB", "kid": "no-n"}, id="rsa-without-n"),
        pytest.param({"kty": "RSA", "n": 5, "e": "AQAB", "kid": "numeric-n"}, id="rsa-numeric-n"),
        pytest.param({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "kid": "off"}, id="ec-point-off-curve"),
        pytest.param({"kty": "EC", "x": "AA", "y": "AA", "kid": "no-crv"}, id="ec-without-crv"),
        pytest.param({"kty": "EC", "crv": "P-999", "x": "AA", "y": "AA", "kid": "odd"}, id="ec-unknown-curve"),
        pytest.param({"kty": "EC", "crv": "brainpoolP256r1", "x": "AA", "y": "AA"}, id="ec-unsupported-curve"),
        pytest.param({"kid": "no-kty"}, id="no-kty"),
        pytest.param("not-an-object", id="string-entry"),
        pytest.param(None, id="null-entry"),
    ],
)
def test_a_key_that_cannot_verify_is_skipped_and_the_others_still_load(keyring: Keyring, skipped: Any) -> None:
    keys = parse_jwks({"keys": [skipped, public(keyring.rsa1)]}, NOW)
    assert [k.kid for k in keys.all_keys] == ["rsa-1"]
    assert list(keys.by_kid) == ["rsa-1"]


@pytest.mark.parametrize("use", ["enc", "", "SIG", "signature"])
def test_a_key_not_for_signatures_is_skipped(keyring: Keyring, use: str) -> None:
    keys = parse_jwks({"keys": [public(keyring.rsa2, use=use), public(keyring.rsa1)]}, NOW)
    assert [k.kid for k in keys.all_keys] == ["rsa-1"]


def test_a_key_without_use_is_a_signature_key(keyring: Keyring) -> None:
    entry = public(keyring.rsa1)
    entry.pop("use", None)
    assert [k.kid for k in parse_jwks({"keys": [entry]}, NOW).all_keys] == ["rsa-1"]


@pytest.mark.parametrize("which", ["rsa1", "ec256"])
def test_private_parts_of_a_published_key_are_dropped(keyring: Keyring, which: str) -> None:
    key: RSAKey | ECKey = getattr(keyring, which)
    entry = dict(key.as_dict(private=True))
    assert "d" in entry
    loaded = parse_jwks({"keys": [entry]}, NOW).all_keys[0]
    assert not loaded.is_private
    assert loaded.private_key is None
    assert not set(PRIVATE_PARTS) & set(loaded.as_dict())


def test_keys_sharing_a_kid_are_all_candidates_and_keys_without_kid_only_match_tokens_without_kid(
    keyring: Keyring,
) -> None:
    no_kid = public(keyring.ec256)
    no_kid.pop("kid")
    keys = parse_jwks({"keys": [public(keyring.rsa1, kid="same"), public(keyring.rsa2, kid="same"), no_kid]}, NOW)
    assert len(keys.by_kid["same"]) == 2
    assert len(keys.all_keys) == 3
    assert len(keys.candidates("same", "RS256")) == 2
    assert len(keys.candidates(None, "ES256")) == 1
    assert keys.candidates("ec-256", "ES256") == []


@pytest.mark.parametrize(
    "document",
    [
        pytest.param({"keys": []}, id="no-keys"),
        pytest.param({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, id="only-oct"),
        pytest.param({}, id="no-keys-member"),
        pytest.param({"keys": {"kty": "RSA"}}, id="keys-not-a-list"),
        pytest.param([], id="list-document"),
        pytest.param("keys", id="string-document"),
        pytest.param(None, id="null-document"),
    ],
)
def test_a_jwks_without_usable_keys_is_an_error(document: Any) -> None:
    with pytest.raises(ValueError, match="keys"):
        parse_jwks(document, NOW)


# KeySet.candidates -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed(keyring: Keyring) -> KeySet:
    return parse_jwks(
        {"keys": [public(keyring.rsa1), public(keyring.ec256), public(keyring.ec384), public(keyring.rsa2)]}, NOW
    )


@pytest.mark.parametrize(
    ("kid", "alg", "expected"),
    [
        pytest.param(None, "RS256", ["rsa-1", "rsa-2"], id="no-kid-rsa"),
        pytest.param(None, "PS256", ["rsa-1", "rsa-2"], id="no-kid-pss"),
        pytest.param(None, "RS512", ["rsa-1", "rsa-2"], id="no-kid-rs512"),
        pytest.param(None, "ES256", ["ec-256"], id="no-kid-p256"),
        pytest.param(None, "ES384", ["ec-384"], id="no-kid-p384"),
        pytest.param(None, "ES512", [], id="no-kid-no-p521"),
        pytest.param("rsa-1", "RS256", ["rsa-1"], id="kid-rsa"),
        pytest.param("rsa-2", "PS384", ["rsa-2"], id="kid-rsa-pss"),
        pytest.param("rsa-1", "ES256", [], id="rsa-kid-ec-alg"),
        pytest.param("ec-256", "RS256", [], id="ec-kid-rsa-alg"),
        pytest.param("ec-256", "ES256", ["ec-256"], id="kid-p256"),
        pytest.param("ec-256", "ES384", [], id="p256-kid-p384-alg"),
        pytest.param("ec-384", "ES256", [], id="p384-kid-p256-alg"),
        pytest.param("nope", "RS256", [], id="unknown-kid"),
        pytest.param("", "RS256", [], id="empty-kid"),
        pytest.param(None, "HS256", [], id="hs256"),
        pytest.param("rsa-1", "HS256", [], id="hs256-with-rsa-kid"),
        pytest.param(None, "none", [], id="none"),
        pytest.param(None, "EdDSA", [], id="eddsa"),
    ],
)
def test_candidates_are_filtered_by_kid_key_type_and_curve(
    mixed: KeySet, kid: str | None, alg: str, expected: list[str]
) -> None:
    assert [k.kid for k in mixed.candidates(kid, alg)] == expected


# KeySource -------------------------------------------------------------------------------------------


def test_the_discovery_url_is_under_the_issuer() -> None:
    assert discovery_url_for("https://a.example") == "https://a.example/.well-known/openid-configuration"
    assert discovery_url_for("https://a.example/") == "https://a.example/.well-known/openid-configuration"
    assert (
        discovery_url_for("https://a.example/realms/x") == "https://a.example/realms/x/.well-known/openid-configuration"
    )


async def test_a_key_source_is_not_ready_until_the_first_successful_fetch(keyring: Keyring) -> None:
    issuer = FakeIssuer()
    issuer.publish(keyring.rsa1)
    issuer.responses[issuer.jwks_url] = json_response({}, status=503)
    source = issuer.key_source()
    assert not source.ready
    assert source.keys is None
    assert await source.refresh() is False
    assert not source.ready
    assert "503" in source.last_error
    del issuer.responses[issuer.jwks_url]
    assert await source.refresh() is True
    assert source.ready
    assert source.last_error == ""
    assert source.keys is not None
    assert [k.kid for k in source.keys.all_keys] == ["rsa-1"]
    assert issuer.calls == [issuer.discovery_url, issuer.jwks_url, issuer.discovery_url, issuer.jwks_url]


async def test_the_jwks_is_fetched_from_the_jwks_uri_of_the_discovery_document(keyring: Keyring) -> None:
    issuer = FakeIssuer()
    issuer.discovery["jwks_uri"] = "https://keys.example/certs"
    issuer.responses["https://keys.example/certs"] = json_response({"keys": [public(keyring.ec256)]})
    source = issuer.key_source()
    assert await source.refresh()
    assert issuer.calls == [issuer.discovery_url, "https://keys.example/certs"]


async def test_a_configured_discovery_url_replaces_the_well_known_one(keyring: Keyring) -> None:
    issuer = FakeIssuer()
    issuer.publish(keyring.rsa1)
    issuer.responses["https://internal.example/discovery"] = json_response(issuer.discovery)
    source = issuer.key_source(discovery_url="https://internal.example/discovery")
    assert await source.refresh()
    assert issuer.calls == ["https://internal.example/discovery", issuer.jwks_url]


def _response(status: int, body: bytes) -> FetchResponse:
    return FetchResponse(status, [], body)


FAILURES = [
    pytest.param("discovery", json_response({"issuer": "https://evil.example", "jwks_uri": "x"}), "match", id="iss"),
    pytest.param("discovery", json_response({"issuer": ISSUER + "/", "jwks_uri": "x"}), "match", id="iss-slash"),
    pytest.param("discovery", json_response({"jwks_uri": ISSUER + "/keys"}), "match", id="no-issuer"),
    pytest.param("discovery", json_response({"issuer": ISSUER}), "jwks_uri", id="no-jwks-uri"),
    pytest.param("discovery", json_response({"issuer": ISSUER, "jwks_uri": ""}), "jwks_uri", id="empty-jwks-uri"),
    pytest.param("discovery", json_response({"issuer": ISSUER, "jwks_uri": 7}), "jwks_uri", id="numeric-jwks-uri"),
    pytest.param("discovery", json_response([ISSUER]), "object", id="discovery-list"),
    pytest.param("discovery", _response(404, b"{}"), "404", id="discovery-404"),
    pytest.param("discovery", _response(500, b"down"), "500", id="discovery-500"),
    pytest.param("discovery", _response(302, b""), "302", id="discovery-redirect"),
    pytest.param("discovery", _response(200, b"<html>"), "JSON", id="discovery-html"),
    pytest.param("discovery", _response(200, b"\xff\xfe"), "JSON", id="discovery-not-utf8"),
    pytest.param("discovery", _response(200, b""), "JSON", id="discovery-empty"),
    pytest.param("jwks", _response(404, b"{}"), "404", id="jwks-404"),
    pytest.param("jwks", _response(200, b"not json"), "JSON", id="jwks-not-json"),
    pytest.param("jwks", json_response({"keys": []}), "keys", id="jwks-empty"),
    pytest.param("jwks", json_response({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}), "keys", id="jwks-only-oct"),
    pytest.param("jwks", FetchError("GET https://issuer.example/keys: timed out after 30s"), "timed out", id="timeout"),
    pytest.param("discovery", ConnectionRefusedError("refused"), "refused", id="connection-refused"),
]


@pytest.mark.parametrize(("which", "response", "error_word"), FAILURES)
async def test_a_failed_first_fetch_leaves_the_source_not_ready(
    keyring: Keyring, which: str, response: FetchResponse | BaseException, error_word: str
) -> None:
    issuer = FakeIssuer()
    issuer.publish(keyring.rsa1)
    issuer.responses[issuer.discovery_url if which == "discovery" else issuer.jwks_url] = response
    source = issuer.key_source()
    assert await source.refresh() is False
    assert not source.ready
    assert error_word in source.last_error


@pytest.mark.parametrize(("which", "response", "error_word"), FAILURES)
async def test_a_failed_refresh_keeps_the_last_good_keys(
    keyring: Keyring, which: str, response: FetchResponse | BaseException, error_word: str
) -> None:
    issuer = FakeIssuer()
    issuer.publish(keyring.rsa1)
    source = issuer.key_source()
    assert await source.refresh()
    good = source.keys
    issuer.publish(keyring.rsa2)
    issuer.responses[issuer.discovery_url if which == "discovery" else issuer.jwks_url] = response
    assert await source.refresh() is False
    assert source.ready
    assert source.keys is good
    assert error_word in source.last_error


@pytest.mark.parametrize(
    ("which", "response", "error_word"),
    [p for p in FAILURES if p.id != "connection-refused"],  # that one is raised past the URL-naming client
)
async def test_a_failed_fetch_names_the_url_it_fetched(
    keyring: Keyring, which: str, response: FetchResponse | BaseException, error_word: str
) -> None:
    issuer = FakeIssuer()
    issuer.publish(keyring.rsa1)
    url = issuer.discovery_url if which == "discovery" else issuer.jwks_url
    issuer.responses[url] = response
    source = issuer.key_source()
    assert await source.refresh() is False
    assert source.last_error.startswith(f"GET {url}: ")


@pytest.mark.parametrize(
    ("raised", "cause"),
    [
        pytest.param(TimeoutError(), "TimeoutError", id="no-message"),
        pytest.param(
            ConnectionRefusedError(111, "Connection refused"),
            "ConnectionRefusedError: [Errno 111] Connection refused",
            id="os-error",
        ),
        pytest.param(KeyError("jwks_uri"), "KeyError: 'jwks_uri'", id="a-bug"),
        pytest.param(
            FetchError("GET https://issuer.example/keys: timed out after 30s"),
            "GET https://issuer.example/keys: timed out after 30s",
            id="fetch-error-says-it-all",
        ),
    ],
)
async def test_whatever_fails_a_fetch_is_logged_and_reported_with_its_type_and_message(
    keyring: Keyring, caplog: pytest.LogCaptureFixture, raised: BaseException, cause: str
) -> None:
    issuer = FakeIssuer()
    issuer.publish(keyring.rsa1)
    issuer.responses[issuer.discovery_url] = raised
    source = issuer.key_source()
    with caplog.at_level(logging.WARNING, logger="kop.jwks"):
        assert await source.refresh() is False
    assert source.last_error == cause
    assert f"fetching signing keys of {ISSUER} failed (no keys yet): {cause}" in caplog.text


@pytest.mark.parametrize(
    ("which", "body"),
    [
        pytest.param("discovery", b"[" * 100_000 + b"]" * 100_000, id="discovery-nested-too-deeply"),
        pytest.param("jwks", b'{"keys": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", id="jwks-nested-too-deeply"),
        pytest.param(
            "jwks",
            json.dumps({"keys": [{"kty": "EC", "crv": "P-999", "x": "AA", "y": "AA"}]}).encode(),
            id="jwks-with-an-unknown-curve",
        ),
    ],
)
async def test_a_hostile_document_is_a_failed_fetch_not_an_exception(keyring: Keyring, which: str, body: bytes) -> None:
    # An exception escaping refresh() would end the background refresh loop for good and fail verify() with it.
    issuer = FakeIssuer()
    issuer.publish(keyring.rsa1)
    source = issuer.key_source()
    assert await source.refresh()
    good = source.keys
    issuer.responses[issuer.discovery_url if which == "discovery" else issuer.jwks_url] = _response(200, body)
    assert await source.refresh() is False
    assert source.keys is good


async def test_a_successful_refresh_replaces_the_keys(keyring: Keyring) -> None:
    issuer = FakeIssuer()
    issuer.publish(keyring.rsa1)
    source = issuer.key_source()
    assert await source.refresh()
    issuer.publish(keyring.rsa2)
    assert await source.refresh()
    assert source.keys is not None
    assert [k.kid for k in source.keys.all_keys] == ["rsa-2"]


async def test_concurrent_unknown_kid_refetches_share_one_fetch(keyring: Keyring) -> None:
    issuer = FakeIssuer()
    issuer.publish(keyring.rsa1)
    source = issuer.key_source(min_refetch_interval=10.0)
    issuer.gate = asyncio.Event()
    tasks = [asyncio.ensure_future(source.refetch_for_unknown_kid()) for _ in range(10)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert issuer.calls == [issuer.discovery_url]  # the first fetch is waiting; no one started another
    issuer.gate.set()
    results = await asyncio.gather(*tasks)
    assert results == [True] * 10
    assert issuer.count(issuer.discovery_url) == 1
    assert issuer.count(issuer.jwks_url) == 1
    assert source.fetch_count == 1
    assert source.ready


async def test_an_unknown_kid_refetch_within_the_minimum_interval_does_not_fetch(keyring: Keyring) -> None:
    issuer = FakeIssuer()
    issuer.publish(keyring.rsa1)
    source = issuer.key_source(min_refetch_interval=10.0)
    assert await source.refetch_for_unknown_kid() is True
    calls = len(issuer.calls)
    for _ in range(20):
        assert await source.refetch_for_unknown_kid() is False
    assert len(issuer.calls) == calls
    assert source.fetch_count == 1


async def test_the_initial_load_also_counts_towards_the_refetch_interval(keyring: Keyring) -> None:
    issuer = FakeIssuer()
    issuer.publish(keyring.rsa1)
    source = issuer.key_source(min_refetch_interval=10.0)
    assert await source.refresh()
    assert await source.refetch_for_unknown_kid() is False
    assert len(issuer.calls) == 2


async def test_an_unknown_kid_refetch_after_the_minimum_interval_fetches_again(
    keyring: Keyring, monotonic: ManualClock
) -> None:
    issuer = FakeIssuer()
    issuer.publish(keyring.rsa1)
    source = issuer.key_source(min_refetch_interval=10.0)
    assert await source.refetch_for_unknown_kid()
    monotonic.advance(9.9)
    assert await source.refetch_for_unknown_kid() is False
    monotonic.advance(0.1)
    issuer.publish(keyring.rsa2)
    assert await source.refetch_for_unknown_kid() is True
    assert source.fetch_count == 2
    assert source.keys is not None
    assert [k.kid for k in source.keys.all_keys] == ["rsa-2"]


async def test_a_failed_unknown_kid_refetch_keeps_the_keys_and_is_rate_limited_too(keyring: Keyring) -> None:
    issuer = FakeIssuer()
    issuer.publish(keyring.rsa1)
    source = issuer.key_source(min_refetch_interval=0.0)
    assert await source.refresh()
    good = source.keys
    issuer.responses[issuer.jwks_url] = _response(500, b"")
    assert await source.refetch_for_unknown_kid() is False
    assert source.keys is good
    slow = issuer.key_source(min_refetch_interval=10.0)
    issuer.responses[issuer.discovery_url] = _response(500, b"")
    assert await slow.refetch_for_unknown_kid() is False
    calls = len(issuer.calls)
    assert await slow.refetch_for_unknown_kid() is False
    assert len(issuer.calls) == calls


async def test_the_background_loop_retries_until_the_issuer_answers_then_stops_on_close(keyring: Keyring) -> None:
    issuer = FakeIssuer()
    issuer.publish(keyring.rsa1)
    issuer.responses[issuer.discovery_url] = _response(503, b"")
    source = issuer.key_source(retry_interval=0.01, refresh_interval=3600.0)
    source.start()
    try:
        for _ in range(200):
            if issuer.count(issuer.discovery_url) >= 3:
                break
            await asyncio.sleep(0.005)
        assert not source.ready
        del issuer.responses[issuer.discovery_url]
        for _ in range(400):
            if source.ready:
                break
            await asyncio.sleep(0.005)
        assert source.ready
    finally:
        await source.close()
    calls = len(issuer.calls)
    await asyncio.sleep(0.05)
    assert len(issuer.calls) == calls
