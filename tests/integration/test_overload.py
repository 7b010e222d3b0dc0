"""Past the in-flight limits (--max-requests-inflight, --max-mutating-requests-inflight) a request is answered
429 with Retry-After at once and never reaches kube-apiserver, while long-running requests and the other
kind still pass, and every slot comes back when its request ends, however it ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from kube_oidc_proxy.config import Config
from kube_oidc_proxy.server.exchange import TOO_MANY_REQUESTS
from tests.conftest import ProxyHandle, start_proxy
from tests.integration.test_metrics import scrape, value
from tests.support.client import Client, Response, get
from tests.support.issuer import TestIssuer
from tests.support.upstream import RecordingUpstream
from tests.support.waiting import until as _until

READS, WRITES = 3, 2


@pytest.fixture
async def proxy(config: Config, issuer: TestIssuer, upstream: RecordingUpstream) -> AsyncIterator[ProxyHandle]:
    limited = replace(
        config,
        proxy=replace(
            config.proxy,
            max_requests_inflight=READS,
            max_mutating_requests_inflight=WRITES,
            metrics_bind_address="127.0.0.1:0",
        ),
    )
    handle = await start_proxy(limited, issuer, upstream)
    yield handle
    upstream.release_held()
    await handle.running.stop(grace=1)
    handle.app.access_log.close()


async def _post(proxy: ProxyHandle, target: str, token: str) -> Response:
    client = await Client.connect(proxy.port, proxy.ca_file)
    try:
        return await client.request("POST", target, token=token, body=b"{}")
    finally:
        await client.close()


async def _hold(proxy: ProxyHandle, n: int, method: str = "GET") -> tuple[list[Client], list[asyncio.Task[Response]]]:
    """n requests kube-apiserver does not answer until release_held(), each on its own connection."""
    clients = [await Client.connect(proxy.port, proxy.ca_file) for _ in range(n)]
    token = proxy.issuer.token()
    answers = [asyncio.create_task(c.request(method, f"/held/{i}", token=token)) for i, c in enumerate(clients)]
    await _until(lambda: proxy.upstream.held == n, f"{n} requests held by kube-apiserver")
    return clients, answers


def _assert_shed(response: Response) -> None:
    assert response.status == 429
    assert response.header("retry-after") == "1"
    status = response.json()
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "TooManyRequests", 429)
    assert status["message"] == TOO_MANY_REQUESTS


async def test_reads_over_the_limit_are_answered_429_and_never_forwarded(proxy: ProxyHandle) -> None:
    token = proxy.issuer.token()
    clients, held = await _hold(proxy, READS)
    try:
        forwarded = len(proxy.upstream.requests)
        for i in range(5):
            _assert_shed(await get(proxy.port, proxy.ca_file, f"/api/v1/namespaces/ns/pods/shed-{i}", token=token))
            await proxy.access.wait_for(f"AuFail src:[127.0.0.1 / ] URI:/api/v1/namespaces/ns/pods/shed-{i}")
        assert len(proxy.upstream.requests) == forwarded
        # a write, and a watch (long-running: not counted), still pass
        assert (await _post(proxy, "/api/v1/namespaces/ns/configmaps", token)).status == 200
        watcher = await Client.connect(proxy.port, proxy.ca_file)
        watching = asyncio.create_task(watcher.request("GET", "/api/v1/namespaces/ns/pods?watch=true", token=token))
        await _until(lambda: proxy.upstream.open_watches == 1, "the watch to reach kube-apiserver")
        proxy.upstream.end_watches()
        assert (await watching).status == 200
        await watcher.close()

        samples = await scrape(proxy.running.metrics_port)
        assert value(samples, "requests_shed_total", kind="readOnly") == 5
        assert value(samples, "requests_shed_total", kind="mutating") == 0
        assert value(samples, "inflight_requests", kind="readOnly") == READS
    finally:
        proxy.upstream.release_held()
        assert [(await answer).status for answer in held] == [200] * READS
        for client in clients:
            await client.close()
    # the slots are free again
    assert (await get(proxy.port, proxy.ca_file, "/api/v1/namespaces/ns/pods/again", token=token)).status == 200
    assert proxy.app.proxy.inflight.reads == 0


async def test_writes_have_their_own_limit(proxy: ProxyHandle) -> None:
    token = proxy.issuer.token()
    clients, held = await _hold(proxy, WRITES, method="POST")
    try:
        _assert_shed(await _post(proxy, "/api/v1/namespaces/ns/configmaps", token))
        assert (await get(proxy.port, proxy.ca_file, "/api/v1/namespaces/ns/pods", token=token)).status == 200
        samples = await scrape(proxy.running.metrics_port)
        assert value(samples, "requests_shed_total", kind="mutating") == 1
    finally:
        proxy.upstream.release_held()
        assert [(await answer).status for answer in held] == [200] * WRITES
        for client in clients:
            await client.close()


async def test_hundreds_at_once_reach_kube_apiserver_only_up_to_the_limit(proxy: ProxyHandle) -> None:
    token = proxy.issuer.token()
    clients = [await Client.connect(proxy.port, proxy.ca_file) for _ in range(200)]
    try:
        answers = [asyncio.create_task(c.request("GET", f"/held/{i}", token=token)) for i, c in enumerate(clients)]
        await _until(lambda: proxy.upstream.held == READS, "the first requests held")
        await _until(lambda: sum(a.done() for a in answers) == 200 - READS, "all the others answered")
        assert proxy.upstream.held == READS
        assert {(await a).status for a in answers if a.done()} == {429}
        proxy.upstream.release_held()
        statuses = [(await a).status for a in answers]
        assert (statuses.count(200), statuses.count(429)) == (READS, 200 - READS)
        assert sum(r.target.startswith("/held/") for r in proxy.upstream.requests) == READS
    finally:
        for client in clients:
            await client.close()
    assert proxy.app.proxy.inflight.reads == 0


async def test_a_client_that_leaves_mid_request_frees_its_slot(proxy: ProxyHandle) -> None:
    clients, _ = await _hold(proxy, READS)
    for client in clients:
        await client.close()
    await _until(lambda: proxy.app.proxy.inflight.reads == 0, "the slots of the clients that left")
    assert (await get(proxy.port, proxy.ca_file, "/api", token=proxy.issuer.token())).status == 200


async def test_failed_requests_free_their_slots(proxy: ProxyHandle) -> None:
    token = proxy.issuer.token()
    for _ in range(2 * READS):  # kube-apiserver's errors, a dropped connection, a refused token
        assert (await get(proxy.port, proxy.ca_file, "/status/500", token=token)).status == 500
        assert (await get(proxy.port, proxy.ca_file, "/drop", token=token)).status == 502
        assert (await get(proxy.port, proxy.ca_file, "/api", token="not-a-jwt")).status == 401
    assert proxy.app.proxy.inflight.reads == 0
    assert (await get(proxy.port, proxy.ca_file, "/api", token=token)).status == 200


async def test_as_many_connections_to_kube_apiserver_stay_open_as_the_limits_let_run(
    config: Config, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    # 200 requests at once (more than the 128 idle connections a pool used to keep), then 200 more: they
    # reuse the connections of the first, none pays a new TLS handshake with kube-apiserver.
    limits = replace(config.proxy, max_requests_inflight=300, max_mutating_requests_inflight=100)
    handle = await start_proxy(replace(config, proxy=limits), issuer, upstream)
    pool = handle.app.proxy.as_proxy.pool
    token = issuer.token()
    clients = [await Client.connect(handle.port, handle.ca_file) for _ in range(200)]
    try:
        answers = [asyncio.create_task(c.request("GET", f"/held/{i}", token=token)) for i, c in enumerate(clients)]
        await _until(lambda: upstream.held == 200, "200 requests held by kube-apiserver at once", timeout=60)
        upstream.release_held()
        assert {(await a).status for a in answers} == {200}
        await _until(lambda: pool.idle_count == 200, "every connection back in the pool")
        again = [asyncio.create_task(c.request("GET", f"/again/{i}", token=token)) for i, c in enumerate(clients)]
        assert {(await a).status for a in again} == {200}
        assert pool.opened == 200
    finally:
        for client in clients:
            await client.close()
        await handle.running.stop(grace=1)
        handle.app.access_log.close()
