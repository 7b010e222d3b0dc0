"""Every rejection reason names the values that explain it, and a hostile value cannot break or flood the line.

The reason is what the diagnostic log's ``rejected GET /...: <reason>`` line and the JSON access line's
``reason`` carry; the client sees only the ``message``, which these values never reach. The first tables
pin each reason with ordinary values, as an operator reads them; the last one puts hostile text (a forged
log line, ANSI escapes, bidi overrides, 10 KB) in every place a token's value lands in a reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import pytest

from kube_oidc_proxy.authn.authenticator import TokenAuthenticator
from kube_oidc_proxy.authn.cache import TokenCache
from kube_oidc_proxy.authn.cel import CLAIMS, USER, Compiler
from kube_oidc_proxy.authn.claims import user_from_claims
from kube_oidc_proxy.authn.jwks import KeySource
from kube_oidc_proxy.authn.model import (
    AuthResult,
    ClaimMapping,
    ExtraMapping,
    Failure,
    NotMine,
    Rejected,
    ValidationRule,
)
from kube_oidc_proxy.authn.oidc import JWTAuthenticator
from kube_oidc_proxy.authn.token import parse_compact
from tests.unit.authn.conftest import Keyring
from tests.unit.authn.fakes import ISSUER, NOW, FakeIssuer, b64url, base_claims, segment, sign, spec

T: Final = int(NOW)
OTHER: Final = "https://other.example"
COMPILER: Final = Compiler()


def cel(expression: str, variable: str = CLAIMS, *, boolean: bool = False) -> Any:
    return COMPILER.compile(expression, variable, boolean=boolean)


def rejected(claims: dict[str, Any], **spec_overrides: Any) -> Rejected:
    result = user_from_claims(claims, spec(**spec_overrides), NOW)
    assert isinstance(result, Rejected), result
    return result


# (claims, spec overrides, the failure, the whole reason)
CLAIM_REASONS: Final[list[Any]] = [
    pytest.param(
        base_claims(iss=OTHER),
        {},
        Failure.WRONG_ISSUER,
        'token issuer does not match the configured issuer: the token\'s iss is "https://other.example", '
        'expected "https://issuer.example"',
        id="iss-names-both",
    ),
    pytest.param(
        {k: v for k, v in base_claims().items() if k != "iss"},
        {},
        Failure.WRONG_ISSUER,
        'token issuer does not match the configured issuer: the token has no iss claim, expected "https://issuer.example"',
        id="iss-absent",
    ),
    pytest.param(
        base_claims(aud=["argo", "grafana"]),
        {},
        Failure.WRONG_AUDIENCE,
        'token audience does not include the client id: the token\'s aud is ["argo" "grafana"], expected "kube"',
        id="aud-names-both",
    ),
    pytest.param(
        base_claims(aud="argo"),
        {"audiences": ("kube", "kube-oidc-proxy")},
        Failure.WRONG_AUDIENCE,
        'token audience does not include the client id: the token\'s aud is "argo", '
        'expected one of ["kube" "kube-oidc-proxy"]',
        id="aud-several-expected",
    ),
    pytest.param(
        {k: v for k, v in base_claims().items() if k != "aud"},
        {},
        Failure.WRONG_AUDIENCE,
        'token audience does not include the client id: the token has no aud claim, expected "kube"',
        id="aud-absent",
    ),
    pytest.param(
        base_claims(exp=str(T + 600)),
        {},
        Failure.BAD_CLAIMS,
        f'token has no numeric exp claim: the token\'s exp is "{T + 600}"',
        id="exp-a-string",
    ),
    pytest.param(
        {k: v for k, v in base_claims().items() if k != "exp"},
        {},
        Failure.BAD_CLAIMS,
        "token has no numeric exp claim",
        id="exp-absent",
    ),
    pytest.param(
        base_claims(exp=T - 95),
        {},
        Failure.EXPIRED,
        "token has expired: exp 2023-11-14T22:11:45Z is 1m35s before the proxy's clock (2023-11-14T22:13:20Z); "
        "no clock skew is allowed for exp",
        id="expired-against-the-clock",
    ),
    pytest.param(
        base_claims(exp=T - 2 * 86400),
        {},
        Failure.EXPIRED,
        "token has expired: exp 2023-11-12T22:13:20Z is 48h0m0s before the proxy's clock (2023-11-14T22:13:20Z); "
        "no clock skew is allowed for exp",
        id="expired-days-ago",
    ),
    pytest.param(
        base_claims(exp=T),
        {},
        Failure.EXPIRED,
        "token has expired: exp 2023-11-14T22:13:20Z is 0s before the proxy's clock (2023-11-14T22:13:20Z); "
        "no clock skew is allowed for exp",
        id="expired-this-second",
    ),
    pytest.param(
        base_claims(exp=-(10**300)),
        {},
        Failure.EXPIRED,
        "token has expired: exp -1000000000000000000... (301 digits) is 1e+300s before the proxy's clock "
        "(2023-11-14T22:13:20Z); no clock skew is allowed for exp",
        id="expired-before-any-date",
    ),
    pytest.param(
        base_claims(nbf=T + 120),
        {},
        Failure.NOT_YET_VALID,
        "token is not valid yet (nbf is in the future): nbf 2023-11-14T22:15:20Z is 2m0s after the proxy's clock "
        "(2023-11-14T22:13:20Z), more than the 1m0s allowed for clock skew",
        id="nbf-against-the-clock-and-the-skew",
    ),
    pytest.param(
        base_claims(nbf="soon"),
        {},
        Failure.BAD_CLAIMS,
        'nbf claim is not a number: the token\'s nbf is "soon"',
        id="nbf-a-string",
    ),
    pytest.param(
        base_claims(name="Alice"),
        {"username": ClaimMapping("email")},
        Failure.MISSING_USERNAME,
        'username claim "email" is missing, empty or not a string: the token has no such claim '
        '(its claims: ["iss" "aud" "sub" "exp" "iat" "groups" "name"])',
        id="username-claim-absent-lists-the-claims-there-are",
    ),
    pytest.param(
        base_claims(sub=42),
        {},
        Failure.MISSING_USERNAME,
        'username claim "sub" is missing, empty or not a string: the token\'s value is 42',
        id="username-claim-not-a-string",
    ),
    pytest.param(
        base_claims(email="a@example.com", email_verified=False),
        {"username": ClaimMapping("email")},
        Failure.UNVERIFIED_EMAIL,
        "email_verified is not true for the email username claim: the token's email_verified is false",
        id="email-not-verified",
    ),
    pytest.param(
        base_claims(groups={"dev": True}),
        {},
        Failure.BAD_CLAIMS,
        'groups claim "groups" is not a string or a list of strings: the token\'s value is {"dev":true}',
        id="groups-not-strings",
    ),
    pytest.param(
        base_claims(),
        {"uid": ClaimMapping("oid")},
        Failure.CLAIM_MAPPING,
        'uid claim "oid" is missing or not a string: the token has no such claim '
        '(its claims: ["iss" "aud" "sub" "exp" "iat" "groups"])',
        id="uid-claim-absent",
    ),
    pytest.param(
        base_claims(hd="evil.com"),
        {"required_claims": (("hd", "example.com"),)},
        Failure.REQUIRED_CLAIM,
        'required claim "hd" is missing or does not match: the token\'s value is "evil.com", expected "example.com"',
        id="required-claim-names-both",
    ),
    pytest.param(
        base_claims(),
        {"required_claims": (("hd", "example.com"),)},
        Failure.REQUIRED_CLAIM,
        'required claim "hd" is missing or does not match: the token has no such claim '
        '(its claims: ["iss" "aud" "sub" "exp" "iat" "groups"]), expected "example.com"',
        id="required-claim-absent",
    ),
    pytest.param(
        base_claims(sub="system:admin"),
        {},
        Failure.SYSTEM_IDENTITY,
        'username "system:admin" is in the reserved system: namespace',
        id="system-username",
    ),
    pytest.param(
        base_claims(groups=["dev", "system:masters"]),
        {},
        Failure.SYSTEM_IDENTITY,
        'group "system:masters" is in the reserved system: namespace',
        id="system-group",
    ),
    pytest.param(
        base_claims(sub="alice\n"),
        {},
        Failure.BAD_CLAIMS,
        'mapped username "alice\\n" contains control characters',
        id="identity-kube-apiserver-would-read-otherwise",
    ),
]


@pytest.mark.parametrize(("claims", "spec_overrides", "failure", "reason"), CLAIM_REASONS)
def test_a_claim_refusal_names_the_claim_the_tokens_value_and_the_expected_one(
    claims: dict[str, Any], spec_overrides: dict[str, Any], failure: Failure, reason: str
) -> None:
    result = rejected(claims, **spec_overrides)
    assert (result.failure, result.reason) == (failure, reason)
    # the values are for the log, not for the caller
    assert result.message.startswith("Unauthorized")
    assert not [v for v in map(str, claims.values()) if len(v) > 3 and v in result.message]


# (spec overrides with CEL, claims, the failure, the whole reason)
CEL_REASONS: Final[list[Any]] = [
    pytest.param(
        {"claim_rules": (ValidationRule(cel('claims.hd == "example.com"', boolean=True), "wrong domain"),)},
        base_claims(),
        Failure.CLAIM_RULE,
        "error evaluating claim validation expression: expression 'claims.hd == \"example.com\"' resulted in error: "
        'NOT_FOUND: Key not found in map : "hd"',
        id="claim-rule-errs-with-the-expression-and-the-engines-message",
    ),
    pytest.param(
        {"claim_rules": (ValidationRule(cel('claims.hd == "example.com"', boolean=True), "only example.com"),)},
        base_claims(hd="evil.com"),
        Failure.CLAIM_RULE,
        "error evaluating claim validation expression: validation expression 'claims.hd == \"example.com\"' failed: "
        "only example.com",
        id="claim-rule-false-with-the-expression-and-its-message",
    ),
    pytest.param(
        {"user_rules": (ValidationRule(cel("!user.username.startsWith('x')", USER, boolean=True), "no x users"),)},
        base_claims(sub="xavier"),
        Failure.USER_RULE,
        "error evaluating user info validation rule: validation expression '!user.username.startsWith('x')' failed: "
        "no x users",
        id="user-rule-false",
    ),
    pytest.param(
        {"username": ClaimMapping(expression=cel("claims.number"))},
        base_claims(number=7),
        Failure.CLAIM_MAPPING,
        "error evaluating username claim expression: username claim expression must return a string: "
        "expression 'claims.number' returned 7.0",  # a JSON number is a double in CEL, as in kube-apiserver
        id="username-expression-returns-what-it-returned",
    ),
    pytest.param(
        {"username": ClaimMapping(expression=cel("claims.nick"))},
        base_claims(nick=""),
        Failure.CLAIM_MAPPING,
        "empty username via CEL expression is not allowed: expression 'claims.nick' returned \"\"",
        id="username-expression-empty",
    ),
    pytest.param(
        {"groups": ClaimMapping(expression=cel("claims.roles"))},
        base_claims(roles=[1, 2]),
        Failure.CLAIM_MAPPING,
        "error evaluating group claim expression: expression must return a string or a list of strings: "
        "expression 'claims.roles' returned [1.0 2.0]",
        id="groups-expression-wrong-type",
    ),
    pytest.param(
        {"uid": ClaimMapping(expression=cel("claims.oid"))},
        base_claims(oid=False),
        Failure.CLAIM_MAPPING,
        "error evaluating uid claim expression: uid claim expression must return a string: "
        "expression 'claims.oid' returned false",
        id="uid-expression-wrong-type",
    ),
    pytest.param(
        {"extra": (ExtraMapping("example.com/tenant", cel("claims.tenant")),)},
        base_claims(tenant={"id": 1}),
        Failure.CLAIM_MAPPING,
        "error evaluating extra claim expression: claims.tenant: expression must return a string or a list of "
        'strings: it returned {"id":1.0}',
        id="extra-expression-wrong-type",
    ),
    pytest.param(
        {"claim_rules": (ValidationRule(cel("claims.hd ==\n  'example.com'", boolean=True), "x"),)},
        base_claims(hd="evil.com"),
        Failure.CLAIM_RULE,
        "error evaluating claim validation expression: validation expression 'claims.hd ==\\n  'example.com'' "
        "failed: x",
        id="a-multi-line-expression-stays-on-one-line",
    ),
]


@pytest.mark.parametrize(("spec_overrides", "claims", "failure", "reason"), CEL_REASONS)
def test_a_cel_refusal_names_the_expression_and_why(
    spec_overrides: dict[str, Any], claims: dict[str, Any], failure: Failure, reason: str
) -> None:
    result = rejected(claims, **spec_overrides)
    assert (result.failure, result.reason, result.message) == (failure, reason, "Unauthorized")


# -- the signature and the issuer: JWTAuthenticator and TokenAuthenticator ---------------------------------------


async def keys(keyring: Keyring, *, without_kid: bool = False) -> KeySource:
    issuer = FakeIssuer()
    issuer.publish(keyring.rsa1, keyring.ec256)
    if without_kid:
        anonymous = keyring.rsa2.as_dict(private=False)
        anonymous.pop("kid")
        issuer.jwks["keys"].append(anonymous)
    source = issuer.key_source(min_refetch_interval=0.0)
    assert await source.refresh()
    return source


def authenticator(source: KeySource, algs: frozenset[str] = frozenset({"RS256", "ES256"})) -> JWTAuthenticator:
    return JWTAuthenticator(spec(signing_algs=algs), source, clock=lambda: NOW)


async def test_an_unknown_kid_names_the_kid_the_alg_and_the_keys_loaded(keyring: Keyring) -> None:
    token = parse_compact(sign(keyring.rsa2, base_claims(), "RS256", kid="2024-rotated"))
    result = await authenticator(await keys(keyring, without_kid=True)).verify(token)
    assert isinstance(result, Rejected)
    assert (result.failure, result.reason) == (
        Failure.UNKNOWN_KEY,
        f'no signing key matches kid "2024-rotated" and alg "RS256"; the keys of {ISSUER}: '
        'kid "rsa-1" (RSA), kid "ec-256" (EC P-256), 1 without a kid',
    )


async def test_a_kid_whose_key_has_another_type_shows_the_type(keyring: Keyring) -> None:
    token = parse_compact(sign(keyring.ec256, base_claims(), "ES256", kid="rsa-1"))
    result = await authenticator(await keys(keyring)).verify(token)
    assert isinstance(result, Rejected)
    assert result.reason == (
        f'no signing key matches kid "rsa-1" and alg "ES256"; the keys of {ISSUER}: kid "rsa-1" (RSA), '
        'kid "ec-256" (EC P-256)'
    )


async def test_a_token_without_a_kid_says_so(keyring: Keyring) -> None:
    token = parse_compact(sign(keyring.ec256, base_claims(), "ES256", with_kid=False))
    issuer = FakeIssuer()
    issuer.publish(keyring.rsa1)  # no EC key: nothing for ES256
    source = issuer.key_source()
    assert await source.refresh()
    result = await authenticator(source).verify(token)
    assert isinstance(result, Rejected)
    assert result.reason == f'no signing key matches no kid and alg "ES256"; the keys of {ISSUER}: kid "rsa-1" (RSA)'


async def test_a_bad_signature_names_the_kid_the_alg_and_the_keys_tried(keyring: Keyring) -> None:
    token = parse_compact(sign(keyring.rsa2, base_claims(), "RS256", kid="rsa-1"))
    result = await authenticator(await keys(keyring)).verify(token)
    assert isinstance(result, Rejected)
    assert (result.failure, result.reason) == (
        Failure.BAD_SIGNATURE,
        f'token signature is invalid: kid "rsa-1", alg "RS256", 1 key of {ISSUER} tried',
    )


async def test_a_refused_algorithm_names_the_allowed_ones(keyring: Keyring) -> None:
    token = parse_compact(sign(keyring.rsa1, base_claims(), "PS256"))
    result = await authenticator(await keys(keyring), frozenset({"RS256", "ES256"})).verify(token)
    assert isinstance(result, Rejected)
    assert (result.failure, result.reason) == (
        Failure.BAD_ALGORITHM,
        'signing algorithm "PS256" is not allowed: expected ["ES256" "RS256"]',
    )


def unsigned(claims: dict[str, Any], **header: Any) -> bytes:
    return b".".join((segment({"alg": "RS256", **header}), segment(claims), b64url(b"sig")))


async def routed(token: bytes, *issuers: str) -> AuthResult:
    authenticators = [JWTAuthenticator(spec(issuer_url=url), FakeIssuer(url).key_source()) for url in issuers]
    return await TokenAuthenticator(authenticators, TokenCache()).authenticate(token)


@pytest.mark.parametrize(
    ("claims", "issuers", "reason"),
    [
        pytest.param(
            base_claims(iss="https://dex.example"),
            (ISSUER, OTHER),
            'token issuer is not a trusted issuer: the token\'s iss is "https://dex.example", '
            'trusted issuers are ["https://issuer.example" "https://other.example"]',
            id="names-the-tokens-iss-and-the-trusted-ones",
        ),
        pytest.param(
            {"sub": "alice"},
            (ISSUER,),
            'token issuer is not a trusted issuer: the token has no iss claim, trusted issuers are ["https://issuer.example"]',
            id="iss-absent",
        ),
        pytest.param(
            base_claims(iss=["https://issuer.example"]),
            (ISSUER,),
            'token issuer is not a trusted issuer: the token\'s iss is ["https://issuer.example"], '
            'trusted issuers are ["https://issuer.example"]',
            id="iss-not-a-string",
        ),
        pytest.param(
            base_claims(iss="https://kubernetes.default.svc.cluster.local"),
            (),
            'token issuer is not a trusted issuer: the token\'s iss is "https://kubernetes.default.svc.cluster.local", '
            "and no issuer is configured",
            id="no-issuer-configured",
        ),
    ],
)
async def test_an_untrusted_issuer_names_the_tokens_iss_and_the_trusted_ones(
    claims: dict[str, Any], issuers: tuple[str, ...], reason: str
) -> None:
    result = await routed(unsigned(claims), *issuers)
    assert isinstance(result, NotMine)
    assert (result.failure, result.reason) == (Failure.WRONG_ISSUER, reason)


# -- hostile values, in every place a token's value lands in a reason ---------------------------------------------

HOSTILE: Final = {
    "forged-log-line": "x\n2026-12-05 18:49:40,304 INFO kop.proxy: admitted admin",
    "crlf": "x\r\nSet-Cookie: a=b",
    "ansi-clear-screen": "\x1b[2J\x1b[H\x1b[31mALL GOOD\x1b[0m",
    "ansi-window-title": "\x1b]0;pwned\x07",
    "bidi-override": "admin\u202e\u2066txt.exe",
    "nel-and-separators": "a\x85b\u2028c\u2029d",
    "nul-and-del": "a\x00b\x7f",
    "lone-surrogate": "a\ud800b",
    "10kb": "A" * 10_240,
    "10kb-of-escapes": "\x1b" * 10_240,
}
REASON_CHARS: Final = 2_500  # a reason with a few bounded values; the hostile ones are 10 KB and more

Place = Callable[[str, Keyring], Awaitable[AuthResult]]


async def _claims(claims: dict[str, Any], **spec_overrides: Any) -> AuthResult:
    return user_from_claims(claims, spec(**spec_overrides), NOW)


async def _verified_header(keyring: Keyring, header: dict[str, Any]) -> AuthResult:
    token = parse_compact(b".".join((segment(header), segment(base_claims()), b64url(b"s"))))
    return await authenticator(await keys(keyring)).verify(token)


PLACES: Final[dict[str, Place]] = {
    "untrusted-iss": lambda v, _: routed(unsigned(base_claims(iss=v)), ISSUER),
    "iss": lambda v, _: _claims(base_claims(iss=v)),
    "aud": lambda v, _: _claims(base_claims(aud=v)),
    "aud-list": lambda v, _: _claims(base_claims(aud=[v] * 1_000)),
    "exp": lambda v, _: _claims(base_claims(exp=v)),
    "nbf": lambda v, _: _claims(base_claims(nbf=v)),
    "username": lambda v, _: _claims(base_claims(sub=[v])),
    "mapped-username": lambda v, _: _claims(base_claims(sub=v + " ")),
    "username-absent-with-hostile-claim-names": lambda v, _: _claims(
        {**base_claims(), **{f"{v}{n}": 1 for n in range(50)}}, username=ClaimMapping("email")
    ),
    "email-verified": lambda v, _: _claims(
        base_claims(email="a@example.com", email_verified=v), username=ClaimMapping("email")
    ),
    "groups": lambda v, _: _claims(base_claims(groups={v: v})),
    "mapped-group": lambda v, _: _claims(base_claims(groups=["dev", v + "\n"])),
    "system-username": lambda v, _: _claims(base_claims(sub="system:" + v.replace("\x00", ""))),
    "uid": lambda v, _: _claims(base_claims(oid=[v]), uid=ClaimMapping("oid")),
    "required-claim": lambda v, _: _claims(base_claims(hd=v), required_claims=(("hd", "example.com"),)),
    "cel-returned": lambda v, _: _claims(
        base_claims(nick=[v, v]), username=ClaimMapping(expression=cel("claims.nick"))
    ),
    "cel-engine-message": lambda v, _: _claims(
        base_claims(n=v), username=ClaimMapping(expression=cel("claims[claims.n]"))
    ),
    "kid": lambda v, keyring: _verified_header(keyring, {"alg": "RS256", "kid": v}),
    "alg": lambda v, keyring: _verified_header(keyring, {"alg": v, "kid": "rsa-1"}),
}


@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
@pytest.mark.parametrize("place", list(PLACES))
async def test_a_hostile_value_is_escaped_and_bounded_in_the_reason(keyring: Keyring, place: str, value: str) -> None:
    result = await PLACES[place](value, keyring)
    assert isinstance(result, Rejected | NotMine), result
    reason = result.reason
    # one line, nothing a terminal or a reader would act on: every character is printable
    assert reason.isprintable(), reason
    assert len(reason) <= REASON_CHARS, len(reason)
    assert value not in reason or (value.isprintable() and len(value) < 300)
    if isinstance(result, Rejected):
        assert value not in result.message


async def test_no_reason_holds_the_token(keyring: Keyring) -> None:
    token = sign(keyring.rsa2, base_claims(aud="other"), "RS256", kid="rsa-1")
    payload = token.split(b".")[1].decode()
    for result in (
        await authenticator(await keys(keyring)).verify(parse_compact(token)),
        await routed(unsigned(base_claims(iss=OTHER)), ISSUER),
        await _claims(base_claims(aud="other")),
    ):
        assert isinstance(result, Rejected | NotMine)
        assert token.decode() not in result.reason
        assert payload not in result.reason
        assert token.split(b".")[2].decode() not in result.reason
