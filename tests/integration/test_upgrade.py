"""exec, attach, cp, port-forward: the HTTP/1.1 upgrade (SPDY/3.1 and WebSocket) is authenticated, then
bytes flow both ways untouched."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import InvalidStatus
from websockets.http11 import Request
from websockets.typing import Subprotocol

from kube_oidc_proxy.config import Config
from tests.conftest import PROXY_SA_TOKEN, ProxyHandle, start_proxy
from tests.integration.test_audit import audited_proxy, events
from tests.support.certs import CertFiles
from tests.support.client import Client
from tests.support.golike import SendAndCloseUpstream, stream_bytes
from tests.support.issuer import TestIssuer
from tests.support.upstream import RecordingUpstream
from tests.support.waiting import until as _until

SPDY_HEAD = (
    "POST /api/v1/namespaces/default/pods/p/exec?command=sh&stdin=true HTTP/1.1\r\nHost: x\r\n"
    "Authorization: Bearer {token}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
    "X-Stream-Protocol-Version: v4.channel.k8s.io\r\nX-Stream-Protocol-Version: v3.channel.k8s.io\r\n"
    "Content-Length: 0\r\n\r\n"
)


async def _upgrade(
    proxy: ProxyHandle, tail: bytes = b"", extra: str = "", receive_buffer: int = 0
) -> tuple[Client, bytes]:
    client = await Client.connect(proxy.port, proxy.ca_file, receive_buffer=receive_buffer)
    head = SPDY_HEAD.format(token=proxy.issuer.token()).replace(
        "Content-Length: 0\r\n", extra + "Content-Length: 0\r\n"
    )
    await client.send_raw(head.encode() + tail)
    response = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 10)
    return client, response


async def test_spdy_upgrade_is_authenticated_and_spliced(proxy: ProxyHandle) -> None:
    client, response = await _upgrade(proxy, tail=b"early-bytes")
    try:
        assert response.startswith(b"HTTP/1.1 101 ")
        assert b"upgrade: SPDY/3.1" in response.lower().replace(b"upgrade: spdy/3.1", b"upgrade: SPDY/3.1")
        assert await asyncio.wait_for(client.reader.readexactly(11), 5) == b"early-bytes"
        payload = os.urandom(10 * 1024 * 1024)
        client.writer.write(payload)
        received = await asyncio.wait_for(client.reader.readexactly(len(payload)), 30)
        assert received == payload
    finally:
        await client.close()
    seen = proxy.upstream.requests[-1]
    assert seen.method == "POST"
    assert seen.one("impersonate-user") == "alice"
    assert seen.one("authorization") == f"Bearer {PROXY_SA_TOKEN}"
    assert seen.all("x-stream-protocol-version") == ["v4.channel.k8s.io", "v3.channel.k8s.io"]
    assert seen.one("upgrade") == "SPDY/3.1"


async def test_an_upgrade_with_a_bad_token_is_refused_and_not_forwarded(proxy: ProxyHandle) -> None:
    client = await Client.connect(proxy.port, proxy.ca_file)
    try:
        await client.send_raw(SPDY_HEAD.format(token="bad").encode())
        raw = await client.read_until_closed()
    finally:
        await client.close()
    assert raw.startswith(b"HTTP/1.1 401 ")
    assert proxy.upstream.requests == [] and proxy.upstream.upgrades == 0


async def test_an_upgrade_the_api_server_refuses_is_relayed_as_a_response(proxy: ProxyHandle) -> None:
    client, response = await _upgrade(proxy, extra="X-Test-Refuse-Upgrade: 1\r\n")
    try:
        assert response.startswith(b"HTTP/1.1 403 ")
        assert b"Connection: close" in response
        rest = await client.read_until_closed()
        assert b"upgrade refused" in rest
    finally:
        await client.close()


STREAM_SIZE = 16 * 1024 * 1024


@pytest.fixture
async def send_and_close_proxy(
    config: Config, issuer: TestIssuer, upstream: RecordingUpstream, server_certs: CertFiles
) -> AsyncIterator[ProxyHandle]:
    golike = SendAndCloseUpstream(server_certs, STREAM_SIZE)
    cfg = replace(config, client=replace(config.client, server=golike.url))
    handle = await start_proxy(cfg, issuer, upstream)
    yield handle
    await handle.running.stop(grace=1)
    golike.close()


async def test_a_slow_client_gets_every_byte_the_api_server_sent_before_closing(
    send_and_close_proxy: ProxyHandle,
) -> None:
    """kubectl cp from a pod: kube-apiserver sends the file and closes at once, while kubectl reads slowly.

    The proxy stops reading kube-apiserver while the client is behind; the bytes and the close that
    arrive meanwhile must all still reach the client (uvloop's TLS transport dropped up to 256 KiB here).
    """
    client, response = await _upgrade(send_and_close_proxy, receive_buffer=64 * 1024)
    received = bytearray()
    try:
        assert response.startswith(b"HTTP/1.1 101 ")
        await asyncio.sleep(0.5)  # kube-apiserver is done and has closed before the client reads much
        while chunk := await asyncio.wait_for(client.reader.read(16 * 1024), 10):
            received += chunk
            await asyncio.sleep(0.001)
    finally:
        await client.close()
    assert len(received) == STREAM_SIZE
    assert received == stream_bytes(STREAM_SIZE)


async def test_closing_either_side_closes_the_tunnel(proxy: ProxyHandle) -> None:
    client, response = await _upgrade(proxy)
    assert response.startswith(b"HTTP/1.1 101 ")
    client.writer.write(b"ping")
    assert await asyncio.wait_for(client.reader.readexactly(4), 5) == b"ping"
    await client.close()
    for _ in range(250):
        if not proxy.app.proxy.tunnels:
            break
        await asyncio.sleep(0.02)
    assert not proxy.app.proxy.tunnels


@dataclass
class WSUpstream:
    url: str
    requests: list[Request]


@pytest.fixture
async def ws_upstream(server_certs: CertFiles) -> AsyncIterator[WSUpstream]:
    """A real WebSocket server (the websockets library) standing in for kube-apiserver's exec endpoint."""
    seen: list[Request] = []

    def record(_: ServerConnection, request: Request) -> None:
        seen.append(request)

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(server_certs.cert, server_certs.key)
    async with serve(
        echo,
        "127.0.0.1",
        0,
        ssl=ctx,
        subprotocols=[Subprotocol("v5.channel.k8s.io")],
        process_request=record,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield WSUpstream(f"https://127.0.0.1:{port}", seen)


@pytest.fixture
async def ws_proxy(
    config: Config, issuer: TestIssuer, upstream: RecordingUpstream, ws_upstream: WSUpstream
) -> AsyncIterator[ProxyHandle]:
    cfg = replace(config, client=replace(config.client, server=ws_upstream.url))
    handle = await start_proxy(cfg, issuer, upstream)
    yield handle
    await handle.running.stop(grace=1)


def _client_ssl(proxy: ProxyHandle) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=proxy.ca_file)


async def test_websocket_exec_with_a_bearer_header(ws_proxy: ProxyHandle, ws_upstream: WSUpstream) -> None:
    url = f"wss://localhost:{ws_proxy.port}/api/v1/namespaces/default/pods/p/exec?command=sh"
    headers = {"Authorization": f"Bearer {ws_proxy.issuer.token()}"}
    async with ws_connect(
        url,
        ssl=_client_ssl(ws_proxy),
        subprotocols=[Subprotocol("v5.channel.k8s.io")],
        additional_headers=headers,
    ) as ws:
        assert ws.subprotocol == "v5.channel.k8s.io"
        for message in (b"\x00stdin data", b"\x01" + os.urandom(100_000)):
            await ws.send(message)
            assert await ws.recv() == message
    forwarded = ws_upstream.requests[-1].headers
    assert forwarded["Impersonate-User"] == "alice"
    assert forwarded["Authorization"] == f"Bearer {PROXY_SA_TOKEN}"


async def test_websocket_token_subprotocol_is_accepted_and_never_forwarded(
    ws_proxy: ProxyHandle, ws_upstream: WSUpstream
) -> None:
    token = ws_proxy.issuer.token()
    encoded = base64.urlsafe_b64encode(token.encode()).rstrip(b"=").decode()
    protocols = [Subprotocol("v5.channel.k8s.io"), Subprotocol(f"base64url.bearer.authorization.k8s.io.{encoded}")]
    url = f"wss://localhost:{ws_proxy.port}/api/v1/namespaces/default/pods/p/exec?command=sh"
    async with ws_connect(url, ssl=_client_ssl(ws_proxy), subprotocols=protocols) as ws:
        assert ws.subprotocol == "v5.channel.k8s.io"
        await ws.send(b"\x00hi")
        assert await ws.recv() == b"\x00hi"
    forwarded = ws_upstream.requests[-1].headers
    assert forwarded.get_all("Sec-WebSocket-Protocol") == ["v5.channel.k8s.io"]
    assert forwarded["Impersonate-User"] == "alice"
    assert token not in str(forwarded)


async def test_websocket_with_an_invalid_token_subprotocol_is_refused(
    ws_proxy: ProxyHandle, ws_upstream: WSUpstream
) -> None:
    protocols = [Subprotocol("v5.channel.k8s.io"), Subprotocol("base64url.bearer.authorization.k8s.io.bm90LWEtand0")]
    url = f"wss://localhost:{ws_proxy.port}/api/v1/namespaces/default/pods/p/exec"
    with pytest.raises(InvalidStatus) as info:
        async with ws_connect(url, ssl=_client_ssl(ws_proxy), subprotocols=protocols):
            pass
    assert info.value.response.status_code == 401
    assert ws_upstream.requests == []


# A 101 is relayed only if it switches to what was asked ------------------------------------------------------

UPSTREAM_TUNNEL_BYTES = b"bytes-kube-apiserver-sent-after-its-101"
CLIENT_TUNNEL_BYTES = b"bytes-the-client-sent-after-its-request"
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
WS_HEAD = (
    "GET /raw/{name} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: Upgrade\r\n"
    f"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {WS_KEY}\r\n"
    "Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n"
)
WS_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # for WS_KEY (RFC 6455 §1.3)
SWITCHED_ELSEWHERE = {
    # SPDY/3.1 asked for (SPDY_HEAD)
    "another-protocol": "Connection: Upgrade\r\nUpgrade: h2c\r\n",
    "no-upgrade-header": "Connection: Upgrade\r\n",
    "two-upgrade-values": "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nUpgrade: h2c\r\n",
    "no-connection-upgrade": "Upgrade: SPDY/3.1\r\n",
    # websocket asked for (WS_HEAD)
    "ws-accepting-another-key": "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: AAAA\r\n",
    "ws-without-accept": "Connection: Upgrade\r\nUpgrade: websocket\r\n",
    "ws-subprotocol-not-offered": (
        f"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {WS_ACCEPT}\r\n"
        "Sec-WebSocket-Protocol: binary.k8s.io\r\n"
    ),
}


def _upgrade_request(name: str, token: str) -> bytes:
    if name.startswith("ws-"):
        return WS_HEAD.format(name=name, token=token).encode()
    return (
        SPDY_HEAD.format(token=token)
        .replace("/api/v1/namespaces/default/pods/p/exec?command=sh&stdin=true", f"/raw/{name}")
        .encode()
    )


@pytest.mark.parametrize("name", sorted(SWITCHED_ELSEWHERE))
async def test_a_101_that_is_not_the_switch_asked_for_is_a_502_and_both_connections_close(
    tmp_path: Path,
    config: Config,
    issuer: TestIssuer,
    upstream: RecordingUpstream,
    caplog: pytest.LogCaptureFixture,
    name: str,
) -> None:
    upstream.raw[name] = f"HTTP/1.1 101 Switching Protocols\r\n{SWITCHED_ELSEWHERE[name]}\r\n".encode()
    upstream.raw[name] += UPSTREAM_TUNNEL_BYTES
    handle = await audited_proxy(tmp_path, config, issuer, upstream)
    try:
        client = await Client.connect(handle.port, handle.ca_file)
        await client.send_raw(_upgrade_request(name, issuer.token()) + CLIENT_TUNNEL_BYTES)
        answer = await client.read_until_closed()  # the proxy closes the client's connection after the Status
        await client.close()
        await _until(lambda: upstream.open_connections == 0, "the proxy to close its connection upstream")
        assert not handle.app.proxy.tunnels
    finally:
        await handle.running.stop(grace=1)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 502 ")
    assert b"\r\nConnection: close" in head
    assert json.loads(body) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "kube-apiserver switched to a protocol that was not asked for",
        "reason": "BadGateway",
        "code": 502,
    }
    assert b"tunnel-bytes" not in answer and b"bytes-" not in body  # nothing of either side's tunnel went through
    stages = [(e["stage"], e.get("responseStatus", {}).get("code")) for e in events(tmp_path / "audit.log")]
    assert stages == [("RequestReceived", None), ("ResponseComplete", 502)]
    assert [r.getMessage() for r in caplog.records if "refused its 101" in r.getMessage()]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_websocket_101_that_answers_the_handshake_is_relayed(proxy: ProxyHandle) -> None:
    # the recording upstream answers as kube-apiserver does: the accept key, the first subprotocol offered
    client = await Client.connect(proxy.port, proxy.ca_file)
    try:
        request = WS_HEAD.format(name="", token=proxy.issuer.token()).replace(
            "GET /raw/ ", "GET /api/v1/namespaces/default/pods/p/exec?command=sh "
        )
        await client.send_raw(request.encode())
        response = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 10)
        assert response.startswith(b"HTTP/1.1 101 ")
        assert f"sec-websocket-accept: {WS_ACCEPT}".encode() in response.lower().replace(
            WS_ACCEPT.lower().encode(), WS_ACCEPT.encode()
        )
        client.writer.write(b"frames")
        assert await asyncio.wait_for(client.reader.readexactly(6), 5) == b"frames"
    finally:
        await client.close()


async def test_a_101_to_a_request_that_asked_for_no_upgrade_is_a_502_and_the_connection_serves_on(
    proxy: ProxyHandle, caplog: pytest.LogCaptureFixture
) -> None:
    proxy.upstream.raw["unasked"] = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
    proxy.upstream.raw["unasked"] += UPSTREAM_TUNNEL_BYTES
    client = await Client.connect(proxy.port, proxy.ca_file)
    try:
        refused = await client.request("GET", "/raw/unasked", token=proxy.issuer.token())
        assert (refused.status, refused.json()["kind"]) == (502, "Status")
        assert b"bytes-" not in refused.body
        # the client asked for nothing unusual: its keep-alive connection goes on
        assert (await client.request("GET", "/api", token=proxy.issuer.token())).status == 200
    finally:
        await client.close()
    await _until(lambda: proxy.upstream.open_connections <= 1, "the proxy to close the connection that switched")
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
