"""claims.user_from_claims: kube-apiserver's legacy --oidc-* claim rules, plus the proxy's safety rules (pure)."""

from __future__ import annotations

import json
from typing import Any, Final

import pytest

from kube_oidc_proxy.authn.cel import CLAIMS, Compiler
from kube_oidc_proxy.authn.claims import NBF_LEEWAY_SECONDS, user_from_claims
from kube_oidc_proxy.authn.model import CREDENTIAL_ID_EXTRA, Authenticated, ClaimMapping, Rejected, UserInfo
from tests.unit.authn.fakes import ISSUER, NOW, b64url, base_claims, segment, spec

DROP: Final[Any] = object()  # an override value meaning "remove this claim"
T: Final = int(NOW)
GOOGLE: Final = "https://accounts.google.com"


def claims_with(**overrides: Any) -> dict[str, Any]:
    claims = base_claims()
    for name, value in overrides.items():
        if value is DROP:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


# (claim overrides, spec overrides, allow_system_identities, expected user)
ACCEPTED: Final[list[Any]] = [
    pytest.param({}, {}, False, UserInfo("alice", groups=("dev", "ops")), id="baseline"),
    pytest.param({"iss": GOOGLE}, {"issuer_url": GOOGLE}, False, UserInfo("alice", groups=("dev", "ops")), id="google"),
    pytest.param(
        {"iss": "accounts.google.com"},
        {"issuer_url": GOOGLE},
        False,
        UserInfo("alice", groups=("dev", "ops")),
        id="google-without-scheme-is-coalesced",
    ),
    pytest.param({"aud": ["other", "kube"]}, {}, False, UserInfo("alice", groups=("dev", "ops")), id="aud-list"),
    pytest.param(
        {"aud": "b"}, {"audiences": ("a", "b")}, False, UserInfo("alice", groups=("dev", "ops")), id="aud-2nd"
    ),
    pytest.param({"exp": T + 1}, {}, False, UserInfo("alice", groups=("dev", "ops")), id="exp-one-second-ahead"),
    pytest.param({"exp": NOW + 0.5}, {}, False, UserInfo("alice", groups=("dev", "ops")), id="exp-float"),
    pytest.param({"nbf": T + 59}, {}, False, UserInfo("alice", groups=("dev", "ops")), id="nbf-59s-ahead"),
    pytest.param({"nbf": T + 60}, {}, False, UserInfo("alice", groups=("dev", "ops")), id="nbf-60s-ahead"),
    pytest.param({"nbf": T - 3600}, {}, False, UserInfo("alice", groups=("dev", "ops")), id="nbf-past"),
    pytest.param({"nbf": NOW + 30.5}, {}, False, UserInfo("alice", groups=("dev", "ops")), id="nbf-float"),
    pytest.param(
        {"hd": "example.com"},
        {"required_claims": (("hd", "example.com"),)},
        False,
        UserInfo("alice", groups=("dev", "ops")),
        id="required-claim-present",
    ),
    pytest.param(
        {"hd": "example.com", "tier": "gold"},
        {"required_claims": (("hd", "example.com"), ("tier", "gold"))},
        False,
        UserInfo("alice", groups=("dev", "ops")),
        id="two-required-claims-present",
    ),
    pytest.param(
        {"email": "alice@example.com", "email_verified": True},
        {"username": ClaimMapping("email")},
        False,
        UserInfo("alice@example.com", groups=("dev", "ops")),
        id="email-verified-true",
    ),
    pytest.param(
        {"email": "alice@example.com"},
        {"username": ClaimMapping("email")},
        False,
        UserInfo("alice@example.com", groups=("dev", "ops")),
        id="email-verified-absent",
    ),
    pytest.param(
        {"email_verified": False},
        {},
        False,
        UserInfo("alice", groups=("dev", "ops")),
        id="email-verified-ignored-when-username-is-not-email",
    ),
    pytest.param({"groups": "dev"}, {}, False, UserInfo("alice", groups=("dev",)), id="groups-single-string"),
    pytest.param({"groups": ["a", "b", "c"]}, {}, False, UserInfo("alice", groups=("a", "b", "c")), id="groups-list"),
    pytest.param({"groups": []}, {}, False, UserInfo("alice"), id="groups-empty-list"),
    pytest.param({"groups": None}, {}, False, UserInfo("alice"), id="groups-null"),
    pytest.param({"groups": DROP}, {}, False, UserInfo("alice"), id="groups-absent"),
    pytest.param({"groups": 5}, {"groups": None}, False, UserInfo("alice"), id="groups-ignored-without-groups-claim"),
    pytest.param(
        {"roles": ["r1"]},
        {"groups": ClaimMapping("roles")},
        False,
        UserInfo("alice", groups=("r1",)),
        id="groups-claim",
    ),
    pytest.param(
        {"email": "bob@example.com"},
        {"username": ClaimMapping("email")},
        False,
        UserInfo("bob@example.com", groups=("dev", "ops")),
        id="username-claim-email",
    ),
    pytest.param(
        {},
        {"username": ClaimMapping("sub", "oidc:"), "groups": ClaimMapping("groups", "oidc:")},
        False,
        UserInfo("oidc:alice", groups=("oidc:dev", "oidc:ops")),
        id="prefixes-applied",
    ),
    pytest.param(
        {},
        {"username": ClaimMapping("sub", "https://issuer.example#")},
        False,
        UserInfo("https://issuer.example#alice", groups=("dev", "ops")),
        id="issuer-url-prefix",
    ),
    pytest.param(
        {},
        {"username": ClaimMapping("sub", ""), "groups": ClaimMapping("groups", "")},
        False,
        UserInfo("alice", groups=("dev", "ops")),
        id="empty-prefix-is-none",
    ),
    pytest.param(
        {"jti": "abc-123"},
        {},
        False,
        UserInfo("alice", groups=("dev", "ops"), extra={CREDENTIAL_ID_EXTRA: ("JTI=abc-123",)}),
        id="jti-credential-id",
    ),
    pytest.param({"jti": 123}, {}, False, UserInfo("alice", groups=("dev", "ops")), id="non-string-jti-ignored"),
    pytest.param(
        {"sub": "system:admin", "groups": ["system:masters"]},
        {},
        True,
        UserInfo("system:admin", groups=("system:masters",)),
        id="system-identities-allowed-when-configured",
    ),
    pytest.param(
        {"sub": "system:x"},
        {"username": ClaimMapping("sub", "oidc:")},
        False,
        UserInfo("oidc:system:x", groups=("dev", "ops")),
        id="prefixed-system-username",
    ),
    pytest.param(
        {"groups": ["system:masters"]},
        {"groups": ClaimMapping("groups", "oidc:")},
        False,
        UserInfo("alice", groups=("oidc:system:masters",)),
        id="prefixed-system-group",
    ),
    pytest.param(
        {"sub": "älice", "groups": ["dév"]}, {}, False, UserInfo("älice", groups=("dév",)), id="non-ascii-is-fine"
    ),
]


@pytest.mark.parametrize(("overrides", "spec_overrides", "allow_system", "expected"), ACCEPTED)
def test_acceptable_claims_give_the_expected_user(
    overrides: dict[str, Any], spec_overrides: dict[str, Any], allow_system: bool, expected: UserInfo
) -> None:
    claims = claims_with(**overrides)
    result = user_from_claims(claims, spec(**spec_overrides), NOW, allow_system_identities=allow_system)
    assert isinstance(result, Authenticated), result
    assert result.user == expected
    assert result.expires_at == float(claims["exp"])
    assert result.issuer == spec(**spec_overrides).issuer_url


# (claim overrides, spec overrides, a word of the log reason)
REJECTED: Final[list[Any]] = [
    pytest.param({"iss": ISSUER + "/"}, {}, "issuer", id="iss-trailing-slash"),
    pytest.param({}, {"issuer_url": ISSUER + "/"}, "issuer", id="configured-issuer-trailing-slash"),
    pytest.param({"iss": "https://ISSUER.example"}, {}, "issuer", id="iss-case-differs"),
    pytest.param({"iss": "http://issuer.example"}, {}, "issuer", id="iss-http"),
    pytest.param({"iss": "https://evil.example"}, {}, "issuer", id="iss-foreign"),
    pytest.param({"iss": DROP}, {}, "issuer", id="iss-missing"),
    pytest.param({"iss": [ISSUER]}, {}, "issuer", id="iss-list"),
    pytest.param({"iss": "accounts.google.com"}, {}, "issuer", id="google-short-form-for-another-issuer"),
    pytest.param({"iss": "accounts.google.com/"}, {"issuer_url": GOOGLE}, "issuer", id="google-short-form-slash"),
    pytest.param({"aud": "other"}, {}, "audience", id="aud-string-mismatch"),
    pytest.param({"aud": ["a", "b"]}, {}, "audience", id="aud-list-mismatch"),
    pytest.param({"aud": []}, {}, "audience", id="aud-empty-list"),
    pytest.param({"aud": DROP}, {}, "audience", id="aud-missing"),
    pytest.param({"aud": None}, {}, "audience", id="aud-null"),
    pytest.param({"aud": 1}, {}, "audience", id="aud-number"),
    pytest.param({"aud": "KUBE"}, {}, "audience", id="aud-case-differs"),
    pytest.param({"aud": [["kube"]]}, {}, "audience", id="aud-nested-list"),
    pytest.param({"exp": DROP}, {}, "exp", id="exp-missing"),
    pytest.param({"exp": None}, {}, "exp", id="exp-null"),
    pytest.param({"exp": str(T + 600)}, {}, "exp", id="exp-string"),
    pytest.param({"exp": True}, {}, "exp", id="exp-bool"),
    pytest.param({"exp": [T + 600]}, {}, "exp", id="exp-list"),
    pytest.param({"exp": T}, {}, "expired", id="exp-equal-to-now"),
    pytest.param({"exp": T - 1}, {}, "expired", id="exp-past"),
    pytest.param({"nbf": T + 61}, {}, "nbf", id="nbf-61s-ahead"),
    pytest.param({"nbf": T + NBF_LEEWAY_SECONDS + 0.001}, {}, "nbf", id="nbf-just-past-leeway"),
    pytest.param({"nbf": str(T)}, {}, "nbf", id="nbf-string"),
    pytest.param({"nbf": True}, {}, "nbf", id="nbf-bool"),
    pytest.param({"nbf": [T]}, {}, "nbf", id="nbf-list"),
    pytest.param({}, {"required_claims": (("hd", "example.com"),)}, "required", id="required-claim-missing"),
    pytest.param({"hd": "evil.com"}, {"required_claims": (("hd", "example.com"),)}, "required", id="required-mismatch"),
    pytest.param({"hd": ["example.com"]}, {"required_claims": (("hd", "example.com"),)}, "required", id="req-list"),
    pytest.param({"hd": 1}, {"required_claims": (("hd", "1"),)}, "required", id="required-claim-number"),
    pytest.param({"hd": True}, {"required_claims": (("hd", "true"),)}, "required", id="required-claim-bool"),
    pytest.param(
        {"hd": "example.com"},
        {"required_claims": (("hd", "example.com"), ("tier", "gold"))},
        "required",
        id="second-required-claim-missing",
    ),
    pytest.param({"sub": DROP}, {}, "username", id="username-missing"),
    pytest.param({"sub": ""}, {}, "username", id="username-empty"),
    pytest.param({"sub": None}, {}, "username", id="username-null"),
    pytest.param({"sub": 42}, {}, "username", id="username-number"),
    pytest.param({"sub": ["alice"]}, {}, "username", id="username-list"),
    pytest.param({"sub": True}, {}, "username", id="username-bool"),
    pytest.param({}, {"username": ClaimMapping("email")}, "username", id="username-claim-email-missing"),
    pytest.param(
        {"email": "a@example.com", "email_verified": False},
        {"username": ClaimMapping("email")},
        "email_verified",
        id="email-verified-false",
    ),
    pytest.param(
        {"email": "a@example.com", "email_verified": "true"},
        {"username": ClaimMapping("email")},
        "email_verified",
        id="email-verified-string",
    ),
    pytest.param(
        {"email": "a@example.com", "email_verified": 1},
        {"username": ClaimMapping("email")},
        "email_verified",
        id="email-verified-one",
    ),
    pytest.param(
        {"email": "a@example.com", "email_verified": None},
        {"username": ClaimMapping("email")},
        "email_verified",
        id="email-verified-null",
    ),
    pytest.param({"groups": 5}, {}, "groups", id="groups-number"),
    pytest.param({"groups": ["dev", 5]}, {}, "groups", id="groups-list-with-number"),
    pytest.param({"groups": ["dev", None]}, {}, "groups", id="groups-list-with-null"),
    pytest.param({"groups": [["dev"]]}, {}, "groups", id="groups-nested-list"),
    pytest.param({"groups": {"dev": True}}, {}, "groups", id="groups-object"),
    pytest.param({"groups": True}, {}, "groups", id="groups-bool"),
    pytest.param({"sub": "ali\nce"}, {}, "control", id="username-newline"),
    pytest.param({"sub": "ali\rce"}, {}, "control", id="username-carriage-return"),
    pytest.param({"sub": "ali\x00ce"}, {}, "control", id="username-nul"),
    pytest.param({"sub": "alice\r\nImpersonate-Group: system:masters"}, {}, "control", id="username-header-injection"),
    pytest.param({"sub": "ali\x7fce"}, {}, "control", id="username-del"),
    pytest.param({"sub": "ali\tce"}, {}, "control", id="username-tab"),
    pytest.param({"groups": ["dev", "o\nps"]}, {}, "control", id="group-newline"),
    pytest.param({"groups": "o\rps"}, {}, "control", id="single-group-carriage-return"),
    pytest.param({"groups": ["o\x00ps"]}, {}, "control", id="group-nul"),
    pytest.param({"jti": "abc\r\nx"}, {}, "control", id="jti-crlf"),
    pytest.param({"sub": "system:admin"}, {}, "system:", id="system-username"),
    pytest.param({"sub": "system:serviceaccount:kube-system:default"}, {}, "system:", id="system-serviceaccount"),
    pytest.param({"groups": ["dev", "system:masters"]}, {}, "system:", id="system-group"),
    pytest.param({"groups": "system:nodes"}, {}, "system:", id="single-system-group"),
    pytest.param({}, {"username": ClaimMapping("sub", "system:")}, "system:", id="system-username-prefix"),
    pytest.param({}, {"groups": ClaimMapping("groups", "system:")}, "system:", id="system-group-prefix"),
    pytest.param({"sub": "system:x"}, {"username": ClaimMapping("sub", "")}, "system:", id="no-prefix-system-user"),
]


@pytest.mark.parametrize(("overrides", "spec_overrides", "reason_word"), REJECTED)
def test_unacceptable_claims_are_rejected(
    overrides: dict[str, Any], spec_overrides: dict[str, Any], reason_word: str
) -> None:
    result = user_from_claims(claims_with(**overrides), spec(**spec_overrides), NOW)
    assert isinstance(result, Rejected), result
    assert reason_word in result.reason
    assert result.code == 401


def _string_values(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _string_values(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _string_values(v)]
    return []


@pytest.mark.parametrize(("overrides", "spec_overrides", "reason_word"), REJECTED)
def test_a_rejection_message_never_contains_the_token_or_its_claims(
    overrides: dict[str, Any], spec_overrides: dict[str, Any], reason_word: str
) -> None:
    claims = claims_with(**overrides)
    payload = segment(claims).decode()
    token = ".".join((segment({"alg": "RS256", "kid": "k"}).decode(), payload, b64url(b"signature").decode()))
    result = user_from_claims(claims, spec(**spec_overrides), NOW)
    assert isinstance(result, Rejected)
    assert token not in result.message
    assert token not in result.reason
    assert payload not in result.message
    for value in _string_values(claims):
        if len(value) >= 4:
            assert value not in result.message


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"exp": float("nan")}, id="exp-nan"),
        pytest.param({"exp": float("inf")}, id="exp-infinity"),
        pytest.param({"exp": 10**400}, id="exp-too-large-for-a-float"),
        pytest.param({"nbf": float("nan")}, id="nbf-nan"),
    ],
)
def test_an_exp_or_nbf_that_is_not_a_finite_number_is_rejected(overrides: dict[str, Any]) -> None:
    # NaN compares false with every clock (never expired, never early); 10**400 overflows float(). JSON has neither
    # (RFC 8259 §6), so kube-apiserver never sees them; here they must be a Rejected, not a pass or an exception.
    result = user_from_claims(claims_with(**overrides), spec(), NOW)
    assert isinstance(result, Rejected), result


@pytest.mark.parametrize("number", [10**400, float("inf"), float("-inf")], ids=["huge-int", "inf", "minus-inf"])
def test_with_cel_a_claim_beyond_a_double_is_rejected_as_kube_apiserver_s_decoder_fails(number: float) -> None:
    # float(10**400) raised OverflowError out of user_from_claims (a 500); Go cannot decode it into CEL's claims
    by_expression = spec(username=ClaimMapping(expression=Compiler().compile("claims.sub", CLAIMS)))
    result = user_from_claims(claims_with(unused=[number]), by_expression, NOW)
    assert isinstance(result, Rejected), result
    assert "out of the range of a double" in result.reason


def test_the_expiry_message_says_the_token_has_expired() -> None:
    result = user_from_claims(claims_with(exp=T - 10), spec(), NOW)
    assert isinstance(result, Rejected)
    assert "expired" in result.message


def test_a_system_identity_message_names_the_reserved_namespace_but_not_the_identity() -> None:
    result = user_from_claims(claims_with(sub="system:kube-controller-manager"), spec(), NOW)
    assert isinstance(result, Rejected)
    assert "system:" in result.message
    assert "kube-controller-manager" not in result.message


def test_claims_are_checked_against_the_clock_passed_in() -> None:
    claims = claims_with(exp=T + 10, nbf=T - 10)
    assert isinstance(user_from_claims(claims, spec(), NOW), Authenticated)
    assert isinstance(user_from_claims(claims, spec(), NOW + 10), Rejected)
    assert isinstance(user_from_claims(claims, spec(), NOW - 10 - NBF_LEEWAY_SECONDS - 1), Rejected)


def test_the_jti_extra_is_the_only_extra_and_is_not_a_group() -> None:
    result = user_from_claims(claims_with(jti="id-1", email="a@example.com", name="Alice"), spec(), NOW)
    assert isinstance(result, Authenticated)
    assert dict(result.user.extra) == {"authentication.kubernetes.io/credential-id": ("JTI=id-1",)}
    assert result.user.uid == ""


def test_user_from_claims_does_not_modify_the_claims() -> None:
    claims = claims_with(groups="dev", jti="x")
    before = json.dumps(claims, sort_keys=True)
    user_from_claims(claims, spec(username=ClaimMapping("sub", "oidc:")), NOW)
    assert json.dumps(claims, sort_keys=True) == before
