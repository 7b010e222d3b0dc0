"""Header lists and the hop-by-hop rules of RFC 9110 §7.6.1.

Request headers are ``list[tuple[bytes, bytes]]`` with lower-case names (the parser lower-cases them once),
in the order received, repeated names kept as separate entries: kube-apiserver needs repeated
``X-Stream-Protocol-Version`` lines to stay separate (kubernetes/kubernetes#89849).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

Headers = list[tuple[bytes, bytes]]

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
