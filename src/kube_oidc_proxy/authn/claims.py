"""Verified claims -> ``UserInfo``: kube-apiserver's JWT authenticator semantics, with our safety rules.

Pure: the caller passes the clock. Every refusal is a ``Rejected`` with a reason for the log and a short
message that reveals nothing a caller does not already know about their own token. The reason names the
values that explain it, as kube-apiserver's errors do: the token's value and the expected one, the claim
that failed, the CEL expression that refused, exp or nbf against the clock. Token values are quoted and
bounded by ``quoting``: they are attacker-controlled text.
"""

from __future__ import annotations

import datetime
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
from kube_oidc_proxy.authn.quoting import claim, listed, message, quoted
from kube_oidc_proxy.identity import user_problem

# go-oidc v2 (used by kube-apiserver) allows a token whose nbf is up to one minute ahead (clock skew).
NBF_LEEWAY_SECONDS: Final = 60
EXPRESSION_CHARS: Final = 1000  # an admin's expression, quoted whole in the reason unless it is very long


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


def _token_has(claims: dict[str, Any], name: str) -> str:
    """The token's value of a standard claim, for a reason."""
    return f"the token's {name} is {claim(claims[name])}" if name in claims else f"the token has no {name} claim"


def _value_of(claims: dict[str, Any], name: str) -> str:
    """The token's value of a configured claim (the reason has already named it)."""
    if name in claims:
        return f"the token's value is {claim(claims[name])}"
    return f"the token has no such claim (its claims: {listed(claims)})"


def _expected(values: tuple[str, ...]) -> str:
    return quoted(values[0]) if len(values) == 1 else f"one of {listed(values)}"


def _instant(unix: float) -> str:
    """A NumericDate as RFC 3339 (UTC, seconds), or the number when no date can be made of it."""
    try:
        return datetime.datetime.fromtimestamp(unix, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError):
        return claim(unix)


def _duration(seconds: float) -> str:
    """Go's ``time.Duration`` text, to the second: ``35s``, ``2m0s``, ``1h2m3s``."""
    if seconds < 1:
        return f"{seconds:.3g}s"
    if seconds >= 1e10:  # centuries: a made-up number, not a clock problem
        return f"{claim(seconds)}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def _clock(name: str, moment: float, now: float) -> str:
    """``exp 2026-12-05T18:49:40Z is 1m35s before the proxy's clock (2026-12-05T18:51:15Z)``."""
    side = "before" if moment <= now else "after"
    return f"{name} {_instant(moment)} is {_duration(abs(now - moment))} {side} the proxy's clock ({_instant(now)})"


def _expression(program: Program) -> str:
    """An admin's CEL text, on one line (a YAML block scalar may span several)."""
    return message(program.expression, EXPRESSION_CHARS)


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
    except CelEvaluationError as exc:  # kube-apiserver's words; the engine's message may quote a claim
        reason = f"error evaluating {what}: expression '{_expression(program)}' resulted in error: {message(str(exc))}"
        raise _Refused(failure, reason) from exc


def _returned(program: Program, value: Any) -> str:
    return f"expression '{_expression(program)}' returned {claim(value)}"


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
                "error evaluating username claim expression: username claim expression must return a string: "
                + _returned(mapping.expression, username),
            )
        if not username:
            raise _Refused(
                Failure.CLAIM_MAPPING,
                f"empty username via CEL expression is not allowed: {_returned(mapping.expression, username)}",
            )
        return username
    raw = claims.get(mapping.claim)
    if not isinstance(raw, str) or not raw:
        raise _Refused(
            Failure.MISSING_USERNAME,
            f"username claim {quoted(mapping.claim)} is missing, empty or not a string: "
            + _value_of(claims, mapping.claim),
        )
    if mapping.claim == "email" and "email_verified" in claims and claims["email_verified"] is not True:
        raise _Refused(
            Failure.UNVERIFIED_EMAIL,
            f"email_verified is not true for the email username claim: {_token_has(claims, 'email_verified')}",
        )
    return mapping.prefix + raw


def _groups(claims: dict[str, Any], cel_claims: Binding | None, spec: JWTAuthenticatorSpec) -> tuple[str, ...]:
    mapping = spec.groups
    if mapping is None:
        return ()
    if mapping.expression is not None:
        result = _evaluate(mapping.expression, cel_claims, "group claim expression")
        groups = _string_list(result)
        if groups is None:
            raise _Refused(
                Failure.CLAIM_MAPPING,
                "error evaluating group claim expression: expression must return a string or a list of strings: "
                + _returned(mapping.expression, result),
            )
        return groups
    value = claims.get(mapping.claim)
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(g, str) for g in value):
        raise _Refused(
            Failure.BAD_CLAIMS,
            f"groups claim {quoted(mapping.claim)} is not a string or a list of strings: "
            + _value_of(claims, mapping.claim),
        )
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
                "error evaluating uid claim expression: uid claim expression must return a string: "
                + _returned(mapping.expression, uid),
            )
        return uid
    uid = claims.get(mapping.claim)
    if not isinstance(uid, str):
        # kube-apiserver refuses a token without the configured uid claim
        raise _Refused(
            Failure.CLAIM_MAPPING,
            f"uid claim {quoted(mapping.claim)} is missing or not a string: {_value_of(claims, mapping.claim)}",
        )
    return uid


def _extra(
    claims: dict[str, Any], cel_claims: Binding | None, spec: JWTAuthenticatorSpec
) -> dict[str, tuple[str, ...]]:
    extra: dict[str, tuple[str, ...]] = {}
    jti = claims.get("jti")
    if isinstance(jti, str) and jti:
        extra[CREDENTIAL_ID_EXTRA] = ("JTI=" + jti,)
    for mapping in spec.extra:
        result = _evaluate(mapping.value, cel_claims, "extra claim expression")
        values = _string_list(result)
        if values is None:
            raise _Refused(
                Failure.CLAIM_MAPPING,
                f"error evaluating extra claim expression: {_expression(mapping.value)}: "
                f"expression must return a string or a list of strings: it returned {claim(result)}",
            )
        if values:
            extra[mapping.key] = values
    return extra


def _check_required_claims(claims: dict[str, Any], spec: JWTAuthenticatorSpec) -> None:
    for key, required in spec.required_claims:
        if claims.get(key) != required:
            raise _Refused(
                Failure.REQUIRED_CLAIM,
                f"required claim {quoted(key)} is missing or does not match: "
                f"{_value_of(claims, key)}, expected {quoted(required)}",
            )


def _check_rules(rules: tuple[ValidationRule, ...], value: Binding | None, what: str, failure: Failure) -> None:
    for rule in rules:
        result = _evaluate(rule.expression, value, what, failure)
        if not isinstance(result, bool):
            raise _Refused(
                failure,
                f"error evaluating {what}: validation expression must return a boolean: "
                + _returned(rule.expression, result),
            )
        if not result:
            raise _Refused(
                failure,
                f"error evaluating {what}: validation expression '{_expression(rule.expression)}' failed: "
                + message(rule.message, EXPRESSION_CHARS),
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
        return Rejected(
            Failure.WRONG_ISSUER,
            "token issuer does not match the configured issuer: "
            f"{_token_has(claims, 'iss')}, expected {quoted(spec.issuer_url)}",
        )
    if not _audience_ok(claims.get("aud"), spec.audiences):
        return Rejected(
            Failure.WRONG_AUDIENCE,
            "token audience does not include the client id: "
            f"{_token_has(claims, 'aud')}, expected {_expected(spec.audiences)}",
        )
    exp = claims.get("exp")
    if not _is_number(exp):
        reason = "token has no numeric exp claim"
        return Rejected(Failure.BAD_CLAIMS, f"{reason}: {_token_has(claims, 'exp')}" if "exp" in claims else reason)
    assert isinstance(exp, int | float)
    if now >= exp:
        # go-oidc, as kube-apiserver uses it, allows no clock skew for exp
        reason = f"token has expired: {_clock('exp', exp, now)}; no clock skew is allowed for exp"
        return Rejected(Failure.EXPIRED, reason, "Unauthorized: the token has expired")
    nbf = claims.get("nbf")
    if nbf is not None:
        if not _is_number(nbf):
            return Rejected(Failure.BAD_CLAIMS, f"nbf claim is not a number: {_token_has(claims, 'nbf')}")
        if nbf > now + NBF_LEEWAY_SECONDS:
            return Rejected(
                Failure.NOT_YET_VALID,
                f"token is not valid yet (nbf is in the future): {_clock('nbf', nbf, now)}, "
                f"more than the {_duration(NBF_LEEWAY_SECONDS)} allowed for clock skew",
            )

    # kube-apiserver's order: username, groups, uid, extra, required claims, claim rules, user rules
    try:
        cel_claims = Binding(CLAIMS, claims) if spec.uses_cel else None
    except CelEvaluationError as exc:  # kube-apiserver's JSON decoder fails on these claims too
        return Rejected(Failure.BAD_CLAIMS, f"claims cannot be read as CEL values: {message(str(exc))}")
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
                f"username {quoted(username)} is in the reserved system: namespace",
                "Unauthorized: identities in the system: namespace are not accepted from OIDC tokens",
            )
        for group in groups:
            if group.startswith("system:"):
                return Rejected(
                    Failure.SYSTEM_IDENTITY,
                    f"group {quoted(group)} is in the reserved system: namespace",
                    "Unauthorized: identities in the system: namespace are not accepted from OIDC tokens",
                )
    return Authenticated(
        user,
        expires_at=float(exp),
        issuer=spec.issuer_url,
    )
