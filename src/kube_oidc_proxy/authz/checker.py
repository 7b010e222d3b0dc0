"""Ask kube-apiserver whether the caller may impersonate what it asked for, at the least cost:

- answers remembered briefly (as kube-apiserver's own authorizer cache) are used first: any remembered
  denial decides at once, with no review sent;
- then one SubjectAccessReview per value still unknown, one after another in kube-apiserver's order (the
  requested user or service account first) and none after the first denial, as kube-apiserver's own
  impersonation filter does. A caller with no rights costs one review, however much it asks for;
- a review already under way for the same caller and value is joined, not sent again, so a flood of one
  request costs one review;
- every review of one check shares one deadline (``CHECK_TIMEOUT_SECONDS``), the wait for a slot in the
  review budget included.

Answers are remembered by a SHA-256 of the caller and the value (the caller's groups and the value may be
large: an entry has one size), at most ``CACHE_MAX_ENTRIES``, expired ones swept out.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import astuple
from functools import partial
from typing import Any, Final, Protocol

from kube_oidc_proxy.authn.model import UserInfo
from kube_oidc_proxy.authz.requested import ImpersonationRequest
from kube_oidc_proxy.authz.review import Attributes, review_body, reviews_for
from kube_oidc_proxy.expiring import ExpiringCache
from kube_oidc_proxy.singleflight import SingleFlight

CACHE_TTL_SECONDS: Final = 10.0
CACHE_MAX_ENTRIES: Final = 10_000
CACHE_ENTRY_BYTES: Final = 256  # a 32-byte digest, a bool and the entry around them
CHECK_TIMEOUT_SECONDS: Final = 10.0  # the Go proxy's TokenReview timeout, for all the reviews of one request


class ReviewError(Exception):
    """kube-apiserver could not answer a review (or it was not sent: ``ReviewNotSent``)."""


class ReviewNotSent(ReviewError):
    """The review budget had no slot for it in time: nothing was sent."""


class Reviewer(Protocol):
    async def subject_access_review(self, body: dict[str, Any], *, caller: str, timeout: float) -> bool: ...


def _caller_digest(caller: UserInfo) -> Any:
    """A hash object over the caller's identity, to be extended by each value asked about."""
    extra = sorted((k, list(v)) for k, v in caller.extra.items())
    return hashlib.sha256(json.dumps([caller.username, caller.uid, list(caller.groups), extra]).encode())


def _answer_key(caller: Any, attributes: Attributes) -> bytes:
    digest = caller.copy()
    digest.update(json.dumps(astuple(attributes)).encode())
    return bytes(digest.digest())


class ImpersonationChecker:
    def __init__(
        self,
        reviewer: Reviewer,
        *,
        ttl: float = CACHE_TTL_SECONDS,
        max_entries: int = CACHE_MAX_ENTRIES,
        timeout: float = CHECK_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        on_reviews: Callable[[int], None] | None = None,
    ) -> None:
        self._reviewer = reviewer
        self._ttl = ttl
        self._timeout = timeout
        self._clock = clock
        self._on_reviews = on_reviews  # reviews sent for one check (a metric)
        self._answers: ExpiringCache[bytes, bool] = ExpiringCache(
            max_entries=max_entries,
            max_bytes=max_entries * CACHE_ENTRY_BYTES,
            max_entry_bytes=CACHE_ENTRY_BYTES,
            sweep_interval=ttl,
        )
        self._in_flight: SingleFlight[bytes, bool] = SingleFlight()
        self.reviews = 0

    async def first_denied(self, caller: UserInfo, request: ImpersonationRequest) -> Attributes | None:
        """The requested value the caller may not impersonate, or None if all are allowed; raises
        ``ReviewError`` when a review cannot be made in time."""
        base = _caller_digest(caller)
        checks = [(attributes, _answer_key(base, attributes)) for attributes in reviews_for(request)]
        now = self._clock()
        unknown: dict[bytes, Attributes] = {}  # a value asked for twice is reviewed once
        for attributes, key in checks:
            answer = self._answers.get(key, now)
            if answer is False:
                self._count(0)
                return attributes
            if answer is None:
                unknown.setdefault(key, attributes)
        deadline = now + self._timeout
        sent = 0
        try:
            for key, attributes in unknown.items():
                joined = key in self._in_flight  # a review under way for the same caller and value
                try:
                    allowed, _ = await self._in_flight.run(
                        key, partial(self._review, caller, attributes, key, deadline)
                    )
                except ReviewNotSent:
                    raise  # not sent (counted as throttled)
                except ReviewError:
                    sent += not joined  # sent, not answered
                    raise
                sent += not joined
                if not allowed:
                    return attributes
            return None
        finally:
            self._count(sent)

    def _count(self, sent: int) -> None:
        if self._on_reviews is not None:
            self._on_reviews(sent)

    async def _review(self, caller: UserInfo, attributes: Attributes, key: bytes, deadline: float) -> bool:
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise ReviewError(f"the impersonation check took longer than {self._timeout:g}s")
        self.reviews += 1
        body = review_body(caller, attributes)
        allowed = await self._reviewer.subject_access_review(body, caller=caller.username, timeout=remaining)
        now = self._clock()
        self._answers.put(key, allowed, until=now + self._ttl, now=now, size=CACHE_ENTRY_BYTES)
        return allowed
