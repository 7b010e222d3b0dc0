"""When kube-apiserver or the issuer fails, clients get a clear Status (502/503/504), never a hang."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import replace

import h11
import pytest

from kube_oidc_proxy.config import Config
from tests.conftest import ProxyHandle, start_proxy
from tests.support.client import Client, get
from tests.support.issuer import TestIssuer
from tests.support.keysource import refresh_after_change
from tests.support.ports import PortHolder
from tests.support.upstream import RecordingUpstream


async def test_an_api_server_that_refuses_connections_gives_503(
    issuer: TestIssuer, upstream: RecordingUpstream, config: Config, ports: PortHolder
) -> None:
    cfg = replace(config, client=replace(config.client, server=f"https://127.0.0.1:{ports.take()}"))
    handle = await start_proxy(cfg, issuer, upstream)
    try:
        response = await get(handle.port, handle.ca_file, "/api/v1/pods", token=issuer.token())
        assert response.status == 503
        assert response.json()["reason"] == "ServiceUnavailable"
        # one line per request: the caller was authenticated; the failure is the Status, the log and the metrics
        await handle.access.wait_for("AuSuccess src:[127.0.0.1 / ] URI:/api/v1/pods")
    finally:
        await handle.running.stop(grace=1)
        handle.app.access_log.close()  # writes what is queued
    assert len(handle.access.lines) == 1


async def test_a_dropped_connection_gives_502(proxy: ProxyHandle) -> None:
    response = await get(proxy.port, proxy.ca_file, "/drop", token=proxy.issuer.token())
    assert response.status == 502
    assert response.json()["kind"] == "Status"


async def test_a_malformed_api_server_response_gives_502(proxy: ProxyHandle) -> None:
    proxy.upstream.raw["garbage"] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
    response = await get(proxy.port, proxy.ca_file, "/raw/garbage", token=proxy.issuer.token())
    assert response.status == 502


async def test_a_response_cut_short_is_never_completed_for_the_client(proxy: ProxyHandle) -> None:
    proxy.upstream.raw["short"] = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-ten.."
    with pytest.raises((ConnectionError, h11.RemoteProtocolError)):
        await get(proxy.port, proxy.ca_file, "/raw/short", token=proxy.issuer.token())


async def test_a_slow_api_server_gives_504_with_request_timeout(
    issuer: TestIssuer, upstream: RecordingUpstream, config: Config
) -> None:
    cfg = replace(config, client=replace(config.client, request_timeout=0.3))
    handle = await start_proxy(cfg, issuer, upstream)
    try:
        response = await get(handle.port, handle.ca_file, "/slow/3", token=issuer.token())
        assert response.status == 504
        assert response.json()["reason"] == "Timeout"
        assert (await get(handle.port, handle.ca_file, "/slow/0", token=issuer.token())).status == 200
    finally:
        await handle.running.stop(grace=1)


async def test_request_timeout_bounds_a_tls_handshake_that_never_ends(
    issuer: TestIssuer, upstream: RecordingUpstream, config: Config
) -> None:
    """A kube-apiserver that accepts connections and never answers (wedged, or SIGSTOPped): the kernel
    completes the TCP handshake, the TLS one never ends. --request-timeout bounds that wait too, not the
    10 s connect limit."""
    silent = socket.create_server(("127.0.0.1", 0))  # listens, never accepts: connections wait in the backlog
    try:
        server = f"https://127.0.0.1:{silent.getsockname()[1]}"
        cfg = replace(config, client=replace(config.client, server=server, request_timeout=0.3))
        handle = await start_proxy(cfg, issuer, upstream)
        try:
            started = time.monotonic()
            response = await get(handle.port, handle.ca_file, "/api/v1/pods", token=issuer.token())
            assert response.status == 504
            assert response.json()["reason"] == "Timeout"
            assert time.monotonic() - started < 5  # well under the 10 s connect limit
        finally:
            await handle.running.stop(grace=1)
    finally:
        silent.close()


async def test_a_stale_keep_alive_connection_is_retried_for_a_get(proxy: ProxyHandle) -> None:
    client = await Client.connect(proxy.port, proxy.ca_file)
    token = proxy.issuer.token()
    try:
        assert (await client.request("GET", "/api", token=token)).status == 200
        # the API server drops the pooled connection as our request arrives: a GET is safe to send again
        response = await client.request("GET", "/drop-if-reused", token=token)
        assert response.status == 200
    finally:
        await client.close()
    assert proxy.upstream.connections == 2


async def test_a_post_on_a_stale_connection_is_not_retried(proxy: ProxyHandle) -> None:
    client = await Client.connect(proxy.port, proxy.ca_file)
    token = proxy.issuer.token()
    try:
        assert (await client.request("GET", "/api", token=token)).status == 200
        response = await client.request("POST", "/drop-if-reused", token=token, body=b"{}")
        assert response.status == 502
    finally:
        await client.close()


async def test_an_issuer_down_at_start_gives_503_until_its_keys_load(
    issuer: TestIssuer, upstream: RecordingUpstream, config: Config
) -> None:
    issuer.down = True
    handle = await start_proxy(config, issuer, upstream, wait_for_keys=False)
    try:
        response = await get(handle.port, handle.ca_file, "/api", token=issuer.token())
        assert response.status == 503
        assert "signing keys" in response.json()["message"]
        issuer.down = False
        assert await refresh_after_change(handle.app.key_sources[0])
        assert (await get(handle.port, handle.ca_file, "/api", token=issuer.token())).status == 200
    finally:
        await handle.running.stop(grace=1)


async def test_an_issuer_outage_after_start_does_not_stop_the_proxy(proxy: ProxyHandle) -> None:
    proxy.issuer.down = True
    assert not await refresh_after_change(proxy.app.key_sources[0])
    response = await get(proxy.port, proxy.ca_file, "/api", token=proxy.issuer.token(sub="bob"))
    assert response.status == 200


async def test_issuer_key_rotation_needs_no_restart(proxy: ProxyHandle) -> None:
    fetches = proxy.issuer.jwks_fetches
    proxy.issuer.add_key("ES256", "key-2")
    token = proxy.issuer.mint(proxy.issuer.claims(), kid="key-2", alg="ES256")
    source = proxy.app.key_sources[0]
    source._min_refetch_interval = 0  # the test cannot wait out the rate limit
    spec = proxy.app.proxy.gate.authenticator.authenticators[0].spec
    object.__setattr__(spec, "signing_algs", frozenset({"RS256", "ES256"}))
    response = await get(proxy.port, proxy.ca_file, "/api", token=token)
    assert response.status == 200
    assert proxy.issuer.jwks_fetches == fetches + 1


async def test_a_flood_of_unknown_kids_costs_one_key_fetch(proxy: ProxyHandle) -> None:
    proxy.issuer.add_key("RS256", "not-published", publish=False)
    fetches = proxy.issuer.jwks_fetches
    source = proxy.app.key_sources[0]
    source._last_attempt = -float("inf")
    tokens = [proxy.issuer.mint(proxy.issuer.claims(jti=str(i)), kid="not-published") for i in range(30)]
    responses = await asyncio.gather(*(get(proxy.port, proxy.ca_file, "/api", token=t) for t in tokens))
    assert {r.status for r in responses} == {401}
    assert proxy.issuer.jwks_fetches - fetches == 1
