"""Readiness says what is true now; liveness says the process answers."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

from kube_oidc_proxy.config import Config
from kube_oidc_proxy.server.plainhttp import MAX_CONNECTIONS
from tests.conftest import ProxyHandle, start_proxy
from tests.support.client import get
from tests.support.issuer import TestIssuer
from tests.support.keysource import refresh_after_change
from tests.support.ports import PortHolder
from tests.support.upstream import RecordingUpstream


async def probe(port: int | None, path: str, method: str = "GET") -> tuple[int, dict[str, object]]:
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: probe\r\n\r\n".encode())
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    return status, json.loads(body) if b"application/json" in head else {"text": body.decode()}


async def test_ready_when_keys_are_loaded_and_the_api_server_answers(proxy: ProxyHandle) -> None:
    status, body = await probe(proxy.running.probe_port, "/ready")
    assert status == 200, body
    assert proxy.upstream.requests[-1].target == "/readyz"
    assert proxy.upstream.requests[-1].one("authorization") is not None
    assert (await probe(proxy.running.probe_port, "/healthz"))[0] == 200
    assert (await probe(proxy.running.probe_port, "/nope"))[0] == 404
    assert (await probe(proxy.running.probe_port, "/ready", "POST"))[0] == 405


async def test_not_ready_while_the_issuer_keys_are_missing_then_ready(
    issuer: TestIssuer, upstream: RecordingUpstream, config: Config
) -> None:
    issuer.down = True
    handle = await start_proxy(config, issuer, upstream, wait_for_keys=False)
    try:
        status, body = await probe(handle.running.probe_port, "/ready")
        assert status == 503
        assert issuer.url in json.dumps(body)
        issuer.down = False
        assert await refresh_after_change(handle.app.key_sources[0])
        assert (await probe(handle.running.probe_port, "/ready"))[0] == 200
    finally:
        await handle.running.stop(grace=1)


async def test_readiness_follows_the_api_server_both_ways(
    issuer: TestIssuer, upstream: RecordingUpstream, config: Config, ports: PortHolder
) -> None:
    port = ports.take()  # nothing listens there
    handle = await start_proxy(
        replace(config, client=replace(config.client, server=f"https://127.0.0.1:{port}")), issuer, upstream
    )
    try:
        status, body = await probe(handle.running.probe_port, "/ready")
        assert status == 503
        # the check names the request and the address it tried, and why it failed
        checks = body["checks"]
        assert isinstance(checks, dict)
        assert checks["kube-apiserver"].startswith(
            f"GET https://127.0.0.1:{port}/readyz: connect to 127.0.0.1:{port}: [Errno 111]"
        ), checks
        # the API server comes back (same address): readiness follows without a restart
        pool = handle.app.proxy.as_proxy.pool
        pool.target = replace(pool.target, port=upstream.port)
        assert (await probe(handle.running.probe_port, "/ready"))[0] == 200
    finally:
        await handle.running.stop(grace=1)


async def test_a_request_that_finds_the_api_server_gone_makes_the_next_probe_ask_again(
    proxy: ProxyHandle, ports: PortHolder
) -> None:
    """The last answer counts for 10 s, unless a request meanwhile found kube-apiserver refusing or gone:
    readiness then follows at the next probe, not up to 10 s later."""
    assert (await probe(proxy.running.probe_port, "/ready"))[0] == 200
    assert (await get(proxy.port, proxy.ca_file, "/api", token=proxy.issuer.token())).status == 200  # fresh
    pool = proxy.app.proxy.as_proxy.pool
    pool.close()  # its idle connections lead to the server that is now gone
    pool.target = replace(pool.target, port=ports.take())  # nothing listens there
    assert (await get(proxy.port, proxy.ca_file, "/api", token=proxy.issuer.token())).status == 503
    status, body = await probe(proxy.running.probe_port, "/ready")
    assert status == 503, body


async def test_liveness_does_not_depend_on_the_issuer(
    issuer: TestIssuer, upstream: RecordingUpstream, config: Config
) -> None:
    issuer.down = True
    handle = await start_proxy(config, issuer, upstream, wait_for_keys=False)
    try:
        assert (await probe(handle.running.probe_port, "/healthz"))[0] == 200
    finally:
        await handle.running.stop(grace=1)


async def test_the_probe_port_closes_connections_beyond_its_cap_and_answers_the_others(proxy: ProxyHandle) -> None:
    port = proxy.running.probe_port
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(MAX_CONNECTIONS)]  # idle, at the cap
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        refused = await asyncio.wait_for(reader.read(), 5)
    except ConnectionResetError:
        refused = b""
    assert refused == b""
    writer.close()
    for held_reader, held_writer in held[:3]:
        held_writer.write(b"GET /healthz HTTP/1.1\r\nHost: probe\r\n\r\n")
        assert (await asyncio.wait_for(held_reader.read(), 5)).startswith(b"HTTP/1.1 200 ")
    for _, held_writer in held:
        held_writer.close()
