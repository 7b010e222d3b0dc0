"""Verified tokens, remembered by a hash of the token (never the token), until they expire.

An entry lives until the earliest of the token's ``exp`` and ``max_ttl`` after it was verified, so a key
the issuer withdraws stops being honoured within ``max_ttl``. The cache is bounded: when full, expired
entries go first, then the oldest.
"""

from __future__ import annotations

import hashlib
from typing import Final

from kube_oidc_proxy.authn.model import Authenticated

DEFAULT_MAX_ENTRIES: Final = 10_000
DEFAULT_MAX_TTL_SECONDS: Final = 60.0


def token_key(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


class TokenCache:
    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, max_ttl: float = DEFAULT_MAX_TTL_SECONDS) -> None:
        self._max_entries = max_entries
        self._max_ttl = max_ttl
        self._entries: dict[bytes, tuple[Authenticated, float]] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes, now: float) -> Authenticated | None:
        entry = self._entries.get(key)
        if entry is not None:
            if now < entry[1]:
                self.hits += 1
                return entry[0]
            del self._entries[key]
        self.misses += 1
        return None

    def put(self, key: bytes, result: Authenticated, now: float) -> None:
        until = min(result.expires_at, now + self._max_ttl)
        if until <= now:
            return
        if key not in self._entries and len(self._entries) >= self._max_entries:
            self._evict(now)
        self._entries[key] = (result, until)

    def clear(self) -> None:
        self._entries.clear()

    def _evict(self, now: float) -> None:
        expired = [k for k, (_, until) in self._entries.items() if until <= now]
        for k in expired:
            del self._entries[k]
        # Drop the oldest tenth at once, so a full cache does not rescan on every insert.
        target = self._max_entries - max(1, self._max_entries // 10)
        while len(self._entries) > target:
            del self._entries[next(iter(self._entries))]
