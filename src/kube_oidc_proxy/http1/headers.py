"""Header lists and the hop-by-hop rules of RFC 9110 §7.6.1.

Request headers are ``list[tuple[bytes, bytes]]`` with lower-case names (the parser lower-cases them once),
in the order received, repeated names kept as separate entries: kube-apiserver needs repeated
``X-Stream-Protocol-Version`` lines to stay separate (kubernetes/kubernetes#89849).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

Headers = list[tuple[bytes, bytes]]

# RFC 9110 §5.6.2: the characters of a token (header names; extra keys are kept unescaped within them).
TCHAR: Final = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")

# RFC 9110 §7.6.1 plus the de-facto ones (Keep-Alive, Proxy-Connection) every proxy drops.
HOP_BY_HOP: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)


# Request headers the proxy decides: framing, routing, the caller's credential and identity, where a request
# came from and its audit ID. The proxy removes every client spelling of them and sets its own; a client's
# ``Connection`` header may not name them (HTTP/2 refuses connection-specific headers outright), because
# removing a framing header while still sending the body is how a request is smuggled.
PROXY_OWNED: Final = frozenset(
    {
        b"content-length",
        b"transfer-encoding",
        b"host",
        b"authorization",
        b"proxy-authorization",
        b"sec-websocket-protocol",
        b"audit-id",
        b"x-forwarded-for",
        b"x-real-ip",
    }
)
PROXY_OWNED_PREFIXES: Final = (b"impersonate-", b"x-remote-")


def spelling(lower_name: bytes) -> bytes:
    """The name a downstream layer may read: CGI-style servers and some proxies map ``_`` to ``-``."""
    return lower_name.replace(b"_", b"-")


def is_proxy_owned(lower_name: bytes) -> bool:
    """True for every spelling (case, underscores) of a header only the proxy may set."""
    name = spelling(lower_name)
    return name in PROXY_OWNED or name.startswith(PROXY_OWNED_PREFIXES)


def get_all(headers: Headers, name: bytes) -> list[bytes]:
    """Every value of ``name`` (lower-case), in order."""
    return [v for n, v in headers if n == name]


def get_one(headers: Headers, name: bytes) -> bytes | None:
    """The first value of ``name`` (lower-case), or None."""
    for n, v in headers:
        if n == name:
            return v
    return None


def comma_tokens(values: Iterable[bytes]) -> list[bytes]:
    """Split comma-separated list headers (``Connection``, ``Sec-WebSocket-Protocol``) into trimmed items."""
    out: list[bytes] = []
    for value in values:
        for item in value.split(b","):
            item = item.strip()
            if item:
                out.append(item)
    return out


def connection_options(headers: Headers) -> frozenset[bytes]:
    """Lower-cased tokens of every ``Connection`` header: these name more hop-by-hop headers."""
    return frozenset(t.lower() for t in comma_tokens(get_all(headers, b"connection")))


def is_hop_by_hop(lower_name: bytes, connection_opts: frozenset[bytes]) -> bool:
    return lower_name in HOP_BY_HOP or lower_name in connection_opts
