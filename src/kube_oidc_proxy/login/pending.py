"""A login between ``GET /login`` and the IdP's redirect back: what the callback must check, and how long
it may take.

No process keeps it: ``/login`` seals it into a cookie of the browser that started it (``sealed``,
``cookies``), so the callback can reach any worker of ``--workers`` or any replica behind a Service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

LIFETIME_SECONDS: Final = 600.0  # 10 minutes to sign in at the IdP (the cookie's Max-Age too)


@dataclass(frozen=True, slots=True)
class PendingLogin:
    state: str  # what the IdP sends back; it names the cookie and is sealed in it
    nonce: str
    verifier: str  # the PKCE code verifier
    issuer: str
    redirect_uri: str  # sent again with the code (RFC 6749 §4.1.3)
    expires_at: float
