"""A small async HTTPS client for OIDC discovery, JWKS and the token endpoint: one request per connection,
bounded in time and size.

Off the hot path (a few fetches an hour, a login now and then), so simplicity wins over pooling. It uses the
same response reader as the proxy, so there is one HTTP/1.1 implementation to test.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from kube_oidc_proxy import __version__
from kube_oidc_proxy.errors import UpstreamError, describe
from kube_oidc_proxy.http1.events import Body, MessageEnd, ResponseHead
from kube_oidc_proxy.http1.headers import Headers
from kube_oidc_proxy.http1.response import ResponseReader
from kube_oidc_proxy.http1.serialize import request_head

USER_AGENT: Final = f"kube-oidc-proxy/{__version__}".encode()
READ_SIZE: Final = 64 * 1024


class FetchError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class FetchResponse:
    status: int
    headers: Headers
    body: bytes


async def fetch(url: str, ssl_context: ssl.SSLContext, *, timeout: float, max_bytes: int) -> FetchResponse:
    """The response to ``GET url``; every failure is a ``FetchError`` whose message starts with
    ``GET <url>:``, so a log line or a readiness check says which peer failed, and how."""
    return await _bounded(b"GET", url, [], b"", ssl_context, timeout=timeout, max_bytes=max_bytes)


async def post_form(
    url: str, form: bytes, ssl_context: ssl.SSLContext, *, headers: Headers, timeout: float, max_bytes: int
) -> FetchResponse:
    """The response to ``POST url`` with a form body (the token endpoint); failures as ``fetch``'s, with
    messages that name the URL but never the body (it carries codes, secrets and refresh tokens)."""
    extra = [(b"Content-Type", b"application/x-www-form-urlencoded"), *headers]
    return await _bounded(b"POST", url, extra, form, ssl_context, timeout=timeout, max_bytes=max_bytes)


async def _bounded(
    method: bytes,
    url: str,
    headers: Headers,
    body: bytes,
    ssl_context: ssl.SSLContext,
    *,
    timeout: float,
    max_bytes: int,
) -> FetchResponse:
    what = f"{method.decode()} {url}"
    try:
        return await asyncio.wait_for(_fetch(method, url, headers, body, ssl_context, max_bytes=max_bytes), timeout)
    except TimeoutError:
        raise FetchError(f"{what}: timed out after {timeout:g}s") from None
    except (OSError, ssl.SSLError, UnicodeError) as exc:  # UnicodeError: a host name IDNA cannot encode
        raise FetchError(f"{what}: {describe(exc)}") from None
    except UpstreamError as exc:
        raise FetchError(f"{what}: {exc.detail}") from None


async def _fetch(
    method: bytes, url: str, headers: Headers, body_out: bytes, ssl_context: ssl.SSLContext, *, max_bytes: int
) -> FetchResponse:
    what = f"{method.decode()} {url}"
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise FetchError(f"{what}: only https URLs are fetched")
    port = parts.port or 443
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    reader, writer = await asyncio.open_connection(
        parts.hostname, port, ssl=ssl_context, server_hostname=parts.hostname
    )
    try:
        length = [(b"Content-Length", str(len(body_out)).encode())] if method != b"GET" else []
        writer.write(
            request_head(
                method,
                target.encode(),
                [
                    (b"Host", parts.netloc.encode()),
                    (b"Accept", b"application/json"),
                    (b"User-Agent", USER_AGENT),
                    (b"Connection", b"close"),
                    *headers,
                    *length,
                ],
            )
            + body_out
        )
        parser = ResponseReader()
        parser.expect(head_only=False)
        head: ResponseHead | None = None
        body: list[bytes] = []
        size = 0
        while True:
            data = await reader.read(READ_SIZE)
            events = parser.feed(data) if data else parser.eof()
            for event in events:
                if isinstance(event, ResponseHead):
                    head = event
                elif isinstance(event, Body):
                    size += len(event.data)
                    if size > max_bytes:
                        raise FetchError(f"{what}: response larger than {max_bytes} bytes")
                    body.append(event.data)
                elif isinstance(event, MessageEnd) and head is not None:
                    return FetchResponse(head.status, head.headers, b"".join(body))
            if not data:
                raise FetchError(f"{what}: connection closed before the response ended")
    finally:
        writer.close()
