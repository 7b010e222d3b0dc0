"""Pure decisions about what is relayed: the headers of kube-apiserver's answer as the client gets them,
how an HTTP/1.1 client's response is framed, the request headers for an HTTP/2 stream upstream, and when a
request may be sent again.

No sockets, no state: table-tested in tests/unit/server/test_relayed.py.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from kube_oidc_proxy.http1.events import Framing
from kube_oidc_proxy.http1.headers import Headers, connection_options, is_hop_by_hop

# Retrying is safe only where a lost response cannot mean a change was made (RFC 9110 §9.2.2, and
# Go's transport rule: only requests without a body, on a reused connection, before any response byte).
RETRYABLE_METHODS: Final = frozenset({b"GET", b"HEAD", b"OPTIONS"})
NO_OPTIONS: Final[frozenset[bytes]] = frozenset()  # no Connection header: nothing more is hop-by-hop


# The answers below are named tuples: immutable like a frozen dataclass, and a third of its cost to make
# (one of each per request).
class RelayedHead(NamedTuple):
    """kube-apiserver's response headers for the client, whatever the protocol on either side."""

    headers: Headers  # end to end only: hop-by-hop and Connection-named headers dropped
    watch: bool  # a watch stream (``Content-Type: ...;stream=watch``): ended at an event boundary on shutdown


def relayed_head(upstream_headers: Headers, audit_id: bytes) -> RelayedHead:
    """Drop what belongs to the upstream hop; make sure the Audit-ID the proxy chose is on the answer
    (kube-apiserver echoes it; a kubelet behind pods/proxy may not)."""
    # response header names keep their case: each is lowered once, and the Connection header is found
    # whatever its spelling
    lowered_names = [name.lower() for name, _ in upstream_headers]
    dropped = NO_OPTIONS
    if b"connection" in lowered_names:
        named = zip(lowered_names, upstream_headers, strict=True)
        dropped = connection_options([(lowered, value) for lowered, (_, value) in named if lowered == b"connection"])
    headers: Headers = []
    watch = False
    has_audit_id = False
    for lowered, (name, value) in zip(lowered_names, upstream_headers, strict=True):
        if is_hop_by_hop(lowered, dropped):
            continue
        if lowered == b"content-type" and b"stream=watch" in value:
            watch = True
        elif lowered == b"audit-id":
            has_audit_id = True
        headers.append((name, value))
    if not has_audit_id:
        headers.append((b"Audit-Id", audit_id))
    return RelayedHead(headers, watch)


class Http1Framing(NamedTuple):
    """How an HTTP/1.1 response to the client is delimited, and whether the connection stays open."""

    chunked: bool  # re-chunked: the upstream body had no length (chunked, or ended by close)
    keep_alive: bool
    headers: Headers  # what to add: Transfer-Encoding, Connection: close


def http1_framing(
    upstream: Framing, *, client_version: str, keep_alive: bool, request_read: bool, stopping: bool
) -> Http1Framing:
    """``keep_alive``: both sides agreed to it for this request (and it is not an upgrade); ``request_read``:
    the client's request body was read to its end, so the next bytes on the connection are a new request."""
    keep = keep_alive and request_read and not stopping
    chunked = False
    headers: Headers = []
    if upstream in ("chunked", "close"):
        if client_version == "1.1":
            chunked = True
            headers.append((b"Transfer-Encoding", b"chunked"))
        else:
            keep = False  # HTTP/1.0: the body ends when the connection closes
    if not keep:
        headers.append((b"Connection", b"close"))
    return Http1Framing(chunked, keep, headers)


def h2_request_headers(method: bytes, target: bytes, authority: bytes, outbound: Headers) -> Headers:
    """An HTTP/2 request to kube-apiserver: the pseudo-headers first (RFC 9113 §8.3), then the proxy's
    outbound headers without ``host`` (``:authority`` says it) or anything connection-specific, which
    HTTP/2 forbids (§8.2.2)."""
    headers: Headers = [(b":method", method), (b":scheme", b"https"), (b":authority", authority), (b":path", target)]
    headers += [(n, v) for n, v in outbound if n != b"host" and not is_hop_by_hop(n, frozenset())]
    return headers


def may_retry(method: bytes, framing: Framing, *, reused: bool, received: bool, timed_out: bool) -> bool:
    """Whether a request whose upstream connection failed may go once more, on a new connection: only one
    with no body and a safe method, sent on a reused keep-alive connection that kube-apiserver had closed
    before any byte of its answer (Go's transport does the same), and not after --request-timeout."""
    return method in RETRYABLE_METHODS and framing == "none" and reused and not received and not timed_out
