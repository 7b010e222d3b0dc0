"""Structure of a compact JWS, checked before any key or library sees it.

We refuse here what never needs a key to refuse: not three base64url segments (JWE has five, JSON
serialisation is not compact), padding or foreign characters, a header or payload that is not a JSON
object (or uses NaN/Infinity, which JSON does not have and Go refuses), a missing ``alg``, a ``crit``
header (we implement no extensions, RFC 7515 §4.1.11). Which algorithms are acceptable is decided by the
authenticator (``oidc.py``), before any key is used. The unverified payload is only used to route by
``iss``; nothing else is trusted until the signature is.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any, Final

_B64URL: Final = re.compile(rb"[A-Za-z0-9_-]+")


class MalformedToken(ValueError):
    """The bearer token is not a well-formed compact JWS."""


@dataclass(frozen=True, slots=True)
class ParsedToken:
    raw: bytes
    alg: str
    kid: str | None
    claims: dict[str, Any]  # unverified until a key has checked the signature


def b64url_decode(segment: bytes) -> bytes:
    if not _B64URL.fullmatch(segment):
        raise MalformedToken("not base64url")
    try:
        return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise MalformedToken("not base64url") from exc


def _no_constants(name: str) -> Any:
    raise MalformedToken(f"{name} is not JSON")


def _json_int(digits: str) -> int | float:
    """A JSON integer. One longer than Python converts (4300 digits, ``sys.get_int_max_str_digits``) raised a
    ValueError nobody expected (a 500); it is far beyond a double's range, so it becomes +-inf, as Go's decoder
    overflows it: no check of a number accepts that, and a claim nothing reads may hold it, as in Go."""
    try:
        return int(digits)
    except ValueError:
        return float(digits)


def _json_object(segment: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(b64url_decode(segment), parse_constant=_no_constants, parse_int=_json_int)
    except MalformedToken:
        raise
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, and whatever else the decoder refuses
        raise MalformedToken(f"{what} is not JSON") from exc
    except RecursionError as exc:
        raise MalformedToken(f"{what} is nested too deeply") from exc
    if not isinstance(value, dict):
        raise MalformedToken(f"{what} is not a JSON object")
    return value


def parse_compact(raw: bytes) -> ParsedToken:
    parts = raw.split(b".")
    if len(parts) == 5:
        raise MalformedToken("encrypted tokens (JWE) are not accepted")
    if len(parts) != 3 or not all(parts):
        raise MalformedToken("not a compact JWS (header.payload.signature)")
    header = _json_object(parts[0], "header")
    claims = _json_object(parts[1], "payload")
    b64url_decode(parts[2])
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise MalformedToken("header has no alg")
    if "crit" in header:
        raise MalformedToken("critical header extensions are not supported")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise MalformedToken("kid is not a string")
    return ParsedToken(raw=raw, alg=alg, kid=kid, claims=claims)
