"""Verified claims -> ``UserInfo``: kube-apiserver's JWT authenticator semantics, with our safety rules.

Pure: the caller passes the clock. Every refusal is a ``Rejected`` with a reason for the log and a short
message that reveals nothing a caller does not already know about their own token.
"""

from __future__ import annotations

import math
from typing import Any, Final

from kube_oidc_proxy.authn.cel import CLAIMS, USER, Binding, CelEvaluationError, Program
from kube_oidc_proxy.authn.model import (
    CREDENTIAL_ID_EXTRA,
    Authenticated,
    Failure,
    JWTAuthenticatorSpec,
    Rejected,
    UserInfo,
    ValidationRule,
)
from kube_oidc_proxy.identity import user_problem

# go-oidc v2 (used by kube-apiserver) allows a token whose nbf is up to one minute ahead (clock skew).
NBF_LEEWAY_SECONDS: Final = 60


def issuer_of(claims: dict[str, Any]) -> Any:
    """The ``iss`` claim; Google's tokens may say ``accounts.google.com`` for https://accounts.google.com."""
    iss = claims.get("iss")
    return "https://accounts.google.com" if iss == "accounts.google.com" else iss


def _is_number(value: object) -> bool:
    """A JSON number we can compare with the clock (not a bool, not beyond a float's range)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _audience_ok(aud: Any, audiences: tuple[str, ...]) -> bool:
    if isinstance(aud, str):
        return aud in audiences
    if isinstance(aud, list):
        return any(isinstance(a, str) and a in audiences for a in aud)
    return False


class _Refused(Exception):
    """Internal: a mapping step refused the token; carries the category and the log reason."""

    def __init__(self, failure: Failure, reason: str) -> None:
        super().__init__(reason)
        self.failure = failure
        self.reason = reason


def _evaluate(program: Program, value: Binding | None, what: str, failure: Failure = Failure.CLAIM_MAPPING) -> Any:
    assert value is not None  # bound whenever the spec has expressions
    try:
        return program.evaluate(value)
    except CelEvaluationError as exc:
        raise _Refused(failure, f"error evaluating {what}: {exc}") from exc


def _string_list(value: Any) -> tuple[str, ...] | None:
    """A CEL result that must be a string or a list of strings: "", [] and null are none; "" items dropped."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(v for v in value if v)
    return None


def _username(claims: dict[str, Any], cel_claims: Binding | None, spec: JWTAuthenticatorSpec) -> str:
    mapping = spec.username
    if mapping.expression is not None:
        username = _evaluate(mapping.expression, cel_claims, "username claim expression")
        if not isinstance(username, str):
            raise _Refused(
                Failure.CLAIM_MAPPING,
                "error evaluating username claim expression: username claim expression must return a string",
            )
        if not username:
            raise _Refused(Failure.CLAIM_MAPPING, "empty username via CEL expression is not allowed")
        return username
    raw = claims.get(mapping.claim)
    if not isinstance(raw, str) or not raw:
        raise _Refused(Failure.MISSING_USERNAME, f"username claim {mapping.claim!r} is missing, empty or not a string")
    if mapping.claim == "email" and "email_verified" in claims and claims["email_verified"] is not True:
        raise _Refused(Failure.UNVERIFIED_EMAIL, "email_verified is not true for the email username claim")
    return mapping.prefix + raw


def _groups(claims: dict[str, Any], cel_claims: Binding | None, spec: JWTAuthenticatorSpec) -> tuple[str, ...]:
    mapping = spec.groups
    if mapping is None:
        return ()
    if mapping.expression is not None:
        groups = _string_list(_evaluate(mapping.expression, cel_claims, "group claim expression"))
        if groups is None:
            raise _Refused(
                Failure.CLAIM_MAPPING,
                "error evaluating group claim expression: expression must return a string or a list of strings",
            )
        return groups
    value = claims.get(mapping.claim)
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(g, str) for g in value):
        raise _Refused(Failure.BAD_CLAIMS, f"groups claim {mapping.claim!r} is not a string or a list of strings")
    return tuple(mapping.prefix + g for g in value if g)


def _uid(claims: dict[str, Any], cel_claims: Binding | None, spec: JWTAuthenticatorSpec) -> str:
    mapping = spec.uid
    if mapping is None:
        return ""
    if mapping.expression is not None:
        uid = _evaluate(mapping.expression, cel_claims, "uid claim expression")
        if not isinstance(uid, str):
            raise _Refused(
                Failure.CLAIM_MAPPING,
                "error evaluating uid claim expression: uid claim expression must return a string",
            )
        return uid
    uid = claims.get(mapping.claim)
    if not isinstance(uid, str):
        # kube-apiserver refuses a token without the configured uid claim
        raise _Refused(Failure.CLAIM_MAPPING, f"uid claim {mapping.claim!r} is missing or not a string")
    return uid


def _extra(
    claims: dict[str, Any], cel_claims: Binding | None, spec: JWTAuthenticatorSpec
) -> dict[str, tuple[str, ...]]:
    extra: dict[str, tuple[str, ...]] = {}
    jti = claims.get("jti")
    if isinstance(jti, str) and jti:
        extra[CREDENTIAL_ID_EXTRA] = ("JTI=" + jti,)
    for mapping in spec.extra:
        values = _string_list(_evaluate(mapping.value, cel_claims, "extra claim expression"))
        if values is None:
            raise _Refused(
                Failure.CLAIM_MAPPING,
                f"error evaluating extra claim expression: {mapping.value.expression}: "
                "expression must return a string or a list of strings",
            )
        if values:
            extra[mapping.key] = values
    return extra


def _check_required_claims(claims: dict[str, Any], spec: JWTAuthenticatorSpec) -> None:
    for key, required in spec.required_claims:
        if claims.get(key) != required:
            raise _Refused(Failure.REQUIRED_CLAIM, f"required claim {key!r} is missing or does not match")


def _check_rules(rules: tuple[ValidationRule, ...], value: Binding | None, what: str, failure: Failure) -> None:
    for rule in rules:
        result = _evaluate(rule.expression, value, what, failure)
        if not isinstance(result, bool):
            raise _Refused(failure, f"error evaluating {what}: validation expression must return a boolean")
        if not result:
            raise _Refused(
                failure,
                f"error evaluating {what}: validation expression '{rule.expression.expression}' failed: {rule.message}",
            )


def _user_value(user: UserInfo) -> Binding:
    extra = {k: list(v) for k, v in user.extra.items()}
    return Binding(USER, {"username": user.username, "uid": user.uid, "groups": list(user.groups), "extra": extra})


def user_from_claims(
    claims: dict[str, Any],
    spec: JWTAuthenticatorSpec,
    now: float,
    *,
    allow_system_identities: bool = False,
) -> Authenticated | Rejected:
    """Check the standard and configured claims of a token whose signature is already verified."""
    if issuer_of(claims) != spec.issuer_url:
        return Rejected(Failure.WRONG_ISSUER, "token issuer does not match the configured issuer")
    if not _audience_ok(claims.get("aud"), spec.audiences):
        return Rejected(Failure.WRONG_AUDIENCE, "token audience does not include the client id")
    exp = claims.get("exp")
    if not _is_number(exp):
        return Rejected(Failure.BAD_CLAIMS, "token has no numeric exp claim")
    assert isinstance(exp, int | float)
    if now >= exp:
        return Rejected(Failure.EXPIRED, "token has expired", "Unauthorized: the token has expired")
    nbf = claims.get("nbf")
    if nbf is not None:
        if not _is_number(nbf):
            return Rejected(Failure.BAD_CLAIMS, "nbf claim is not a number")
        if nbf > now + NBF_LEEWAY_SECONDS:
            return Rejected(Failure.NOT_YET_VALID, "token is not valid yet (nbf is in the future)")

    # kube-apiserver's order: username, groups, uid, extra, required claims, claim rules, user rules
    try:
        cel_claims = Binding(CLAIMS, claims) if spec.uses_cel else None
    except CelEvaluationError as exc:  # kube-apiserver's JSON decoder fails on these claims too
        return Rejected(Failure.BAD_CLAIMS, f"claims cannot be read as CEL values: {exc}")
    try:
        username = _username(claims, cel_claims, spec)
        groups = _groups(claims, cel_claims, spec)
        uid = _uid(claims, cel_claims, spec)
        extra = _extra(claims, cel_claims, spec)
        _check_required_claims(claims, spec)
        _check_rules(spec.claim_rules, cel_claims, "claim validation expression", Failure.CLAIM_RULE)
        user = UserInfo(username=username, uid=uid, groups=groups, extra=extra)
        if spec.user_rules:
            _check_rules(spec.user_rules, _user_value(user), "user info validation rule", Failure.USER_RULE)
    except _Refused as refused:
        return Rejected(refused.failure, refused.reason)

    problem = user_problem(user, "mapped ")
    if problem is not None:
        return Rejected(
            Failure.BAD_CLAIMS, problem, "Unauthorized: the identity in the token cannot be forwarded as it is"
        )
    if not allow_system_identities:
        if username.startswith("system:"):
            return Rejected(
                Failure.SYSTEM_IDENTITY,
                f"username {username!r} is in the reserved system: namespace",
                "Unauthorized: identities in the system: namespace are not accepted from OIDC tokens",
            )
        for group in groups:
            if group.startswith("system:"):
                return Rejected(
                    Failure.SYSTEM_IDENTITY,
                    f"group {group!r} is in the reserved system: namespace",
                    "Unauthorized: identities in the system: namespace are not accepted from OIDC tokens",
                )
    return Authenticated(
        user,
        expires_at=float(exp),
        issuer=spec.issuer_url,
    )
