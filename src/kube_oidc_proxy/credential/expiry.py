"""When a token stops being worth handing to kubectl.

kubectl runs the plugin again once ``expirationTimestamp`` has passed, so it is set a margin before the
id_token's ``exp``: long enough that a request in flight does not reach the proxy with a dead token, short
enough not to waste most of a short-lived token (a quarter of its lifetime, at most a minute).

The id_token's payload is read without checking its signature: the plugin only needs ``exp``, ``iat`` and
``nonce`` of a token it got straight from the provider over TLS; verifying it is the proxy's job.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
from typing import Any, Final

MAX_MARGIN_SECONDS: Final = 60.0
MARGIN_FRACTION: Final = 0.25


class TokenFormatError(Exception):
    """Not a JWT whose payload carries a numeric ``exp``."""


def claims(token: str) -> dict[str, Any]:
    """The payload of a compact JWS, unverified."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenFormatError("the id_token is not a JWT (three dot-separated parts)")
    payload = parts[1]
    try:
        decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        document = json.loads(decoded)
    except (binascii.Error, ValueError, RecursionError):
        raise TokenFormatError("the id_token's payload is not base64url JSON") from None
    if not isinstance(document, dict):
        raise TokenFormatError("the id_token's payload is not a JSON object")
    exp = document.get("exp")
    if not _number(exp):
        raise TokenFormatError("the id_token has no numeric exp claim")
    return document


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def margin(payload: dict[str, Any], now: float) -> float:
    """How long before ``exp`` the token counts as expired: a quarter of its lifetime (from ``iat``, or from
    now when the token has none), at most a minute, never negative."""
    exp = float(payload["exp"])
    iat = payload.get("iat")
    issued = float(iat) if isinstance(iat, int | float) and not isinstance(iat, bool) and iat < exp else now
    return max(0.0, min(MAX_MARGIN_SECONDS, (exp - issued) * MARGIN_FRACTION))


def renew_at(payload: dict[str, Any], now: float) -> float:
    """The unix time from which kubectl should ask again: ``exp`` minus the margin."""
    return float(payload["exp"]) - margin(payload, now)


def is_fresh(payload: dict[str, Any], now: float) -> bool:
    """Whether a cached token may still be handed out."""
    return now < renew_at(payload, now)


def rfc3339(unix: float) -> str:
    """Whole seconds in UTC, rounded down (kubectl then asks no later than we meant): ``2024-05-01T12:00:00Z``."""
    return datetime.datetime.fromtimestamp(int(unix // 1), datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
