"""States this process has taken a callback for: a state is used once.

The sealed cookie carries a login to any process, so one use must be kept apart from it. Here, in this
process: a state is remembered from its callback until any cookie that could still carry it has expired
(``LIFETIME_SECONDS`` later). Elsewhere: the browser's cookie is cleared by the first callback, and the IdP's
code is one use, so a replay at another worker or replica holds a spent code and the token endpoint refuses it.

Bounded: at most ``limit`` states, so a flood of callbacks (each needs a cookie from a ``/login`` of its own)
costs bounded memory; once full of live entries, callbacks are refused (503) rather than older states
forgotten, which would let them be replayed. Every entry lives as long, so insertion order is expiry order.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from typing import Final

from kube_oidc_proxy.login.pending import LIFETIME_SECONDS

DEFAULT_LIMIT: Final = 10_000  # ~200 bytes each: ~2 MB at most


class Spend(enum.Enum):
    FIRST = "first"  # the state's first callback here: go on
    USED = "used"  # a callback for it was taken already
    FULL = "full"  # too many recent callbacks to remember one more


class SpentStates:
    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._until: OrderedDict[str, float] = OrderedDict()  # state -> when it may be forgotten

    def __len__(self) -> int:
        return len(self._until)

    def _drop_expired(self, now: float) -> None:
        entries = self._until
        while entries:
            state, until = next(iter(entries.items()))
            if until > now:
                return
            del entries[state]

    def used(self, state: str, now: float) -> bool:
        self._drop_expired(now)
        return state in self._until

    def full(self, now: float) -> bool:
        self._drop_expired(now)
        return len(self._until) >= self.limit

    def spend(self, state: str, now: float) -> Spend:
        """Take ``state``'s callback, once."""
        if self.used(state, now):
            return Spend.USED
        if len(self._until) >= self.limit:
            return Spend.FULL
        self._until[state] = now + LIFETIME_SECONDS
        return Spend.FIRST
