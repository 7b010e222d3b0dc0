"""HTTP/2 from clients (ALPN h2): every request gets what it gets over HTTP/1.1, streams side by side."""

from __future__ import annotations

import asyncio
import json

from tests.conftest import ProxyHandle
from tests.support.h2client import H2Client


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
