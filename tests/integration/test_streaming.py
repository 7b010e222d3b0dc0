"""Watches and other long responses: every event reaches the client at once, and nothing leaks when a
client goes away."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from typing import cast

from kube_oidc_proxy.config import Config
from kube_oidc_proxy.server.connection import ClientConnection
from tests.conftest import ProxyHandle, start_proxy
from tests.support.certs import CertFiles
from tests.support.client import Client
from tests.support.issuer import TestIssuer
from tests.support.upstream import RecordingUpstream

WATCH = "/api/v1/namespaces/default/pods?watch=true&resourceVersion=1"


async def _open_watch(proxy: ProxyHandle, target: str = WATCH) -> Client:
    client = await Client.connect(proxy.port, proxy.ca_file)
    await client.send_raw(
        f"GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {proxy.issuer.token()}\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"Transfer-Encoding: chunked" in head
    return client


async def _read_event(client: Client) -> dict[str, str]:
    size_line = await client.reader.readuntil(b"\r\n")
    data = await client.reader.readexactly(int(size_line, 16) + 2)
    return dict(json.loads(data[:-2]))


async def test_watch_events_reach_the_client_at_once(proxy: ProxyHandle) -> None:
    client = await _open_watch(proxy)
    try:
        for i in range(20):
            sent = time.monotonic()
            proxy.upstream.emit({"type": "ADDED", "object": {"name": f"pod-{i}"}})
            event = await asyncio.wait_for(_read_event(client), 5)
            latency = time.monotonic() - sent
            assert event == {"type": "ADDED", "object": {"name": f"pod-{i}"}}
            assert latency < 0.5, f"event {i} took {latency:.3f}s"  # generous for a loaded CI box; no flush interval
    finally:
        await client.close()


async def test_a_watch_ended_by_the_api_server_ends_cleanly(proxy: ProxyHandle) -> None:
    client = await _open_watch(proxy)
    try:
        proxy.upstream.emit({"type": "ADDED"})
        assert (await _read_event(client))["type"] == "ADDED"
        proxy.upstream.end_watches()
        assert await asyncio.wait_for(client.reader.readuntil(b"0\r\n\r\n"), 5) == b"0\r\n\r\n"
    finally:
        await client.close()


async def test_a_client_leaving_a_watch_closes_it_on_the_api_server(proxy: ProxyHandle) -> None:
    clients = [await _open_watch(proxy) for _ in range(5)]
    for _ in range(100):
        if proxy.upstream.open_watches == 5:
            break
        await asyncio.sleep(0.02)
    assert proxy.upstream.open_watches == 5
    for client in clients:
        client.writer.transport.abort()
    for _ in range(250):
        if proxy.upstream.watches_closed == 5:
            break
        await asyncio.sleep(0.02)
    assert proxy.upstream.watches_closed == 5


async def test_a_slow_reader_gets_a_large_response_intact(proxy: ProxyHandle) -> None:
    client = await Client.connect(proxy.port, proxy.ca_file)
    try:
        await client.send_raw(
            f"GET /big/20000000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {proxy.issuer.token()}\r\n\r\n".encode()
        )
        await asyncio.sleep(1.0)  # let the proxy hit back-pressure before we read anything
        buffered = [cast(ClientConnection, c).transport.get_write_buffer_size() for c in proxy.app.proxy.connections]
        assert buffered and max(buffered) < 1024 * 1024, f"the proxy buffered {buffered} bytes for a slow reader"
        head = await client.reader.readuntil(b"\r\n\r\n")
        assert b"content-length: 20000000" in head.lower()
        body = await asyncio.wait_for(client.reader.readexactly(20_000_000), 30)
        assert body == b"x" * 20_000_000
    finally:
        await client.close()


async def test_watches_share_a_few_http2_connections_to_the_api_server(proxy: ProxyHandle) -> None:
    clients = [await _open_watch(proxy) for _ in range(30)]
    try:
        proxy.upstream.emit({"type": "MODIFIED"})
        for client in clients:
            assert (await asyncio.wait_for(_read_event(client), 5))["type"] == "MODIFIED"
        assert proxy.upstream.h2_connections == 1
        seen = [r for r in proxy.upstream.requests if "watch=true" in r.target]
        assert len(seen) == 30 and {r.http_version for r in seen} == {"2"}
        assert {r.one("impersonate-user") for r in seen} == {"alice"}
        assert {r.one("authorization") for r in seen} == {"Bearer proxy-service-account-token"}
    finally:
        for client in clients:
            await client.close()


async def test_a_followed_log_is_a_stream_too(proxy: ProxyHandle) -> None:
    client = await _open_watch(proxy, "/api/v1/namespaces/default/pods/web/log?follow=true&container=web")
    try:
        proxy.upstream.emit({"log": "line"})
        assert await asyncio.wait_for(_read_event(client), 5) == {"log": "line"}
        assert proxy.upstream.requests[-1].http_version == "2"
    finally:
        await client.close()


async def test_watches_fall_back_to_http1_when_the_api_server_has_no_http2(
    issuer: TestIssuer, server_certs: CertFiles, config: Config
) -> None:
    h1_only = RecordingUpstream(server_certs, http2=False)
    handle = await start_proxy(replace(config, client=replace(config.client, server=h1_only.url)), issuer, h1_only)
    try:
        client = await _open_watch(handle)
        h1_only.emit({"type": "ADDED"})
        assert (await asyncio.wait_for(_read_event(client), 5))["type"] == "ADDED"
        await client.close()
        assert h1_only.requests[-1].http_version == "1.1"
        assert h1_only.h2_connections == 0
    finally:
        await handle.running.stop(grace=1)
        h1_only.close()
