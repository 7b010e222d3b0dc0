"""Token passthrough (``--token-passthrough``): a bearer token that is not an id token of a trusted issuer
(a service-account token, say) is shown to kube-apiserver's TokenReview API. If it authenticates, the
request goes upstream with the caller's own token and no impersonation.

Only tokens no OIDC authenticator claims get here: an expired or tampered id token of our issuer is
refused with its own reason (the Go proxy sent every failure to TokenReview and lost the reason).

Only a JSON ``true`` in ``status.authenticated`` authenticates, and only with a well-formed user (a
non-empty string username, a string uid, a list of string groups, an object of string lists for extra):
any other answer is a 401, never a partial identity.

Answers are remembered by the token's SHA-256, never the token. An identity for at most
``CACHE_TTL_SECONDS``, never past the token's ``exp`` when it is a JWT; a refusal for ``CACHE_TTL_SECONDS``
too, as kube-apiserver's delegating authenticator remembers both, so a flood of one bad token costs one
TokenReview per TTL (a TokenReview under way for the same token is joined, not sent again). A
TokenReview that could not be made (503) is not remembered.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any, Final, Protocol

from kube_oidc_proxy.authn.cache import ENTRY_OVERHEAD_BYTES, TokenCache, token_key
from kube_oidc_proxy.authn.model import Authenticated, Failure, Rejected, UserInfo
from kube_oidc_proxy.authn.token import MalformedToken, parse_compact
from kube_oidc_proxy.authz.checker import ReviewError, ReviewNotSent
from kube_oidc_proxy.expiring import ExpiringCache
from kube_oidc_proxy.singleflight import SingleFlight

CACHE_TTL_SECONDS: Final = 10.0
REFUSALS_MAX_ENTRIES: Final = 10_000
REASON_MAX_CHARS: Final = 256  # of TokenReview's status.error, as remembered and logged


class TokenReviewer(Protocol):
    async def token_review(self, token: str, audiences: tuple[str, ...], *, client: str) -> dict[str, Any]: ...


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def reviewed_user(status: dict[str, Any]) -> UserInfo | str:
    """The identity an authenticating TokenReview vouches for, or what is malformed in its answer."""
    user = status.get("user")
    if not isinstance(user, dict):
        return "status.user is not an object"
    username, uid = user.get("username"), user.get("uid", "")
    groups, extra = user.get("groups", []), user.get("extra", {})
    if not isinstance(username, str) or not username:
        return "status.user.username is not a non-empty string"
    if not isinstance(uid, str):
        return "status.user.uid is not a string"
    if not _strings(groups):
        return "status.user.groups is not a list of strings"
    if not isinstance(extra, dict) or not all(_strings(values) for values in extra.values()):
        return "status.user.extra is not an object of string lists"
    return UserInfo(username, uid, tuple(groups), {key: tuple(values) for key, values in extra.items()})


def _unverified_exp(token: bytes) -> float | None:
    try:
        exp = parse_compact(token).claims.get("exp")
    except MalformedToken:
        return None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def _refused(reason: str) -> Rejected:
    if len(reason) > REASON_MAX_CHARS:
        reason = reason[:REASON_MAX_CHARS] + "..."
    return Rejected(Failure.TOKEN_REVIEW_REJECTED, reason)


class Passthrough:
    def __init__(
        self,
        reviewer: TokenReviewer,
        audiences: tuple[str, ...] = (),
        *,
        clock: Callable[[], float] = time.time,
        on_reviews: Callable[[int], None] | None = None,
    ) -> None:
        self._reviewer = reviewer
        self._audiences = audiences
        self._clock = clock
        self._on_reviews = on_reviews  # reviews sent for one request: 0 or 1 (a metric)
        self._cache = TokenCache(max_ttl=CACHE_TTL_SECONDS)
        self._refusals: ExpiringCache[bytes, Rejected] = ExpiringCache(
            max_entries=REFUSALS_MAX_ENTRIES,
            max_bytes=REFUSALS_MAX_ENTRIES * (ENTRY_OVERHEAD_BYTES + 4 * REASON_MAX_CHARS),
            sweep_interval=CACHE_TTL_SECONDS,
        )
        self._in_flight: SingleFlight[bytes, Authenticated | Rejected] = SingleFlight()
        self.reviews = 0

    async def authenticate(self, token: bytes, client: str = "") -> Authenticated | Rejected:
        """``client``: the caller's address, whose share of the review budget a TokenReview takes."""
        key = token_key(token)
        now = self._clock()
        cached = self._cache.get(key, now) or self._refusals.get(key, now)
        if cached is not None:
            self._count(0)
            return cached
        try:
            text = token.decode("ascii")
        except UnicodeDecodeError:
            return Rejected(Failure.MALFORMED, "bearer token is not ASCII")
        joined = key in self._in_flight  # a review of the same token is under way
        try:
            result, _ = await self._in_flight.run(key, partial(self._review, token, text, key, client))
        except ReviewError as exc:
            self._count(0 if joined or isinstance(exc, ReviewNotSent) else 1)
            return Rejected(
                Failure.TOKEN_REVIEW_ERROR, f"TokenReview failed: {exc}", "cannot verify the token right now", 503
            )
        self._count(0 if joined else 1)
        return result

    async def _review(self, token: bytes, text: str, key: bytes, client: str) -> Authenticated | Rejected:
        self.reviews += 1
        status = await self._reviewer.token_review(text, self._audiences, client=client)
        now = self._clock()
        result = self._decide(token, status, now)
        if isinstance(result, Authenticated):
            self._cache.put(key, result, now)
        else:
            size = ENTRY_OVERHEAD_BYTES + sys.getsizeof(result.reason)
            self._refusals.put(key, result, until=now + CACHE_TTL_SECONDS, now=now, size=size)
        return result

    def _decide(self, token: bytes, status: dict[str, Any], now: float) -> Authenticated | Rejected:
        if status.get("error"):
            return _refused(f"TokenReview: {status['error']}")
        if status.get("authenticated") is not True:
            return _refused("TokenReview: not authenticated")
        user = reviewed_user(status)
        if isinstance(user, str):
            return _refused(f"TokenReview answer is malformed: {user}")
        exp = _unverified_exp(token)
        return Authenticated(user, expires_at=exp if exp is not None else now + CACHE_TTL_SECONDS)

    def _count(self, reviews: int) -> None:
        if self._on_reviews is not None:
            self._on_reviews(reviews)
