"""Per client address token buckets for the login pages: ``RATE`` pages a second, ``BURST`` at once.

A login is about six requests (the redirect, the callback, the stylesheet, two downloads), so the burst lets a
few people behind one NAT sign in at once, and the rate refills it in half a minute. The table of addresses is
bounded: past ``max_addresses`` the least recently seen address is forgotten (its next request starts with a
full bucket), so a spread of addresses costs bounded memory. The address is the client's after
``--trusted-proxy-cidrs``. Time is an input: no clock is read here.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Final

RATE: Final = 1.0  # tokens a second
BURST: Final = 30
MAX_ADDRESSES: Final = 10_000


class RateLimiter:
    def __init__(self, rate: float = RATE, burst: int = BURST, max_addresses: int = MAX_ADDRESSES) -> None:
        self.rate = rate
        self.burst = burst
        self.max_addresses = max_addresses
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # address -> (tokens, at)

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, address: str, now: float) -> int:
        """0 if the request may go on (a token is spent), else the seconds to wait (for Retry-After)."""
        buckets = self._buckets
        known = buckets.pop(address, None)
        if known is None:
            tokens = float(self.burst)
            while len(buckets) >= self.max_addresses:
                buckets.popitem(last=False)
        else:
            tokens, at = known
            tokens = min(float(self.burst), tokens + max(now - at, 0.0) * self.rate)
        if tokens >= 1.0:
            buckets[address] = (tokens - 1.0, now)
            return 0
        buckets[address] = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) / self.rate))
