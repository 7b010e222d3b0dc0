"""A small async HTTPS GET for OIDC discovery and JWKS: one request per connection, bounded in time and size.

Off the hot path (a few fetches an hour), so simplicity wins over pooling. It uses the same response
reader as the proxy, so there is one HTTP/1.1 implementation to test.
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
    try:
        return await asyncio.wait_for(_fetch(url, ssl_context, max_bytes), timeout)
    except TimeoutError:
        raise FetchError(f"GET {url}: timed out after {timeout:g}s") from None
    except (OSError, ssl.SSLError, UnicodeError) as exc:  # UnicodeError: a host name IDNA cannot encode
        raise FetchError(f"GET {url}: {describe(exc)}") from None
    except UpstreamError as exc:
        raise FetchError(f"GET {url}: {exc.detail}") from None


async def _fetch(url: str, ssl_context: ssl.SSLContext, max_bytes: int) -> FetchResponse:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise FetchError(f"GET {url}: only https URLs are fetched")
    port = parts.port or 443
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    reader, writer = await asyncio.open_connection(
        parts.hostname, port, ssl=ssl_context, server_hostname=parts.hostname
    )
    try:
        writer.write(
            request_head(
                b"GET",
                target.encode(),
                [
                    (b"Host", parts.netloc.encode()),
                    (b"Accept", b"application/json"),
                    (b"User-Agent", USER_AGENT),
                    (b"Connection", b"close"),
                ],
            )
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
                        raise FetchError(f"GET {url}: response larger than {max_bytes} bytes")
                    body.append(event.data)
                elif isinstance(event, MessageEnd) and head is not None:
                    return FetchResponse(head.status, head.headers, b"".join(body))
            if not data:
                raise FetchError(f"GET {url}: connection closed before the response ended")
    finally:
        writer.close()
