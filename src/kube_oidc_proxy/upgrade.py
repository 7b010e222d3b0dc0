"""Whether a 101 switches to what was asked: the last check before a connection becomes an unparsed tunnel.

After a 101 the proxy relays bytes both ways and never parses again, so the 101 must answer the upgrade the
request offered, and nothing else: the protocol named in ``Upgrade`` (RFC 9110 §7.8), compared without case as
kube-apiserver and Go's reverse proxy compare it (``httputil.ReverseProxy``: "backend tried to switch protocol
%q when %q was requested", a 502), with ``Connection: upgrade`` beside it, as RFC 9110 requires and Go's reverse
proxy reads. For WebSocket, also RFC 6455 §4.1's client checks, which prove the server took this very handshake:
``Sec-WebSocket-Accept`` is the digest of the request's ``Sec-WebSocket-Key``, and a chosen subprotocol is one
the request offered (never the bearer token one, which only the passthrough mode forwards, and which no server
should echo). Every WebSocket client makes these checks too (client-go's gorilla dialer: the accept key), so no
101 a real client takes is refused here. SPDY/3.1 has no such proof; client-go checks the same two headers.

Pure: the request's headers as they went upstream (lower-case names) and the 101's (names as received) in, the
reason it is refused (for the log, never shown to the client) or None out.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Final

from kube_oidc_proxy.authn.bearer import WS_TOKEN_PREFIX
from kube_oidc_proxy.http1.headers import Headers, comma_tokens, get_all

# RFC 6455 §1.3: the GUID appended to the key before hashing.
WEBSOCKET_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def websocket_accept(key: bytes) -> bytes:
    """The ``Sec-WebSocket-Accept`` that answers ``Sec-WebSocket-Key: key`` (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + WEBSOCKET_GUID).digest())  # noqa: S324 - the protocol's digest


def _lowered(headers: Headers) -> Headers:
    return [(name.lower(), value) for name, value in headers]


def switch_problem(request: Headers, response: Headers) -> str | None:
    """Why the 101 with ``response`` headers does not switch to the protocol ``request`` asked for, or None."""
    response = _lowered(response)
    asked = comma_tokens(get_all(request, b"upgrade"))
    if len(asked) != 1:
        return "the request asked for no single protocol"
    answered = comma_tokens(get_all(response, b"upgrade"))
    if [a.lower() for a in answered] != [asked[0].lower()]:
        shown = b", ".join(answered).decode("latin-1") if answered else "none"
        return f"kube-apiserver switched to {shown!r}, not to the {asked[0].decode('latin-1')!r} asked for"
    if b"upgrade" not in (t.lower() for t in comma_tokens(get_all(response, b"connection"))):
        return "the 101 has no Connection: upgrade"
    if asked[0].lower() == b"websocket":
        return _websocket_problem(request, response)
    return None


def _websocket_problem(request: Headers, response: Headers) -> str | None:
    keys = get_all(request, b"sec-websocket-key")
    accepts = get_all(response, b"sec-websocket-accept")
    if len(keys) != 1 or accepts != [websocket_accept(keys[0])]:
        return "the 101 does not accept this WebSocket handshake (Sec-WebSocket-Accept)"
    chosen = comma_tokens(get_all(response, b"sec-websocket-protocol"))  # an empty value chooses none (Go's x/net)
    if not chosen:
        return None
    offered = [
        p for p in comma_tokens(get_all(request, b"sec-websocket-protocol")) if not p.startswith(WS_TOKEN_PREFIX)
    ]
    if len(chosen) != 1 or chosen[0] not in offered:
        return "the 101 chose a WebSocket subprotocol the request did not offer"
    return None
