"""The login cookies: one per login, each holding that login sealed (``sealed``), named after its state.

One cookie per login, so two tabs signing in at once do not undo each other. The name is
``__Host-kop-login-`` and 16 characters of the state's SHA-256 (URL-safe base64): the callback finds its
cookie from the ``state`` parameter, and any state, however hostile, makes a plain cookie name.

``__Host-`` (RFC 6265bis §4.1.3.2): the browser accepts it only with Secure, Path=/ and no Domain, so no
other host (a sibling subdomain) can plant one. HttpOnly, SameSite=Lax (the IdP's redirect back is a
top-level GET, which Lax lets through) and short-lived: Max-Age is the pending login's lifetime. The
callback clears the cookie (Max-Age=0) once it has found it, whatever the outcome.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from typing import Final

from kube_oidc_proxy.login.pending import LIFETIME_SECONDS
from kube_oidc_proxy.login.sealed import MAX_TEXT

PREFIX: Final = "__Host-kop-login-"
_ATTRIBUTES: Final = "Path=/; Secure; HttpOnly; SameSite=Lax"


def name_for(state: str) -> str:
    digest = hashlib.sha256(state.encode("utf-8", "surrogatepass")).digest()
    return PREFIX + base64.urlsafe_b64encode(digest).decode("ascii")[:16]


def set_cookie(state: str, value: str) -> bytes:
    return f"{name_for(state)}={value}; {_ATTRIBUTES}; Max-Age={int(LIFETIME_SECONDS)}".encode()


def clear_cookie(state: str) -> bytes:
    return f"{name_for(state)}=; {_ATTRIBUTES}; Max-Age=0".encode()


def login_cookie(cookie_headers: Iterable[bytes], state: str) -> str | None:
    """The value of ``state``'s cookie in the request's Cookie headers (HTTP/2 may split them); the first one
    if it is sent twice, and None when it is absent, empty or too long to be one we set."""
    name = name_for(state).encode()
    for header in cookie_headers:
        for pair in header.split(b";"):
            key, sep, value = pair.strip().partition(b"=")
            if sep and key == name:
                return value.decode("latin-1") if 0 < len(value) <= MAX_TEXT else None
    return None
