"""Verified tokens, remembered by a hash of the token (never the token), until they expire.

An entry lives until the earliest of the token's ``exp`` and ``max_ttl`` after it was verified, so a key
the issuer withdraws stops being honoured within ``max_ttl``. The cache is bounded by entries and by the
bytes the identities hold (an identity is as large as its token's claims, or a TokenReview's answer,
allow): when full, expired entries go first, then the oldest (``expiring.ExpiringCache``).
"""

from __future__ import annotations

import hashlib
import sys
from typing import Final

from kube_oidc_proxy.authn.model import Authenticated, UserInfo
from kube_oidc_proxy.expiring import ExpiringCache

DEFAULT_MAX_ENTRIES: Final = 10_000
DEFAULT_MAX_TTL_SECONDS: Final = 60.0
# Room for 10,000 identities of 6 KiB (a few dozen groups each); one identity of more than 1 MiB (a 64th)
# is verified again on every request rather than stored.
DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024
ENTRY_OVERHEAD_BYTES: Final = 512  # the key, the entry tuple, the dataclasses and their containers


def token_key(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


def identity_bytes(user: UserInfo) -> int:
    """What the strings of an identity occupy: the part of an entry a token's claims decide."""
    strings = [user.username, user.uid, *user.groups, *user.extra]
    strings += [value for values in user.extra.values() for value in values]
    return sum(map(sys.getsizeof, strings)) + 64 * (len(user.extra) + 1)  # + a tuple per list


class TokenCache:
    def __init__(
        self,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_ttl: float = DEFAULT_MAX_TTL_SECONDS,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self._max_ttl = max_ttl
        self._cache: ExpiringCache[bytes, Authenticated] = ExpiringCache(
            max_entries=max_entries, max_bytes=max_bytes, sweep_interval=max(max_ttl, 1.0)
        )
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._cache)

    @property
    def held_bytes(self) -> int:
        return self._cache.held_bytes

    def get(self, key: bytes, now: float) -> Authenticated | None:
        result = self._cache.get(key, now)
        if result is None:
            self.misses += 1
        else:
            self.hits += 1
        return result

    def put(self, key: bytes, result: Authenticated, now: float) -> None:
        until = min(result.expires_at, now + self._max_ttl)
        size = ENTRY_OVERHEAD_BYTES + sys.getsizeof(result.issuer) + identity_bytes(result.user)
        self._cache.put(key, result, until=until, now=now, size=size)

    def clear(self) -> None:
        self._cache.clear()
