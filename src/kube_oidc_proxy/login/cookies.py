"""The login cookie: it binds a pending login to the browser that started it.

``__Host-`` (RFC 6265bis §4.1.3.2): the browser accepts it only with Secure, Path=/ and no Domain, so no
other host (a sibling subdomain) can plant one. HttpOnly, SameSite=Lax (the IdP's redirect back is a
top-level GET, which Lax lets through) and short-lived: Max-Age is the pending login's lifetime.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Final

from kube_oidc_proxy.login.pending import LIFETIME_SECONDS

NAME: Final = "__Host-kop-login"
_VALUE: Final = re.compile(r"[A-Za-z0-9_-]{43}")  # oidcclient.random_token(): 32 bytes, URL-safe base64


def set_cookie(value: str) -> bytes:
    return f"{NAME}={value}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={int(LIFETIME_SECONDS)}".encode()


def browser_cookie(cookie_headers: Iterable[bytes]) -> str | None:
    """Our cookie's value from the request's Cookie headers (HTTP/2 may split them), if it is one we could
    have set; a value of any other shape is ignored."""
    for header in cookie_headers:
        for pair in header.split(b";"):
            name, sep, value = pair.strip().partition(b"=")
            if sep and name == NAME.encode():
                text = value.decode("latin-1")
                return text if _VALUE.fullmatch(text) else None
    return None


def browser_hash(value: str) -> bytes:
    """What a pending login keeps of the cookie: its hash, so the table holds no usable cookie."""
    return hashlib.sha256(value.encode("ascii")).digest()
