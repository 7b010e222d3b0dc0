"""The discovery/JWKS client's failures name the URL they came from, and say what happened."""

from __future__ import annotations

import asyncio
import ssl

import pytest

from kube_oidc_proxy.httpclient import FetchError, fetch
from tests.support.ports import PortHolder


async def test_a_refused_connection_names_the_url_and_the_error(ports: PortHolder) -> None:
    url = f"https://127.0.0.1:{ports.take()}/.well-known/openid-configuration"  # held, nobody listens
    with pytest.raises(FetchError) as failure:
        await fetch(url, ssl.create_default_context(), timeout=5, max_bytes=1024)
    assert str(failure.value).startswith(f"GET {url}: ConnectionRefusedError: ")


async def test_a_peer_that_never_answers_is_a_timeout_naming_the_url() -> None:
    server = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)  # accepts, says nothing
    url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/keys"
    try:
        with pytest.raises(FetchError) as failure:
            await fetch(url, ssl.create_default_context(), timeout=0.2, max_bytes=1024)
    finally:
        server.close()
    assert str(failure.value) == f"GET {url}: timed out after 0.2s"


async def test_a_peer_that_is_not_tls_names_the_url_and_the_tls_error() -> None:
    async def plain_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(plain_http, "127.0.0.1", 0)
    url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/keys"
    try:
        with pytest.raises(FetchError) as failure:
            await fetch(url, ssl.create_default_context(), timeout=5, max_bytes=1024)
    finally:
        server.close()
    assert str(failure.value).startswith(f"GET {url}: SSL")
