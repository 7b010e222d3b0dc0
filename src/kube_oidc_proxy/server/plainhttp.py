"""A tiny plain-HTTP listener for the kubelet's probes and Prometheus' scrapes: one request per
connection, answered by an async handler, then closed. No TLS, no keep-alive, no request bodies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from kube_oidc_proxy.errors import ClientProtocolError
from kube_oidc_proxy.http1.events import RequestHead
from kube_oidc_proxy.http1.request import RequestReader
from kube_oidc_proxy.http1.serialize import response_head


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    content_type: bytes
    body: bytes


Handler = Callable[[RequestHead], Awaitable[Reply]]


class OneRequestConnection(asyncio.Protocol):
    def __init__(self, handler: Handler, tasks: set[asyncio.Task[None]]) -> None:
        self._handler = handler
        self._tasks = tasks
        self._reader = RequestReader(max_head_bytes=8192, max_headers=64)
        self._transport: asyncio.Transport | None = None
        self._answered = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._answered:
            return
        try:
            events = self._reader.feed(data)
        except ClientProtocolError:
            self._answered = True
            self._reply(Reply(400, b"text/plain", b"bad request\n"), head_only=False)
            return
        for event in events:
            if isinstance(event, RequestHead):
                self._answered = True
                task = asyncio.ensure_future(self._answer(event))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                return

    async def _answer(self, head: RequestHead) -> None:
        if head.method not in (b"GET", b"HEAD"):
            reply = Reply(405, b"text/plain", b"method not allowed\n")
        else:
            reply = await self._handler(head)
        self._reply(reply, head_only=head.method == b"HEAD")

    def _reply(self, reply: Reply, *, head_only: bool) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        headers = [
            (b"Content-Type", reply.content_type),
            (b"Content-Length", str(len(reply.body)).encode()),
            (b"Connection", b"close"),
        ]
        self._transport.write(response_head(reply.status, b"", headers) + (b"" if head_only else reply.body))
        self._transport.close()


async def start_plain_server(
    host: str, port: int, handler: Handler, tasks: set[asyncio.Task[None]], *, reuse_port: bool = False
) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: OneRequestConnection(handler, tasks), host=host or None, port=port, reuse_port=reuse_port
    )
