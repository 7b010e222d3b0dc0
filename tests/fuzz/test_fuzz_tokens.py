"""Fuzz targets: bearer tokens, from arbitrary bytes to forgeries of validly signed ones.

- ``parse_compact`` (and ``find_credential`` around it) never raise anything but ``MalformedToken``
  (``CredentialError``), whatever the bytes: random ones, three segments of random JSON, mutated real tokens.
- ``TokenAuthenticator.authenticate`` (parse, route by issuer, ``JWTAuthenticator.verify`` against in-memory
  key sets of two trusted issuers) never raises, and accepts a token only if its header and payload are
  exactly what a key of the issuer it names signed: every mutation of a signed token (a byte edited, the
  header swapped for ``alg: none``, HS256 or another ``kid``, the payload swapped, another token's signature,
  an HMAC keyed with the public key, an attacker's key named by a published ``kid`` or embedded as ``jwk``)
  is refused. Claims hold what an IdP or an attacker could put there: lone surrogates, control characters,
  ``system:`` names with spaces around, huge numbers, NaN, deep nesting. Whatever is accepted is a user
  whose every value passes ``identity.value_problem``, with no ``system:`` name unless allowed.

- ``user_from_claims`` reads claims holding lone surrogates (JSON's ``\\ud800`` escape, which no UTF-8 can
  carry) as kube-apiserver reads them (Go's JSON decoder gives U+FFFD), with the ``--oidc-*`` mappings and
  with CEL ones: the verdict is the one for the claims as Go decodes them, or a refusal of an identity that
  is not Unicode text; never an exception, never a user that cannot be written to a header.

- ``find_credential`` on a WebSocket request takes from ``Sec-WebSocket-Protocol`` exactly the token
  kube-apiserver would read there (first line only, Go's ``strings.TrimSpace`` with its Unicode spaces), or
  refuses the request: never a token the proxy did not check behind an NBSP, NEL or ideographic space.

Tokens are signed here with ``cryptography`` directly, not with the library the verifier uses.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import ssl
import unicodedata
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import strategies as st
from joserfc.jwk import ECKey

from kube_oidc_proxy.authn.authconfig import parse_authentication_config
from kube_oidc_proxy.authn.authenticator import TokenAuthenticator
from kube_oidc_proxy.authn.bearer import WS_TOKEN_PREFIX, CredentialError, find_credential
from kube_oidc_proxy.authn.cache import TokenCache
from kube_oidc_proxy.authn.cel import Compiler
from kube_oidc_proxy.authn.claims import user_from_claims
from kube_oidc_proxy.authn.jwks import KeySource
from kube_oidc_proxy.authn.model import Authenticated, ClaimMapping, JWTAuthenticatorSpec, NotMine, Rejected
from kube_oidc_proxy.authn.oidc import JWTAuthenticator
from kube_oidc_proxy.authn.token import MalformedToken, ParsedToken, parse_compact
from kube_oidc_proxy.httpclient import FetchResponse
from kube_oidc_proxy.identity import value_problem
from tests.fuzz.runner import fuzz
from tests.support.issuer import Key, new_key

ISSUER_A: Final = "https://a.issuer.example"
ISSUER_B: Final = "https://b.issuer.example/tenant"
AUDIENCE: Final = "kube"
NOW: Final = 1_700_000_000.0
ALGS: Final = frozenset({"RS256", "PS256", "ES256"})
HASHES: Final[dict[str, Callable[[], hashes.HashAlgorithm]]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}

# -- keys, issuers, authenticators: built once ----------------------------------------------------------------


@dataclass(frozen=True)
class Signer:
    key: Key
    algs: tuple[str, ...]
    issuer: str | None  # the trusted issuer that publishes this key; None: the attacker's


@cache
def signers() -> dict[str, Signer]:
    return {
        "a-rsa": Signer(new_key("RS256", "a-rsa"), ("RS256", "RS256", "PS256", "RS384"), ISSUER_A),
        "a-ec": Signer(new_key("ES256", "a-ec"), ("ES256",), ISSUER_A),
        "b-rsa": Signer(new_key("RS256", "b-rsa"), ("RS256", "PS256"), ISSUER_B),
        "evil-ec": Signer(new_key("ES256", "evil-ec"), ("ES256",), None),
        "evil-rsa": Signer(new_key("RS256", "evil-rsa"), ("RS256",), None),
    }


def completed(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never waits (every key is in memory, refetches are off) to its result."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise AssertionError("verification waited for I/O")


def key_source(issuer: str, *kids: str) -> KeySource:
    documents = {
        issuer + "/.well-known/openid-configuration": {"issuer": issuer, "jwks_uri": issuer + "/keys"},
        issuer + "/keys": {"keys": [signers()[k].key.as_dict(private=False) for k in kids]},
    }

    async def fetch(url: str) -> FetchResponse:
        return FetchResponse(200, [], json.dumps(documents[url]).encode())

    source = KeySource(issuer, ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), fetcher=fetch, min_refetch_interval=1e12)
    assert asyncio.run(source.refresh())
    return source


@dataclass(frozen=True)
class Setup:
    username: ClaimMapping
    groups: ClaimMapping
    uid: ClaimMapping | None
    allow_system: bool


SETUPS: Final = [
    Setup(ClaimMapping("sub"), ClaimMapping("groups"), None, allow_system=False),
    Setup(ClaimMapping("email"), ClaimMapping("groups", prefix="oidc:"), ClaimMapping("uid"), allow_system=False),
    Setup(ClaimMapping("sub", prefix="oidc:"), ClaimMapping("groups"), None, allow_system=True),
]


@cache
def authenticator(setup: int) -> TokenAuthenticator:
    s = SETUPS[setup]
    sources = {ISSUER_A: key_source(ISSUER_A, "a-rsa", "a-ec"), ISSUER_B: key_source(ISSUER_B, "b-rsa")}
    return TokenAuthenticator(
        [
            JWTAuthenticator(
                JWTAuthenticatorSpec(issuer, (AUDIENCE,), s.username, s.groups, s.uid, signing_algs=ALGS),
                source,
                allow_system_identities=s.allow_system,
                clock=lambda: NOW,
            )
            for issuer, source in sources.items()
        ],
        TokenCache(),
        clock=lambda: NOW,
    )


# -- making tokens --------------------------------------------------------------------------------------------


def b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def segment(value: Any) -> bytes:
    return b64url(json.dumps(value).encode())


def signature(key: Key, alg: str, signing_input: bytes) -> bytes:
    algorithm = HASHES[alg[2:]]()
    private = key.private_key
    if isinstance(private, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(private.sign(signing_input, ec.ECDSA(algorithm)))
        size = (private.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    assert isinstance(private, rsa.RSAPrivateKey)
    pad = padding.PKCS1v15() if alg.startswith("RS") else padding.PSS(padding.MGF1(algorithm), algorithm.digest_size)
    return private.sign(signing_input, pad, algorithm)


def signed(key: Key, alg: str, header: dict[str, Any], payload: bytes) -> bytes:
    signing_input = segment(header) + b"." + b64url(payload)
    return signing_input + b"." + b64url(signature(key, alg, signing_input))


def base_claims(issuer: str) -> dict[str, Any]:
    return {
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": "alice",
        "email": "alice@example.com",
        "email_verified": True,
        "uid": "u-1",
        "groups": ["dev", "ops"],
        "iat": int(NOW),
        "exp": int(NOW) + 600,
    }


# What a hostile or sloppy IdP could write into an identity claim.
IDENTITY_TEXTS: Final = [
    "alice",
    "system:masters",
    " system:masters",
    "system:masters\t",
    "system:admin",
    "al\nice",
    "a\x00b",
    "a\x85b",
    "a\u2028b",
    "\ud800",
    "\udc80x",
    "é",
    "",
    "x" * 300,
    "admin ",
]
json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**400, -(10**400), 2**63, 1e308, -0.0]),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(IDENTITY_TEXTS),
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=6,
)
CLAIM_KEYS: Final = ["iss", "aud", "sub", "email", "email_verified", "uid", "groups", "exp", "nbf", "jti", "iat"]
overrides = st.dictionaries(st.one_of(st.sampled_from(CLAIM_KEYS), st.text(max_size=4)), json_values, max_size=3)
# Payloads that are not the JSON of a dict: invalid UTF-8, deep nesting, NaN, not an object.
raw_payloads = st.one_of(
    st.binary(max_size=30),
    st.integers(min_value=1, max_value=100_000).map(lambda d: b'{"sub":' + b"[" * d + b"]" * d + b"}"),
    st.sampled_from([b'{"exp": NaN}', b"[]", b'"sub"', b'{"sub":"\xff"}', b"{}", b'{"sub":"a"}{"sub":"b"}']),
    # more digits than Python converts to an int (4300)
    st.sampled_from([b'{"exp":' + b"9" * 5000 + b"}", b'{"n":-' + b"1" * 4301 + b"}"]),
)


@dataclass(frozen=True)
class Case:
    token: bytes  # what the client sends
    header_and_payload: bytes  # what the key signed
    claims: dict[str, Any] | None  # None: the payload is not the JSON of a dict
    signer: Signer
    mutation: str
    ordinary: bool  # an allowed alg, unmodified claims of the issuer that published the signing key, its own kid

    @property
    def signed_part(self) -> bytes:
        return self.token.rpartition(b".")[0]


# Mostly what a real IdP does, so that most tokens reach the claim checks; the rest is the attacker's.
SIGNER_CHOICES: Final = ["a-rsa", "a-rsa", "a-ec", "a-ec", "b-rsa", "b-rsa", "evil-ec", "evil-rsa"]
KID_CHOICES: Final = ["own"] * 6 + ["none", "a-rsa", "a-ec", "b-rsa", "unknown", 7]
EXTRA_HEADERS: Final = [{}, {}, {}, {"typ": "at+jwt"}, {"jku": "https://evil.example/keys"}, {"x5u": "https://evil"}]
MUTATIONS: Final = ["none"] * 6 + [
    "edit",
    "edit-signature",
    "header",
    "payload",
    "alg-none",
    "hmac",
    "other-signature",
    "segments",
]
B64_BYTES: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
FORGED_ALGS: Final = ["none", "None", "HS256", "HS512", "RS256", "ES256", "PS256", "RS384", "ES512", "", "EdDSA"]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    name = draw(st.sampled_from(SIGNER_CHOICES))
    signer = signers()[name]
    alg = draw(st.sampled_from(signer.algs))
    own_issuer = signer.issuer or ISSUER_A
    named_issuer = draw(st.sampled_from([own_issuer] * 4 + [ISSUER_A, ISSUER_B, "https://other.example"]))
    changes = draw(st.one_of(st.just({}), overrides))
    claims: dict[str, Any] | None = base_claims(named_issuer) | changes
    if draw(st.integers(min_value=0, max_value=9)) == 9:
        payload, claims = draw(raw_payloads), None
    else:
        payload = json.dumps(claims).encode()  # lone surrogates as \ud800, NaN as NaN: as an attacker writes them
    kid = draw(st.sampled_from(KID_CHOICES))
    header: dict[str, Any] = {"alg": alg, "typ": "JWT", **draw(st.sampled_from(EXTRA_HEADERS))}
    if kid != "none":
        header["kid"] = name if kid == "own" else kid
    if signer.issuer is None and draw(st.booleans()):  # the attacker's public key, offered in the header
        header["jwk"] = signer.key.as_dict(private=False)
    original = signed(signer.key, alg, header, payload)
    mutation = draw(st.sampled_from(MUTATIONS))
    token = draw(mutated(original, mutation, signer))
    ordinary = (
        alg in ALGS
        and not changes
        and claims is not None
        and signer.issuer == named_issuer
        and kid in ("own", "none")
        and header.keys() <= {"alg", "typ", "kid"}
    )
    return Case(token, original.rpartition(b".")[0], claims, signer, mutation, ordinary)


@st.composite
def mutated(draw: st.DrawFn, token: bytes, mutation: str, signer: Signer) -> bytes:
    header, payload, sig = token.split(b".")
    if mutation in ("edit", "edit-signature"):
        start = len(token) - len(sig) if mutation == "edit-signature" else 0
        at = draw(st.integers(min_value=start, max_value=len(token) - 1))
        new = draw(st.one_of(st.sampled_from(list(B64_BYTES)), st.integers(min_value=0, max_value=255)))
        how = draw(st.sampled_from(["replace", "insert", "delete"]))
        if how == "replace":
            return token[:at] + bytes([new]) + token[at + 1 :]
        if how == "insert":
            return token[:at] + bytes([new]) + token[at:]
        return token[:at] + token[at + 1 :]
    if mutation == "header":
        forged = {"alg": draw(st.sampled_from(FORGED_ALGS)), "typ": "JWT"}
        kid = draw(st.sampled_from(["a-rsa", "a-ec", "b-rsa", "evil-ec", None]))
        if kid is not None:
            forged["kid"] = kid
        return segment(forged) + b"." + payload + b"." + sig
    if mutation == "payload":
        claims = base_claims(ISSUER_A) | {"sub": draw(st.sampled_from(IDENTITY_TEXTS)), "groups": ["system:masters"]}
        return header + b"." + segment(claims) + b"." + sig
    if mutation == "alg-none":
        head = segment({"alg": draw(st.sampled_from(["none", "None", "NONE"])), "typ": "JWT"})
        return head + b"." + payload + b"." + draw(st.sampled_from([b"", b"x", sig]))
    if mutation == "hmac":  # the public key as an HMAC secret: PEM, DER or its JWK
        public = signer.key.public_key
        assert isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
        secret = draw(
            st.sampled_from(
                [
                    signer.key.as_pem(private=False),
                    public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo),
                    json.dumps(signer.key.as_dict(private=False)).encode(),
                ]
            )
        )
        head = segment({"alg": "HS256", "typ": "JWT", "kid": signer.key.kid})
        mac = hmac.new(secret, head + b"." + payload, hashlib.sha256).digest()
        return head + b"." + payload + b"." + b64url(mac)
    if mutation == "other-signature":  # a genuine signature by the same key, of another payload
        other = signed(signer.key, "ES256" if isinstance(signer.key, ECKey) else "RS256", {"alg": "x"}, b"{}")
        return header + b"." + payload + b"." + other.rpartition(b".")[2]
    if mutation == "segments":
        return draw(
            st.sampled_from(
                [
                    header + b"." + payload,
                    header + b"." + payload + b".",
                    token + b".",
                    token + b"." + sig,
                    token + b"==",
                    b".".join((header, payload, sig + b"=")),
                    b".".join((header + b"=", payload, sig)),
                    b" " + token,
                    token + b"\n",
                    payload + b"." + header + b"." + sig,
                ]
            )
        )
    return token


# -- properties -----------------------------------------------------------------------------------------------


def check_parsed(raw: bytes, parsed: ParsedToken) -> None:
    assert parsed.raw == raw
    assert isinstance(parsed.alg, str) and parsed.alg
    assert parsed.kid is None or isinstance(parsed.kid, str)
    assert isinstance(parsed.claims, dict)


tokenish = st.one_of(
    st.binary(max_size=60),
    st.lists(st.one_of(st.binary(max_size=12).map(b64url), json_values.map(segment)), max_size=5).map(b".".join),
    cases().map(lambda c: c.token),
)


@fuzz(raw=tokenish, websocket=st.booleans(), subprotocols=st.sampled_from([b"", b", v4.channel.k8s.io", b", x, y"]))
def test_a_malformed_token_is_refused_as_malformed_and_nothing_else(
    raw: bytes, websocket: bool, subprotocols: bytes
) -> None:
    try:
        parsed = parse_compact(raw)
    except MalformedToken:
        pass
    else:
        check_parsed(raw, parsed)
    for headers in (
        [(b"authorization", b"Bearer " + raw)],
        [(b"authorization", raw)],
        [(b"sec-websocket-protocol", WS_TOKEN_PREFIX + b64url(raw) + subprotocols)],
        [(b"sec-websocket-protocol", WS_TOKEN_PREFIX + raw + subprotocols)],
    ):
        try:
            credential = find_credential(headers, websocket=websocket)
        except CredentialError:
            continue
        assert credential.token is None or credential.token


@fuzz(case=cases(), setup=st.integers(min_value=0, max_value=len(SETUPS) - 1))
def test_only_a_token_exactly_as_a_trusted_issuer_signed_it_is_accepted(case: Case, setup: int) -> None:
    result = completed(authenticator(setup).authenticate(case.token))
    assert isinstance(result, Authenticated | Rejected | NotMine), result
    if case.ordinary and case.mutation == "none":
        assert isinstance(result, Authenticated), result  # the harness itself accepts what it should
    if not isinstance(result, Authenticated):
        return
    # what was accepted is what a key of the issuer it names signed, unchanged
    assert case.signed_part == case.header_and_payload
    assert case.claims is not None and case.signer.issuer == case.claims["iss"] == result.issuer
    spec = SETUPS[setup]
    user = result.user
    assert user.username == spec.username.prefix + case.claims[spec.username.claim]
    for value in (user.username, user.uid, *user.groups, *user.extra, *(v for vs in user.extra.values() for v in vs)):
        assert value_problem(value) is None, (value, user)
    if not spec.allow_system:
        assert not [n for n in (user.username, *user.groups) if n.startswith("system:")], user
    assert result.expires_at == case.claims["exp"] > NOW


# Go's unicode.IsSpace: the ASCII spaces, NEL, NBSP and the Unicode space separators (Z categories).
GO_SPACES: Final = frozenset("\t\n\v\f\r \x85\xa0") | {
    chr(c) for c in range(0x100, 0x3001) if unicodedata.category(chr(c)) in ("Zs", "Zl", "Zp")
}
protocol_pieces = st.sampled_from(
    [
        b"v5.channel.k8s.io", b"v4.channel.k8s.io", b",", b", ", b" ", b"\t", b"\xc2\xa0", b"\xc2\x85",
        b"\xe2\x80\x83", b"\xe3\x80\x80", b"\xe2\x80\xa8", b"\x0b", b"x y", b"\xff", b"SPDY/3.1+portforward.k8s.io",
        WS_TOKEN_PREFIX + b64url(b"proxy-checked"), WS_TOKEN_PREFIX + b64url(b"hidden"),
    ]
)  # fmt: skip


def go_reads(lines: list[bytes]) -> list[bytes]:
    """kube-apiserver's reading: the first line only (Header.Get), split on commas, strings.TrimSpace each."""
    if not lines:
        return []
    elements = []
    for element in lines[0].split(b","):
        text = element.decode("utf-8", "surrogateescape").strip("".join(GO_SPACES))
        if text:
            elements.append(text.encode("utf-8", "surrogateescape"))
    return elements


@fuzz(lines=st.lists(st.lists(protocol_pieces, max_size=8).map(b"".join), min_size=1, max_size=2))
def test_a_websocket_credential_is_the_one_kube_apiserver_reads(lines: list[bytes]) -> None:
    headers = [(b"sec-websocket-protocol", line) for line in lines]
    try:
        credential = find_credential(headers, websocket=True)
    except CredentialError:
        return
    theirs = go_reads(lines)
    their_tokens = [e for e in theirs if e.startswith(WS_TOKEN_PREFIX)]
    if credential.token is None:
        assert their_tokens == []
    else:
        assert their_tokens == [WS_TOKEN_PREFIX + b64url(credential.token)]
        assert credential.remaining_ws_protocols == [e for e in theirs if not e.startswith(WS_TOKEN_PREFIX)]


# -- claims as kube-apiserver decodes them --------------------------------------------------------------------

# Every mapping an expression, a claim rule and a user rule: the claims reach the CEL engine.
CEL_CONFIG: Final = f"""
apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
jwt:
- issuer: {{url: "{ISSUER_A}", audiences: [{AUDIENCE}]}}
  claimValidationRules: [{{expression: "claims.?name.orValue('') != 'mallory'"}}]
  claimMappings:
    username: {{expression: "'oidc:' + claims.sub"}}
    groups: {{expression: "claims.?groups.orValue([])"}}
    uid: {{expression: "claims.?uid.orValue('')"}}
    extra: [{{key: example.com/email, valueExpression: "claims.?email.orValue('')"}}]
  userValidationRules: [{{expression: "!user.username.endsWith('mallory')", message: no mallory}}]
"""
LONE_SURROGATE: Final = re.compile("[\ud800-\udfff]")


@cache
def claim_specs() -> list[JWTAuthenticatorSpec]:
    flags = [JWTAuthenticatorSpec(ISSUER_A, (AUDIENCE,), s.username, s.groups, s.uid) for s in SETUPS]
    return [*flags, *parse_authentication_config(CEL_CONFIG, Compiler()).authenticators]


def go_decoded(value: Any) -> Any:
    """What Go's encoding/json makes of the same JSON: a lone surrogate escape is U+FFFD (a pair is one
    character, as in Python)."""
    if isinstance(value, str):
        return LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [go_decoded(v) for v in value]
    if isinstance(value, dict):
        return {go_decoded(k): go_decoded(v) for k, v in value.items()}
    return value


def verdict(result: Authenticated | Rejected) -> object:
    return result if isinstance(result, Authenticated) else result.failure


@fuzz(changes=overrides, spec=st.integers(min_value=0, max_value=len(SETUPS)))
def test_claims_are_read_as_kube_apiserver_decodes_them(changes: dict[str, Any], spec: int) -> None:
    # the claims as the proxy parses the signed JSON (an escaped surrogate pair becomes one character)
    claims = json.loads(json.dumps(base_claims(ISSUER_A) | changes))
    ours = user_from_claims(claims, claim_specs()[spec], NOW)
    theirs = user_from_claims(go_decoded(claims), claim_specs()[spec], NOW)
    if verdict(ours) != verdict(theirs):
        # only ever stricter: an identity taken from a claim as it is, which cannot be forwarded as it is
        assert isinstance(ours, Rejected) and "not valid Unicode text" in ours.reason, (ours, theirs)
    if isinstance(ours, Authenticated):
        user = ours.user
        for value in (
            user.username,
            user.uid,
            *user.groups,
            *user.extra,
            *(v for vs in user.extra.values() for v in vs),
        ):
            assert value_problem(value) is None, (value, user)
