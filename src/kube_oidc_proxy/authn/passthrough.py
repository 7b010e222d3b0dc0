"""Token passthrough (``--token-passthrough``): a bearer token that is not an id token of a trusted issuer
(a service-account token, say) is shown to kube-apiserver's TokenReview API. If it authenticates, the
request goes upstream with the caller's own token and no impersonation.

Only tokens no OIDC authenticator claims get here: an expired or tampered id token of our issuer is
refused with its own reason (the Go proxy sent every failure to TokenReview and lost the reason).
Positive answers are remembered for at most ``CACHE_TTL_SECONDS``, never past the token's ``exp`` when it
is a JWT; failures are not remembered.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final, Protocol

from kube_oidc_proxy.authn.cache import TokenCache, token_key
from kube_oidc_proxy.authn.model import Authenticated, Failure, Rejected, UserInfo
from kube_oidc_proxy.authn.token import MalformedToken, parse_compact
from kube_oidc_proxy.authz.checker import ReviewError

CACHE_TTL_SECONDS: Final = 10.0


class TokenReviewer(Protocol):
    async def token_review(self, token: str, audiences: tuple[str, ...]) -> dict[str, Any]: ...


def _user(status: dict[str, Any]) -> UserInfo:
    user = status.get("user") or {}
    extra = user.get("extra") or {}
    return UserInfo(
        username=str(user.get("username", "")),
        uid=str(user.get("uid", "")),
        groups=tuple(str(g) for g in user.get("groups") or ()),
        extra={str(k): tuple(str(v) for v in vs) for k, vs in extra.items() if isinstance(vs, list)},
    )


def _unverified_exp(token: bytes) -> float | None:
    try:
        exp = parse_compact(token).claims.get("exp")
    except MalformedToken:
        return None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


class Passthrough:
    def __init__(
        self,
        reviewer: TokenReviewer,
        audiences: tuple[str, ...] = (),
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._reviewer = reviewer
        self._audiences = audiences
        self._clock = clock
        self._cache = TokenCache(max_ttl=CACHE_TTL_SECONDS)
        self.reviews = 0

    async def authenticate(self, token: bytes) -> Authenticated | Rejected:
        key = token_key(token)
        now = self._clock()
        cached = self._cache.get(key, now)
        if cached is not None:
            return cached
        try:
            text = token.decode("ascii")
        except UnicodeDecodeError:
            return Rejected(Failure.MALFORMED, "bearer token is not ASCII")
        self.reviews += 1
        try:
            status = await self._reviewer.token_review(text, self._audiences)
        except ReviewError as exc:
            return Rejected(
                Failure.TOKEN_REVIEW_ERROR, f"TokenReview failed: {exc}", "cannot verify the token right now", 503
            )
        if status.get("error"):
            return Rejected(Failure.TOKEN_REVIEW_REJECTED, f"TokenReview: {status['error']}")
        if status.get("authenticated") is not True:
            return Rejected(Failure.TOKEN_REVIEW_REJECTED, "TokenReview: not authenticated")
        exp = _unverified_exp(token)
        result = Authenticated(_user(status), expires_at=exp if exp is not None else now + CACHE_TTL_SECONDS)
        self._cache.put(key, result, now)
        return result
