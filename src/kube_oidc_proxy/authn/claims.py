"""Verified claims -> ``UserInfo``: kube-apiserver's legacy ``--oidc-*`` semantics, with our safety rules.

Pure: the caller passes the clock. Every refusal is a ``Rejected`` with a reason for the log and a short
message that reveals nothing a caller does not already know about their own token.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

from kube_oidc_proxy.authn.model import (
    CREDENTIAL_ID_EXTRA,
    Authenticated,
    JWTAuthenticatorSpec,
    Rejected,
    UserInfo,
)

# go-oidc v2 (used by kube-apiserver) allows a token whose nbf is up to one minute ahead (clock skew).
NBF_LEEWAY_SECONDS: Final = 60
# Anything that would let a claim break out of an HTTP header value, or forge a second header.
_CONTROL_CHARS: Final = re.compile(r"[\x00-\x1f\x7f]")


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


def _no_prefix(prefix: str) -> bool:
    # The Go proxy passes the prefix verbatim; kube-apiserver documents "-" as "no prefix". Both work here.
    return prefix in ("", "-")


def _audience_ok(aud: Any, audiences: tuple[str, ...]) -> bool:
    if isinstance(aud, str):
        return aud in audiences
    if isinstance(aud, list):
        return any(isinstance(a, str) and a in audiences for a in aud)
    return False


def _groups(claims: dict[str, Any], spec: JWTAuthenticatorSpec) -> tuple[str, ...] | Rejected:
    mapping = spec.groups
    if mapping is None:
        return ()
    value = claims.get(mapping.claim)
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(g, str) for g in value):
        return Rejected(f"groups claim {mapping.claim!r} is not a string or a list of strings")
    prefix = "" if _no_prefix(mapping.prefix) else mapping.prefix
    return tuple(prefix + g for g in value if g)


def user_from_claims(
    claims: dict[str, Any],
    spec: JWTAuthenticatorSpec,
    now: float,
    *,
    allow_system_identities: bool = False,
) -> Authenticated | Rejected:
    """Check the standard and configured claims of a token whose signature is already verified."""
    if issuer_of(claims) != spec.issuer_url:
        return Rejected("token issuer does not match the configured issuer")
    if not _audience_ok(claims.get("aud"), spec.audiences):
        return Rejected("token audience does not include the client id")
    exp = claims.get("exp")
    if not _is_number(exp):
        return Rejected("token has no numeric exp claim")
    assert isinstance(exp, int | float)
    if now >= exp:
        return Rejected("token has expired", "Unauthorized: the token has expired")
    nbf = claims.get("nbf")
    if nbf is not None:
        if not _is_number(nbf):
            return Rejected("nbf claim is not a number")
        if nbf > now + NBF_LEEWAY_SECONDS:
            return Rejected("token is not valid yet (nbf is in the future)")

    for key, required in spec.required_claims:
        if claims.get(key) != required:
            return Rejected(f"required claim {key!r} is missing or does not match")

    username_claim = spec.username.claim
    raw_username = claims.get(username_claim)
    if not isinstance(raw_username, str) or not raw_username:
        return Rejected(f"username claim {username_claim!r} is missing, empty or not a string")
    if username_claim == "email" and "email_verified" in claims and claims["email_verified"] is not True:
        return Rejected("email_verified is not true for the email username claim")
    prefix = "" if _no_prefix(spec.username.prefix) else spec.username.prefix
    username = prefix + raw_username

    groups = _groups(claims, spec)
    if isinstance(groups, Rejected):
        return groups

    extra: dict[str, tuple[str, ...]] = {}
    jti = claims.get("jti")
    if isinstance(jti, str) and jti:
        extra[CREDENTIAL_ID_EXTRA] = ("JTI=" + jti,)

    for value in (username, *groups, *(v for vs in extra.values() for v in vs)):
        if _CONTROL_CHARS.search(value):
            return Rejected("an identity claim contains control characters")
    if not allow_system_identities:
        if username.startswith("system:"):
            return Rejected(
                f"username {username!r} is in the reserved system: namespace",
                "Unauthorized: identities in the system: namespace are not accepted from OIDC tokens",
            )
        for group in groups:
            if group.startswith("system:"):
                return Rejected(
                    f"group {group!r} is in the reserved system: namespace",
                    "Unauthorized: identities in the system: namespace are not accepted from OIDC tokens",
                )
    return Authenticated(
        UserInfo(username=username, groups=groups, extra=extra),
        expires_at=float(exp),
        issuer=spec.issuer_url,
    )
