"""An HTTP/2 request's header block as the exchange reads it: the same ``RequestHead`` an HTTP/1.1 request
gives, checked by the same rules.

The h2 library has already refused what RFC 9113 §8.2 calls malformed (upper-case or empty names, NUL,
CR or LF in a value, whitespace around one, connection-specific fields such as ``Connection`` and
``Upgrade``, a ``TE`` other than ``trailers``, pseudo-header fields out of place, repeated or missing,
conflicting ``content-length``): the whole connection is closed for those. What HTTP/1.1's reader refuses
beyond that is refused here too, for one stream, with a Status: names that are not tokens and control
bytes in values (kube-apiserver's Go server refuses both, and the request would otherwise be checked here
in a form it does not read), more fields than ``DEFAULT_MAX_HEADERS``, a ``Host`` that disagrees with
``:authority``, CONNECT, a method that is not a token, a ``:path`` with spaces, controls or non-ASCII bytes
(forwarded in an HTTP/1.1 request line, a space would end the target and start something else), targets
that are not origin-form or that Go cannot decode.

Upgrades (exec, attach, port-forward, and so cp) do not exist in HTTP/2 (kubectl and client-go ask for
HTTP/1.1 for them): such a request gets a Status that says so instead of kube-apiserver's bare 400.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import unquote_to_bytes

from kube_oidc_proxy.errors import ClientProtocolError, HeadersTooLarge
from kube_oidc_proxy.http1.events import Framing, RequestHead
from kube_oidc_proxy.http1.headers import TCHAR, Headers
from kube_oidc_proxy.http1.request import DEFAULT_MAX_HEADERS, check_target
from kube_oidc_proxy.requestinfo import request_info

# Bytes no value may hold: C0 controls but HTAB, and DEL (Go's httpguts.ValidHeaderFieldValue; llhttp).
_CONTROL_BYTES: Final = bytes([*range(0x09), *range(0x0A, 0x20), 0x7F])
_TOKEN_BYTES: Final = bytes(sorted(TCHAR))
# What a request line may carry in its target: llhttp's rule (and Go's), visible ASCII only. HTTP/2 allows
# spaces and controls in :path; forwarded over HTTP/1.1 they would end the target early.
_TARGET_BYTES: Final = bytes(range(0x21, 0x7F))
_UPGRADE_SUBRESOURCES: Final = frozenset({"exec", "attach", "portforward"})
UPGRADE_OVER_H2: Final = (
    "exec, attach, port-forward and cp need an HTTP/1.1 connection upgrade, which HTTP/2 does not have; "
    "connect with HTTP/1.1 for them (kubectl and client-go do)"
)


def request_head(fields: Headers, *, ended: bool) -> RequestHead:
    """The head of a request whose header block was ``fields``; ``ended``: it has no body (END_STREAM).
    Raises ``ClientProtocolError`` (with its status code) for a request that is refused."""
    method = target = authority = b""
    headers: Headers = []
    hosts: list[bytes] = []
    content_length: int | None = None
    expect_continue = False
    size = 0
    for name, value in fields:
        size += len(name) + len(value) + 4
        if name[:1] == b":":
            if name == b":method":
                method = value
            elif name == b":path":
                target = value
            elif name == b":authority":
                authority = value
            continue  # :scheme: the proxy serves https only
        if name.translate(None, _TOKEN_BYTES):
            raise ClientProtocolError(f"malformed HTTP/2 request: invalid header name {name!r}")
        if value != value.translate(None, _CONTROL_BYTES):
            raise ClientProtocolError(f"malformed HTTP/2 request: a control byte in the value of {name!r}")
        if name == b"host":
            hosts.append(value)
        elif name == b"content-length":
            content_length = int(value)  # h2 checked: digits only, repeats agree
        elif name == b"expect" and value.lower() == b"100-continue":
            expect_continue = True
        headers.append((name, value))
    if len(headers) > DEFAULT_MAX_HEADERS:
        raise HeadersTooLarge(f"more than {DEFAULT_MAX_HEADERS} request header fields")
    if not method or method.translate(None, _TOKEN_BYTES):
        raise ClientProtocolError("malformed HTTP/2 request: the method is not a token")
    if target.translate(None, _TARGET_BYTES):
        raise ClientProtocolError("malformed HTTP/2 request: a space, control or non-ASCII byte in :path")
    check_target(method, target)  # CONNECT is refused here (405)
    if len(hosts) > 1 or (hosts and authority and hosts[0] != authority):
        raise ClientProtocolError("malformed HTTP/2 request: Host disagrees with :authority")
    if authority and not hosts:
        headers.append((b"host", authority))  # as Go's server fills in Request.Host
    if _asks_for_upgrade(method, target):
        raise ClientProtocolError(UPGRADE_OVER_H2)
    framing: Framing = "none" if ended or content_length == 0 else ("length" if content_length else "chunked")
    return RequestHead(
        method=method,
        target=target,
        http_version="2",
        headers=headers,
        keep_alive=True,
        upgrade=False,
        framing=framing,
        content_length=content_length if framing == "length" else None,
        expect_continue=expect_continue and framing != "none",
        head_size=size,
    )


def _asks_for_upgrade(method: bytes, target: bytes) -> bool:
    spelled = target if b"%" not in target else unquote_to_bytes(target)
    if b"exec" not in spelled and b"attach" not in spelled and b"portforward" not in spelled:
        return False  # the usual request: decided without parsing
    info = request_info(method, target)
    return info.resource == "pods" and info.subresource in _UPGRADE_SUBRESOURCES
