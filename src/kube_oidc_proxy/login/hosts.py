"""The request's Host header, accepted only in a strict ``host[:port]`` syntax, because it becomes the default
redirect URL (``https://<host>/login/callback``) and the kubeconfig's ``server``.

A DNS name (letters, digits, hyphens, dots: RFC 1123 labels), an IPv4 address, or an IPv6 address in brackets,
then an optional port 1-65535. No user info, path, query, whitespace, percent-encoding or second value:
anything else is a 400, so no crafted Host can turn the redirect or the kubeconfig into somewhere else.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

_LABEL: Final = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST: Final = re.compile(
    rf"(?:(?P<name>{_LABEL}(?:\.{_LABEL})*)|\[(?P<v6>[0-9A-Fa-f:.]+)\])(?::(?P<port>[0-9]{{1,5}}))?"
)
MAX_NAME: Final = 253  # RFC 1035 §2.3.4


def parse_host(value: bytes | None) -> str | None:
    """The Host header as ``host[:port]`` (names lower-cased), or None when it is not exactly that."""
    if value is None or len(value) > MAX_NAME + 8:
        return None
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        return None
    match = _HOST.fullmatch(text)
    if match is None:
        return None
    port = match["port"]
    if port is not None and not 1 <= int(port) <= 65535:
        return None
    if match["v6"] is not None:
        try:
            address = ipaddress.IPv6Address(match["v6"])
        except ValueError:
            return None
        host = f"[{address.compressed}]"
    else:
        host = match["name"].lower()
        if len(host) > MAX_NAME:
            return None
    return host if port is None else f"{host}:{int(port)}"
