"""Bytes that arrive together with the peer's close while the proxy has paused reading are still delivered.

Go peers (kube-apiserver, kubectl) end a stream with the last bytes, close_notify and FIN together. The
proxy pauses reading one side whenever the other is slower, so that close often arrives while paused;
uvloop's TLS transport then dropped up to 256 KiB (the end of a ``kubectl cp`` from a pod).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from kube_oidc_proxy.config import Config
from kube_oidc_proxy.kube.target import UpstreamTarget
from kube_oidc_proxy.server.upstream import UpstreamPool
from tests.conftest import ProxyHandle, start_proxy
from tests.support.certs import CertFiles
from tests.support.client import Client
from tests.support.golike import SWITCHING, SendAndCloseUpstream, SlowSwitchUpstream, send_and_close, stream_bytes
from tests.support.issuer import TestIssuer
from tests.support.upstream import RecordingUpstream

SIZE = 100 * 1024  # under the 256 KiB a TLS transport reads ahead while paused


class Collected:
    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = asyncio.Event()

    def from_upstream(self, data: bytes) -> None:
        self.data += data

    def upstream_closed(self) -> None:
        self.closed.set()

    def upstream_paused(self, paused: bool) -> None:
        pass


async def test_kube_apiserver_side_keeps_the_bytes_before_its_close(server_certs: CertFiles) -> None:
    golike = SendAndCloseUpstream(server_certs, SIZE)
    try:
        port = int(golike.url.rsplit(":", 1)[1])
        pool = UpstreamPool(
            UpstreamTarget("https", "127.0.0.1", port), ssl.create_default_context(cafile=server_certs.ca)
        )
        conn = await pool.connect()
        collected = Collected()
        conn.raw = collected
        conn.pause_reading()  # the client is behind
        conn.write(b"POST /exec HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n")
        await asyncio.sleep(0.5)  # the 101, the bytes, close_notify and FIN have all arrived meanwhile
        assert collected.data == b""
        conn.resume_reading()
        await asyncio.wait_for(collected.closed.wait(), 10)
    finally:
        golike.close()
    assert bytes(collected.data) == SWITCHING + stream_bytes(SIZE)
    assert golike.errors == []


@pytest.fixture
async def slow_switch(server_certs: CertFiles) -> AsyncIterator[SlowSwitchUpstream]:
    upstream = SlowSwitchUpstream(server_certs, delay=0.5)
    yield upstream
    upstream.close()


@pytest.fixture
async def slow_switch_proxy(
    config: Config, issuer: TestIssuer, upstream: RecordingUpstream, slow_switch: SlowSwitchUpstream
) -> AsyncIterator[ProxyHandle]:
    handle = await start_proxy(replace(config, client=replace(config.client, server=slow_switch.url)), issuer, upstream)
    yield handle
    await handle.running.stop(grace=1)


async def test_client_side_keeps_the_bytes_before_its_close(
    slow_switch_proxy: ProxyHandle, slow_switch: SlowSwitchUpstream
) -> None:
    """The client's bytes and close arrive while the proxy waits for the 101 (reading the client paused)."""
    request = (
        "POST /api/v1/namespaces/default/pods/p/exec?command=sh&stdin=true HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {slow_switch_proxy.issuer.token()}\r\n"
        "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    payload = stream_bytes(SIZE)
    await asyncio.to_thread(send_and_close, slow_switch_proxy.port, slow_switch_proxy.ca_file, request, payload, 0.2)
    assert await asyncio.to_thread(slow_switch.done.wait, 10)
    assert bytes(slow_switch.received) == payload
    assert slow_switch.errors == []


@pytest.fixture
async def slow_reader(server_certs: CertFiles) -> AsyncIterator[SlowSwitchUpstream]:
    upstream = SlowSwitchUpstream(server_certs, delay=0, read_after=1.5)
    yield upstream
    upstream.close()


async def test_an_upload_faster_than_kube_apiserver_reads_is_held_back_not_buffered(
    config: Config, issuer: TestIssuer, upstream: RecordingUpstream, slow_reader: SlowSwitchUpstream
) -> None:
    """kubectl cp to a pod on a fast link: the proxy stops reading the client instead of queueing the file."""
    proxy = await start_proxy(replace(config, client=replace(config.client, server=slow_reader.url)), issuer, upstream)
    try:
        client = await Client.connect(proxy.port, proxy.ca_file)
        request = (
            "POST /api/v1/namespaces/default/pods/p/exec?command=tar&stdin=true HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {proxy.issuer.token()}\r\n"
            "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        await client.send_raw(request)
        assert (await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 10)).startswith(b"HTTP/1.1 101 ")
        upload = stream_bytes(48 * 1024 * 1024)
        client.writer.write(upload)
        await asyncio.sleep(1.0)  # kube-apiserver has not read anything yet
        (tunnel,) = proxy.app.proxy.tunnels
        held = tunnel.upstream_transport.get_write_buffer_size()
        assert held <= 2 * 1024 * 1024, f"the proxy queued {held} bytes for kube-apiserver"
        await asyncio.wait_for(client.writer.drain(), 30)
        await client.close()
        assert await asyncio.to_thread(slow_reader.done.wait, 30)
    finally:
        await proxy.running.stop(grace=1)
    assert bytes(slow_reader.received) == upload
