"""When the proxy's own reviews (SubjectAccessReview, TokenReview) may go to kube-apiserver: client-go's
token bucket (``--kube-client-qps``, ``--kube-client-burst``), with bounds that a flood cannot pass.

- A review waits for its slot only if the slot comes before the review's deadline; one that cannot get
  a slot in time is refused at once (the caller answers 503), never queued past its deadline.
- At most ``max_waiting`` reviews wait at once (by default the burst, at least 10: 2 s of slots at
  50/s); beyond that, refused.
- One caller (a username for SubjectAccessReviews, a client's network for TokenReviews: its /24, or /64 for
  IPv6, as one host commonly holds many addresses of those) may hold at most ``caller_share`` of those
  waiting slots (a tenth). A flood of one caller then puts at most that many reviews ahead of anyone
  else's: another caller's review waits at most ``(caller_share + 1) / qps`` (0.22 s at the defaults) per
  flooding caller, instead of behind the whole flood.
- TokenReviews are asked for tokens nobody has verified yet, so anyone who can reach the proxy can cause
  them: together they hold at most half of the waiting slots. However many networks flood with garbage
  tokens, an authenticated caller's SubjectAccessReview still finds a slot, at most about
  ``max_waiting / 2 / qps`` (1 s at the defaults) behind them.

The readiness check does not take from this budget: it sends one request at a time (probe.py), and a
flood of reviews must not make the pod look unready.

Pure: ``reserve`` reads the clock it was given and returns how long to wait, or why not; the waiting is
the caller's.
"""

from __future__ import annotations

import ipaddress
import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum
from typing import Final

MIN_WAITING: Final = 10  # so that a small burst still leaves each caller a waiting slot
Caller = tuple[str, str]  # ("user", username) or ("network", client network): whose share a review is
UNVERIFIED: Final = "network"  # the kind of caller whose reviews are for tokens nobody has verified yet
IPV4_NETWORK_BITS: Final = 24
IPV6_NETWORK_BITS: Final = 64


def user(username: str) -> Caller:
    """An authenticated caller (its SubjectAccessReviews)."""
    return ("user", username)


def network(client_ip: str) -> Caller:
    """An unauthenticated client (its TokenReviews), by its network: one host often holds a whole /64."""
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return (UNVERIFIED, client_ip)
    bits = IPV4_NETWORK_BITS if address.version == 4 else IPV6_NETWORK_BITS
    return (UNVERIFIED, str(ipaddress.ip_network((address, bits), strict=False)))


class Throttled(StrEnum):
    """Why a review was not sent (a metric label)."""

    CALLER_SHARE = "caller_share"  # this caller already has its share of reviews waiting
    QUEUE_FULL = "queue_full"  # max_waiting reviews are waiting
    DEADLINE = "deadline"  # the next slot comes after the review's deadline
    UNVERIFIED_SHARE = "unverified_share"  # reviews of unverified tokens already hold half the waiting slots


class ReviewBudget:
    def __init__(
        self,
        qps: float,
        burst: int,
        *,
        max_waiting: int | None = None,
        caller_share: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._qps = qps  # <= 0: no limit
        self._burst = max(burst, 1)
        self.max_waiting = max_waiting if max_waiting is not None else max(self._burst, MIN_WAITING)
        self.caller_share = caller_share if caller_share is not None else max(1, self.max_waiting // 10)
        self.clock = clock
        self._tokens = float(self._burst)
        self._last = clock()
        self.unverified_share = self.max_waiting // 2
        self._waiting: deque[tuple[float, Caller]] = deque()  # when each waiting review may go; in that order
        self._waiting_by: dict[Caller, int] = {}
        self._unverified_waiting = 0

    @property
    def waiting(self) -> int:
        self._release(self.clock())
        return len(self._waiting)

    def reserve(self, caller: Caller, deadline: float) -> float | Throttled:
        """Seconds until this review may be sent (0: now), its slot then taken; or why it may not be sent."""
        if self._qps <= 0:
            return 0.0
        now = self.clock()
        self._release(now)
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._qps)
        self._last = now
        delay = 0.0 if self._tokens >= 1 else (1 - self._tokens) / self._qps
        if delay > 0:
            if self._waiting_by.get(caller, 0) >= self.caller_share:
                return Throttled.CALLER_SHARE
            unverified = caller[0] == UNVERIFIED
            if unverified and self._unverified_waiting >= self.unverified_share:
                return Throttled.UNVERIFIED_SHARE
            if len(self._waiting) >= self.max_waiting:
                return Throttled.QUEUE_FULL
            if now + delay > deadline:
                return Throttled.DEADLINE
            self._waiting.append((now + delay, caller))
            self._waiting_by[caller] = self._waiting_by.get(caller, 0) + 1
            self._unverified_waiting += unverified
        self._tokens -= 1
        return delay

    def _release(self, now: float) -> None:
        """Forget the reviews whose slot has come (their times only grow: each waits behind the last)."""
        while self._waiting and self._waiting[0][0] <= now:
            _, caller = self._waiting.popleft()
            self._unverified_waiting -= caller[0] == UNVERIFIED
            left = self._waiting_by[caller] - 1
            if left:
                self._waiting_by[caller] = left
            else:
                del self._waiting_by[caller]
