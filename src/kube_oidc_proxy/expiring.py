"""Answers remembered until they expire, in a bounded amount of memory: verified tokens, TokenReview
refusals, SubjectAccessReview answers.

- An entry lives until its own ``until``; a lookup after that misses and drops it.
- Expired entries are also swept out at most every ``sweep_interval`` (on a ``put``), so a cache that never
  fills does not hold them until it does.
- The cache is bounded by entries *and* by bytes: each entry states its size (``put(size=...)``: what its
  value holds, which a caller may control: a username, a group list). When a put would pass either bound,
  expired entries go first, then the oldest, a tenth at once so a full cache does not rescan on every
  insert. An entry larger than ``max_entry_bytes`` (by default a 64th of the byte bound) is not stored
  at all: one oversized answer must not flush everyone else's.

Pure: the caller passes the time.
"""

from __future__ import annotations

from typing import Final, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

ENTRY_SHARE_DIVISOR: Final = 64


class ExpiringCache(Generic[K, V]):
    def __init__(
        self, *, max_entries: int, max_bytes: int, sweep_interval: float, max_entry_bytes: int | None = None
    ) -> None:
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._max_entry_bytes = max_bytes // ENTRY_SHARE_DIVISOR if max_entry_bytes is None else max_entry_bytes
        self._sweep_interval = sweep_interval
        self._next_sweep = float("-inf")
        self._entries: dict[K, tuple[V, float, int]] = {}  # value, until, size; oldest first
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def held_bytes(self) -> int:
        """The sizes of the entries held, as their puts stated them."""
        return self._bytes

    def get(self, key: K, now: float) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now < entry[1]:
            return entry[0]
        self._drop(key)
        return None

    def put(self, key: K, value: V, *, until: float, now: float, size: int) -> None:
        if key in self._entries:
            self._drop(key)
        if now >= self._next_sweep:
            self._sweep(now)
        if until <= now or size > self._max_entry_bytes:
            return
        self._make_room(size, now)
        self._entries[key] = (value, until, size)
        self._bytes += size

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def _fits(self, size: int) -> bool:
        return len(self._entries) < self._max_entries and self._bytes + size <= self._max_bytes

    def _make_room(self, size: int, now: float) -> None:
        if self._fits(size):
            return
        self._sweep(now)
        if self._fits(size):
            return
        entries_target = self._max_entries - max(1, self._max_entries // 10)
        bytes_target = self._max_bytes - max(size, self._max_bytes // 10)
        while self._entries and (len(self._entries) > entries_target or self._bytes > bytes_target):
            self._drop(next(iter(self._entries)))

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + self._sweep_interval
        for key in [k for k, (_, until, _) in self._entries.items() if until <= now]:
            self._drop(key)

    def _drop(self, key: K) -> None:
        self._bytes -= self._entries.pop(key)[2]
