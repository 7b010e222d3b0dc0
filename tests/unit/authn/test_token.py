"""token.parse_compact: the structure of a compact JWS, refused before any key sees it."""

from __future__ import annotations

import pytest

from kube_oidc_proxy.authn.token import MalformedToken, parse_compact
from tests.unit.authn.fakes import b64url, segment

HEADER = segment({"alg": "RS256", "kid": "k1", "typ": "JWT"})
PAYLOAD = segment({"iss": "https://issuer.example", "sub": "alice"})
SIGNATURE = b64url(b"\x01\x02\x03signature-bytes")
VALID = b".".join((HEADER, PAYLOAD, SIGNATURE))
DEEP = b"{" + b'"a":{' * 100_000 + b"}" * 100_000 + b"}"


def test_a_well_formed_token_is_parsed() -> None:
    parsed = parse_compact(VALID)
    assert parsed.raw == VALID
    assert parsed.alg == "RS256"
    assert parsed.kid == "k1"
    assert parsed.claims == {"iss": "https://issuer.example", "sub": "alice"}


def test_a_token_without_kid_has_kid_none() -> None:
    parsed = parse_compact(b".".join((segment({"alg": "ES256"}), PAYLOAD, SIGNATURE)))
    assert parsed.kid is None
    assert parsed.alg == "ES256"


def test_malformed_token_is_a_value_error() -> None:
    assert issubclass(MalformedToken, ValueError)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        pytest.param(b".".join((HEADER, PAYLOAD, SIGNATURE, SIGNATURE, SIGNATURE)), "JWE", id="jwe-five-parts"),
        pytest.param(b".".join((HEADER, PAYLOAD)), "compact", id="two-parts"),
        pytest.param(b".".join((HEADER, PAYLOAD, SIGNATURE, SIGNATURE)), "compact", id="four-parts"),
        pytest.param(HEADER, "compact", id="one-part"),
        pytest.param(b"", "compact", id="empty"),
        pytest.param(b".".join((b"", PAYLOAD, SIGNATURE)), "compact", id="empty-header"),
        pytest.param(b".".join((HEADER, b"", SIGNATURE)), "compact", id="empty-payload"),
        pytest.param(b".".join((HEADER, PAYLOAD, b"")), "compact", id="empty-signature"),
        pytest.param(b"..", "compact", id="only-dots"),
        pytest.param(b".".join((HEADER + b"==", PAYLOAD, SIGNATURE)), "base64url", id="padded-header"),
        pytest.param(b".".join((HEADER, PAYLOAD + b"=", SIGNATURE)), "base64url", id="padded-payload"),
        pytest.param(b".".join((HEADER, PAYLOAD, b"AAAA=")), "base64url", id="padded-signature"),
        pytest.param(b".".join((HEADER, PAYLOAD, b"ab+c")), "base64url", id="plus-in-signature"),
        pytest.param(b".".join((HEADER, PAYLOAD, b"ab/c")), "base64url", id="slash-in-signature"),
        pytest.param(b".".join((HEADER, PAYLOAD + b"+/", SIGNATURE)), "base64url", id="standard-alphabet-payload"),
        pytest.param(b".".join((HEADER, PAYLOAD, b"A")), "base64url", id="impossible-length-signature"),
        pytest.param(b".".join((HEADER, PAYLOAD, SIGNATURE + b"\n")), "base64url", id="trailing-newline"),
        pytest.param(b".".join((HEADER, b" " + PAYLOAD, SIGNATURE)), "base64url", id="space-in-payload"),
        pytest.param(b".".join((HEADER, PAYLOAD, "sïg".encode())), "base64url", id="non-ascii-signature"),
        pytest.param(b".".join((b64url(b"not json"), PAYLOAD, SIGNATURE)), "header is not JSON", id="header-not-json"),
        pytest.param(b".".join((HEADER, b64url(b"{oops"), SIGNATURE)), "payload is not JSON", id="payload-not-json"),
        pytest.param(
            b".".join((HEADER, b64url(b"\xff\xfe{}"), SIGNATURE)), "payload is not JSON", id="payload-not-utf8"
        ),
        pytest.param(b".".join((segment(["RS256"]), PAYLOAD, SIGNATURE)), "header is not a JSON object", id="hdr-list"),
        pytest.param(b".".join((segment("RS256"), PAYLOAD, SIGNATURE)), "header is not a JSON object", id="hdr-str"),
        pytest.param(b".".join((HEADER, segment(["a"]), SIGNATURE)), "payload is not a JSON object", id="payload-list"),
        pytest.param(b".".join((HEADER, segment("sub"), SIGNATURE)), "payload is not a JSON object", id="payload-str"),
        pytest.param(b".".join((HEADER, segment(None), SIGNATURE)), "payload is not a JSON object", id="payload-null"),
        pytest.param(b".".join((HEADER, segment(42), SIGNATURE)), "payload is not a JSON object", id="payload-number"),
        pytest.param(b".".join((HEADER, b64url(DEEP), SIGNATURE)), "nested too deeply", id="deep-payload"),
        pytest.param(b".".join((b64url(DEEP), PAYLOAD, SIGNATURE)), "nested too deeply", id="deep-header"),
        pytest.param(b".".join((segment({"typ": "JWT"}), PAYLOAD, SIGNATURE)), "no alg", id="missing-alg"),
        pytest.param(b".".join((segment({"alg": ""}), PAYLOAD, SIGNATURE)), "no alg", id="empty-alg"),
        pytest.param(b".".join((segment({"alg": None}), PAYLOAD, SIGNATURE)), "no alg", id="null-alg"),
        pytest.param(b".".join((segment({"alg": 256}), PAYLOAD, SIGNATURE)), "no alg", id="numeric-alg"),
        pytest.param(b".".join((segment({"alg": ["RS256"]}), PAYLOAD, SIGNATURE)), "no alg", id="list-alg"),
        pytest.param(
            b".".join((segment({"alg": "RS256", "crit": ["exp"], "exp": 1}), PAYLOAD, SIGNATURE)),
            "critical",
            id="crit-header",
        ),
        pytest.param(
            b".".join((segment({"alg": "RS256", "crit": []}), PAYLOAD, SIGNATURE)), "critical", id="crit-empty"
        ),
        pytest.param(b".".join((segment({"alg": "RS256", "kid": 7}), PAYLOAD, SIGNATURE)), "kid", id="numeric-kid"),
        pytest.param(b".".join((segment({"alg": "RS256", "kid": ["a"]}), PAYLOAD, SIGNATURE)), "kid", id="list-kid"),
        pytest.param(b".".join((segment({"alg": "RS256", "kid": {"a": 1}}), PAYLOAD, SIGNATURE)), "kid", id="obj-kid"),
        pytest.param(b".".join((segment({"alg": "RS256", "kid": True}), PAYLOAD, SIGNATURE)), "kid", id="bool-kid"),
    ],
)
def test_a_malformed_token_is_refused_before_any_key_sees_it(raw: bytes, why: str) -> None:
    with pytest.raises(MalformedToken) as caught:
        parse_compact(raw)
    assert why in str(caught.value)


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_a_payload_with_a_non_json_number_literal_is_refused(literal: bytes) -> None:
    # RFC 8259 §6 has no NaN or Infinity; Go's encoding/json (kube-apiserver) refuses them. Python's json accepts
    # them by default, and an ``exp`` of NaN compares false with every clock, i.e. it would never expire.
    payload = b64url(b'{"iss": "https://issuer.example", "sub": "alice", "exp": ' + literal + b"}")
    with pytest.raises(MalformedToken):
        parse_compact(b".".join((HEADER, payload, SIGNATURE)))


@pytest.mark.parametrize(("digits", "read_as"), [(b"9" * 5000, float("inf")), (b"-" + b"1" * 4301, float("-inf"))])
def test_an_integer_longer_than_python_converts_is_read_as_an_overflowed_double(digits: bytes, read_as: float) -> None:
    # Python refuses to convert more than 4300 digits with a plain ValueError (the proxy answered 500); Go's
    # decoder overflows: no check of a number accepts inf, and a claim nothing reads may hold it
    payload = b64url(b'{"iss": "https://issuer.example", "sub": "alice", "n": ' + digits + b', "exp": 1}')
    assert parse_compact(b".".join((HEADER, payload, SIGNATURE))).claims["n"] == read_as


def test_a_malformed_token_message_does_not_echo_the_token() -> None:
    raw = b".".join((segment({"alg": "RS256", "kid": 7}), PAYLOAD, SIGNATURE))
    with pytest.raises(MalformedToken) as caught:
        parse_compact(raw)
    for part in raw.split(b"."):
        assert part.decode() not in str(caught.value)
