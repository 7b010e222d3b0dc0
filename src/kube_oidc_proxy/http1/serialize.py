"""Bytes we write: request and response heads, chunked framing, canned error responses.

Heads are built as one list and joined once. Status lines are precomputed at import.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Final

from kube_oidc_proxy.http1.headers import Headers
from kube_oidc_proxy.status import status_body

STATUS_LINES: Final[dict[int, bytes]] = {
    s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus
}
LAST_CHUNK: Final = b"0\r\n\r\n"


def request_head(method: bytes, target: bytes, headers: Headers) -> bytes:
    parts = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def response_head(status: int, reason: bytes, headers: Headers) -> bytes:
    line = STATUS_LINES.get(status) if not reason else None
    parts = [line or b"HTTP/1.1 %d %s\r\n" % (status, reason or b"Unknown")]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def chunk(data: bytes) -> list[bytes]:
    """One chunk of a chunked body (RFC 9112 §7.1), as pieces for ``writelines``."""
    return [b"%x\r\n" % len(data), data, b"\r\n"]


def status_headers(body: bytes) -> Headers:
    """The headers of a Kubernetes ``Status`` response (kube-apiserver's), whatever the protocol."""
    return [
        (b"Content-Type", b"application/json"),
        (b"Cache-Control", b"no-cache, private"),
        (b"X-Content-Type-Options", b"nosniff"),
        (b"Content-Length", str(len(body)).encode()),
    ]


def status_response(code: int, message: str, *, close: bool, extra: Headers | None = None) -> bytes:
    """A complete response carrying a Kubernetes ``Status`` body."""
    body = status_body(code, message)
    headers = status_headers(body)
    if extra:
        headers += extra
    if close:
        headers.append((b"Connection", b"close"))
    return response_head(code, b"", headers) + body


CONTINUE_100: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
