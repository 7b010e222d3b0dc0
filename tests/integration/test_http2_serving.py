"""HTTP/2 from clients (ALPN h2): every request gets what it gets over HTTP/1.1, streams side by side."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

from kube_oidc_proxy.config import Config
from kube_oidc_proxy.observe.metrics import Metrics
from tests.conftest import ProxyHandle, start_proxy
from tests.support.client import get
from tests.support.h2client import H2Client
from tests.support.issuer import TestIssuer
from tests.support.upstream import RecordingUpstream
from tests.support.waiting import until


async def test_a_request_over_h2_is_authenticated_and_forwarded_as_over_http1(proxy: ProxyHandle) -> None:
    client = await H2Client.connect(proxy.port, proxy.ca_file)
    try:
        response = await client.request("GET", "/api/v1/namespaces/default/pods", token=proxy.issuer.token())
        assert response.status == 200
        assert response.json()["kind"] == "PodList"
        (forwarded,) = [r for r in proxy.upstream.requests if r.target == "/api/v1/namespaces/default/pods"]
        assert forwarded.one("impersonate-user") is not None
        assert forwarded.one("authorization") != f"Bearer {proxy.issuer.token()}"
        refused = await client.request("GET", "/api", token="not-a-token")
        assert refused.status == 401
        assert refused.json()["kind"] == "Status"
        body = b"x" * 300_000
        echoed = await client.request("POST", "/echo-body", token=proxy.issuer.token(), body=body)
        assert echoed.status == 200 and echoed.body == body
    finally:
        await client.close()


async def test_watches_on_one_h2_connection_are_streams_side_by_side(proxy: ProxyHandle) -> None:
    client = await H2Client.connect(proxy.port, proxy.ca_file)
    try:
        token = proxy.issuer.token()
        streams = [client.start("GET", f"/api/v1/pods?watch=true&n={n}", token=token) for n in range(30)]
        for stream_id in streams:
            await client.until(stream_id, lambda s: s.status == 200)
        proxy.upstream.emit({"type": "ADDED", "object": {"kind": "Pod"}})
        for stream_id in streams:
            state = await client.until(stream_id, lambda s: b"ADDED" in s.body)
            assert json.loads(bytes(state.body).splitlines()[0])["type"] == "ADDED"
        assert len(proxy.app.proxy.connections) == 1
        proxy.upstream.end_watches()
        for stream_id in streams:
            assert (await client.response(stream_id)).status == 200
    finally:
        await client.close()
    await asyncio.sleep(0)


async def test_the_json_line_and_the_request_metric_name_the_protocol(
    config: Config, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    json_config = replace(config, proxy=replace(config.proxy, log_format="json"))
    proxy = await start_proxy(json_config, issuer, upstream)
    metrics = Metrics()
    proxy.app.proxy.metrics = metrics
    try:
        client = await H2Client.connect(proxy.port, proxy.ca_file)
        try:
            assert (
                await client.request("GET", "/api/v1/namespaces/default/pods/over-h2", token=issuer.token())
            ).status == 200
        finally:
            await client.close()
        assert (
            await get(proxy.port, proxy.ca_file, "/api/v1/namespaces/default/pods/over-http1", token=issuer.token())
        ).status == 200
        over_h2 = json.loads(await proxy.access.wait_for("/api/v1/namespaces/default/pods/over-h2"))
        over_http1 = json.loads(await proxy.access.wait_for("/api/v1/namespaces/default/pods/over-http1"))
        assert (over_h2["protocol"], over_http1["protocol"]) == ("HTTP/2", "HTTP/1.1")
        sample = metrics.registry.get_sample_value
        for protocol in ("HTTP/2", "HTTP/1.1"):
            labels = {"verb": "get", "code": "200", "protocol": protocol}
            assert sample("kube_oidc_proxy_http_requests_total", labels) == 1
    finally:
        await proxy.running.stop(grace=1)
        proxy.app.access_log.close()


async def test_a_method_or_path_that_would_rewrite_the_forwarded_request_line_is_refused(proxy: ProxyHandle) -> None:
    """HTTP/2 lets :method and :path hold spaces (and :path controls); in the HTTP/1.1 request line sent to
    kube-apiserver a space ends the target, so what the proxy checked would not be what it reads."""
    client = await H2Client.connect(proxy.port, proxy.ca_file)
    try:
        token = proxy.issuer.token()
        hostile = [
            ("GET", "/healthz /api/v1/secrets"),
            ("GET", "/api/v1/pods\tx"),
            ("GET", "/api/v1/p\x7fods"),
            ("DELETE /api/v1/namespaces/kube-system", "/healthz"),
            ("get(", "/api"),
        ]
        for method, path in hostile:
            refused = await client.request(method, path, token=token)
            assert refused.status == 400, (method, path, refused.status)
            assert refused.json()["kind"] == "Status"
        assert (await client.request("GET", "/api", token=token)).status == 200  # the connection goes on
        assert [r.target for r in proxy.upstream.requests] == ["/api"]
        # the lines are written by the log's own thread
        await until(lambda: sum("AuFail" in line for line in proxy.access.lines) >= len(hostile), "the AuFail lines")
        assert sum("AuFail" in line for line in proxy.access.lines) == len(hostile)
    finally:
        await client.close()
