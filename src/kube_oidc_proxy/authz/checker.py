"""Ask kube-apiserver whether the caller may impersonate what it asked for: one SubjectAccessReview per
requested value, all at once, each answer remembered briefly (as kube-apiserver's own authorizer cache)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

from kube_oidc_proxy.authn.model import UserInfo
from kube_oidc_proxy.authz.requested import ImpersonationRequest
from kube_oidc_proxy.authz.review import Attributes, review_body, reviews_for

CACHE_TTL_SECONDS: Final = 10.0
CACHE_MAX_ENTRIES: Final = 10_000


class ReviewError(Exception):
    """kube-apiserver could not answer a review."""


class Reviewer(Protocol):
    async def subject_access_review(self, body: dict[str, Any]) -> bool: ...


def _caller_key(caller: UserInfo) -> tuple[Any, ...]:
    extra = tuple(sorted((k, tuple(v)) for k, v in caller.extra.items()))
    return (caller.username, caller.uid, caller.groups, extra)


class ImpersonationChecker:
    def __init__(
        self,
        reviewer: Reviewer,
        *,
        ttl: float = CACHE_TTL_SECONDS,
        max_entries: int = CACHE_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reviewer = reviewer
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._cache: dict[tuple[Any, ...], tuple[bool, float]] = {}
        self.reviews = 0

    async def first_denied(self, caller: UserInfo, request: ImpersonationRequest) -> Attributes | None:
        """The first requested value the caller may not impersonate, or None if all are allowed."""
        checks = reviews_for(request)
        caller_key = _caller_key(caller)
        now = self._clock()
        answers: dict[Attributes, bool] = {}
        missing: list[Attributes] = []
        for attributes in checks:
            hit = self._cache.get((caller_key, attributes))
            if hit is not None and hit[1] > now:
                answers[attributes] = hit[0]
            else:
                missing.append(attributes)
        if missing:
            results = await asyncio.gather(
                *(self._reviewer.subject_access_review(review_body(caller, a)) for a in missing)
            )
            self.reviews += len(missing)
            for attributes, allowed in zip(missing, results, strict=True):
                answers[attributes] = allowed
                self._remember((caller_key, attributes), allowed, now)
        return next((a for a in checks if not answers[a]), None)

    def _remember(self, key: tuple[Any, ...], allowed: bool, now: float) -> None:
        if len(self._cache) >= self._max_entries:
            for stale in [k for k, (_, until) in self._cache.items() if until <= now]:
                del self._cache[stale]
            while len(self._cache) >= self._max_entries:
                del self._cache[next(iter(self._cache))]
        self._cache[key] = (allowed, now + self._ttl)
