"""Logins between ``GET /login`` and the IdP's redirect back: state -> what the callback must check.

Invariants: a state is used once (``pop`` removes it, whatever the outcome); an entry lives ``LIFETIME_SECONDS``
(the cookie's Max-Age); the table holds at most ``limit`` entries, so a flood of ``/login`` requests costs
bounded memory and, once full, new logins are refused (503) rather than older ones pushed out. Every entry
has the same lifetime, so insertion order is expiry order: expired entries are dropped from the front.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

LIFETIME_SECONDS: Final = 600.0  # 10 minutes to sign in at the IdP (the cookie's Max-Age too)
DEFAULT_LIMIT: Final = 10_000  # ~1.5 KB each: ~15 MB at most


@dataclass(frozen=True, slots=True)
class PendingLogin:
    nonce: str
    verifier: str  # the PKCE code verifier
    issuer: str
    redirect_uri: str  # sent again with the code (RFC 6749 §4.1.3)
    browser: bytes  # SHA-256 of the browser's login cookie: the callback must come from the same browser
    expires_at: float


class PendingLogins:
    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._entries: OrderedDict[str, PendingLogin] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def _drop_expired(self, now: float) -> None:
        entries = self._entries
        while entries:
            state, first = next(iter(entries.items()))
            if first.expires_at > now:
                return
            del entries[state]

    def add(self, state: str, login: PendingLogin, now: float) -> bool:
        """Remember a login; False when the table is full of live ones (the login is not started)."""
        self._drop_expired(now)
        if len(self._entries) >= self.limit:
            return False
        self._entries[state] = login
        return True

    def pop(self, state: str, now: float) -> PendingLogin | None:
        """The login for ``state``, once: None if unknown, already used or expired."""
        self._drop_expired(now)
        login = self._entries.pop(state, None)
        if login is None or login.expires_at <= now:
            return None
        return login
