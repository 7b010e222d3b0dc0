"""kube-apiserver's max-in-flight limit (``--max-requests-inflight``, ``--max-mutating-requests-inflight``).

Past saturation a proxy that takes every request only makes each of them slower: the event loop shares one
core among all of them, and each holds a connection to kube-apiserver. So, as kube-apiserver does, at most
so many requests are worked on at once, counted apart for reads (GET, HEAD) and for writes; one more is
answered 429 with ``Retry-After: 1`` at once, which client-go honours by waiting and trying again.
Long-running requests (watches, followed logs, exec/attach/port-forward, proxy) are not counted: they
may last hours and cost nothing while idle. 0 turns a limit off.

Unlike kube-apiserver the limit applies before authentication: verifying a token is the work it spares.
"""

from __future__ import annotations

from typing import Final

READ_METHODS: Final = frozenset({b"GET", b"HEAD"})  # kube-apiserver's get, list and watch verbs
# Idle connections to kube-apiserver kept for reuse: at least this many (reviews, and streams over HTTP/1.1,
# are not counted by the limits) and at most that many (each holds a descriptor and its TLS state).
IDLE_FLOOR: Final = 128
IDLE_CEILING: Final = 1024


def idle_connections(max_reads: int, max_mutating: int) -> int:
    """How many idle connections to kube-apiserver to keep: as many as the limits let run at once. A pool
    that keeps fewer closes a connection after a request only to open another (a TLS handshake on both
    sides) for the next one: past its size every request pays a handshake, and under load the proxy then
    serves a fraction of what it can."""
    if not max_reads or not max_mutating:
        return IDLE_CEILING
    return min(max(max_reads + max_mutating, IDLE_FLOOR), IDLE_CEILING)


def is_mutating(method: bytes) -> bool:
    return method not in READ_METHODS


class InflightLimit:
    __slots__ = ("max_mutating", "max_reads", "mutating", "reads")

    def __init__(self, max_reads: int, max_mutating: int) -> None:
        self.max_reads = max_reads
        self.max_mutating = max_mutating
        self.reads = 0
        self.mutating = 0

    def enter(self, mutating: bool) -> bool:
        """Count one more request of the kind, or say False when the kind is at its limit."""
        if mutating:
            if self.max_mutating and self.mutating >= self.max_mutating:
                return False
            self.mutating += 1
        else:
            if self.max_reads and self.reads >= self.max_reads:
                return False
            self.reads += 1
        return True

    def leave(self, mutating: bool) -> None:
        if mutating:
            self.mutating -= 1
        else:
            self.reads -= 1
