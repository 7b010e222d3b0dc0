"""Readiness and liveness on a plain-HTTP port (``--readiness-probe-port``), for the kubelet.

``/ready`` (and ``/readyz``) is 200 only while it is true *now* (the Go proxy latched ready forever):
every issuer has signing keys loaded (the last good keys count: an IdP outage does not drain the proxy),
kube-apiserver answered within ``UPSTREAM_FRESH_SECONDS`` (else we ask ``/readyz`` with our own
credentials), and we are not shutting down. ``/healthz`` (``/livez``, ``/live``) is 200 while the event
loop answers at all.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Final, cast

from kube_oidc_proxy.authn.jwks import KeySource
from kube_oidc_proxy.errors import ClientProtocolError, UpstreamError
from kube_oidc_proxy.http1.events import RequestHead
from kube_oidc_proxy.http1.request import RequestReader
from kube_oidc_proxy.http1.serialize import response_head
from kube_oidc_proxy.server.kubeclient import KubeClient
from kube_oidc_proxy.server.proxy import ProxyServer

UPSTREAM_FRESH_SECONDS: Final = 10.0
UPSTREAM_CHECK_TIMEOUT_SECONDS: Final = 5.0
READY_PATHS: Final = frozenset({b"/ready", b"/readyz"})
LIVE_PATHS: Final = frozenset({b"/healthz", b"/livez", b"/live"})


class Readiness:
    def __init__(self, key_sources: Sequence[KeySource], proxy: ProxyServer, client: KubeClient) -> None:
        self._key_sources = key_sources
        self._proxy = proxy
        self._client = client
        self._check: asyncio.Task[None] | None = None

    async def check(self) -> tuple[bool, dict[str, str]]:
        checks: dict[str, str] = {}
        if self._proxy.stopping:
            checks["shutdown"] = "shutting down"
        for source in self._key_sources:
            if not source.ready:
                checks[f"issuer {source.issuer_url}"] = f"no signing keys yet: {source.last_error or 'loading'}"
        if not self._upstream_fresh():
            if self._check is None:
                self._check = asyncio.ensure_future(self._check_upstream())
                self._check.add_done_callback(self._clear_check)
            await asyncio.shield(self._check)
            if not self._upstream_fresh():
                checks["kube-apiserver"] = "no answer from kube-apiserver (/readyz)"
        return not checks, checks

    def _clear_check(self, _: object) -> None:
        self._check = None

    def _upstream_fresh(self) -> bool:
        return time.monotonic() - self._proxy.last_upstream_answer < UPSTREAM_FRESH_SECONDS

    async def _check_upstream(self) -> None:
        try:
            status, _ = await asyncio.wait_for(self._client.request(b"GET", b"/readyz"), UPSTREAM_CHECK_TIMEOUT_SECONDS)
        except (TimeoutError, UpstreamError):
            return
        if status != 401 and status < 500:
            self._proxy.upstream_answered(status)


class ProbeConnection(asyncio.Protocol):
    """One probe request per connection; answered, then closed."""

    def __init__(self, readiness: Readiness, tasks: set[asyncio.Task[None]]) -> None:
        self._readiness = readiness
        self._tasks = tasks
        self._reader = RequestReader(max_head_bytes=8192, max_headers=64)
        self._transport: asyncio.Transport | None = None
        self._answered = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's SSL transport is not registered as an asyncio.Transport subclass: cast, don't check
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._answered:
            return
        try:
            events = self._reader.feed(data)
        except ClientProtocolError:
            self._reply(400, {"error": "bad request"})
            return
        for event in events:
            if isinstance(event, RequestHead):
                self._answered = True
                task = asyncio.ensure_future(self._answer(event))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                return

    async def _answer(self, head: RequestHead) -> None:
        path = head.target.split(b"?", 1)[0]
        if head.method not in (b"GET", b"HEAD"):
            self._reply(405, {"error": "method not allowed"})
        elif path in LIVE_PATHS:
            self._reply(200, {"status": "ok"})
        elif path in READY_PATHS:
            ready, checks = await self._readiness.check()
            self._reply(200 if ready else 503, {"status": "ok" if ready else "not ready", "checks": checks})
        else:
            self._reply(404, {"error": "not found"})

    def _reply(self, status: int, body_obj: object) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        body = json.dumps(body_obj).encode()
        self._transport.write(
            response_head(
                status,
                b"",
                [
                    (b"Content-Type", b"application/json"),
                    (b"Content-Length", str(len(body)).encode()),
                    (b"Connection", b"close"),
                ],
            )
            + body
        )
        self._transport.close()


async def start_probe_server(
    host: str, port: int, readiness: Readiness, tasks: set[asyncio.Task[None]], *, reuse_port: bool = False
) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: ProbeConnection(readiness, tasks), host=host or None, port=port, reuse_port=reuse_port
    )
