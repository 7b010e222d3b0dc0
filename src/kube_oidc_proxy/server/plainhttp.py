"""A tiny plain-HTTP listener for the kubelet's probes and Prometheus' scrapes: one request per
connection, answered by an async handler, then closed. No TLS, no keep-alive, no request bodies.

Anyone on the pod network can reach it, unauthenticated, so it is bounded (``Limits``): the request head
must arrive within ``head_timeout`` of the connection, the whole exchange must end within
``connection_timeout`` (a handler still running then is cancelled), and at most ``max_connections`` are
open at once per listener. A connection beyond the cap is closed as soon as it is accepted, with nothing
written: answering it would cost what the cap saves, and the kubelet and Prometheus simply try again at
their next period (a probe fails only after ``failureThreshold`` misses in a row).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, cast

from kube_oidc_proxy.errors import ClientProtocolError
from kube_oidc_proxy.http1.events import RequestHead
from kube_oidc_proxy.http1.request import RequestReader
from kube_oidc_proxy.http1.serialize import response_head

log = logging.getLogger("kop.probe")

# A probe or a scrape sends its head in one packet; 10 s is Prometheus' default scrape timeout and above
# any sensible probe timeoutSeconds, and it cuts a client that trickles a head (slowloris) quickly.
HEAD_TIMEOUT_SECONDS: Final = 10.0
# From accept to close: more than the slowest answer (readiness asks kube-apiserver for up to 5 s, a
# --workers metrics scrape reads every worker's files) and than any prober waits for one.
CONNECTION_TIMEOUT_SECONDS: Final = 30.0
# The kubelet holds a few (startup, liveness, readiness probes), Prometheus one per scrape: 64 leaves room
# for several scrapers, while a flood of idle connections costs at most 64 sockets per listener.
MAX_CONNECTIONS: Final = 64
REFUSAL_LOG_INTERVAL_SECONDS: Final = 10.0


@dataclass(frozen=True, slots=True)
class Limits:
    head_timeout: float = HEAD_TIMEOUT_SECONDS
    connection_timeout: float = CONNECTION_TIMEOUT_SECONDS
    max_connections: int = MAX_CONNECTIONS


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    content_type: bytes
    body: bytes


Handler = Callable[[RequestHead], Awaitable[Reply]]


class Listener:
    """What the connections of one listener share: its limits and how many are open."""

    def __init__(self, what: str, limits: Limits) -> None:
        self.what = what
        self.limits = limits
        self.open = 0
        self.refused = 0
        self._refusal_logged = float("-inf")

    def admit(self) -> bool:
        if self.open >= self.limits.max_connections:
            self.refused += 1
            now = time.monotonic()
            if now - self._refusal_logged >= REFUSAL_LOG_INTERVAL_SECONDS:
                self._refusal_logged = now
                log.warning(
                    "%s listener: %d connections open, its limit; closing new ones (%d so far)",
                    self.what,
                    self.open,
                    self.refused,
                )
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open -= 1


class OneRequestConnection(asyncio.Protocol):
    def __init__(self, handler: Handler, tasks: set[asyncio.Task[None]], listener: Listener) -> None:
        self._handler = handler
        self._tasks = tasks
        self._listener = listener
        self._reader = RequestReader(max_head_bytes=8192, max_headers=64)
        self._transport: asyncio.Transport | None = None
        self._admitted = False
        self._answered = False
        self._task: asyncio.Task[None] | None = None
        self._timers: list[asyncio.TimerHandle] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        if not self._listener.admit():
            self._transport.abort()
            return
        self._admitted = True
        loop = asyncio.get_running_loop()
        limits = self._listener.limits
        self._timers = [
            loop.call_later(limits.head_timeout, self._head_timed_out),
            loop.call_later(limits.connection_timeout, self._cut),
        ]

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in self._timers:
            timer.cancel()
        if self._task is not None:
            self._task.cancel()  # nobody is left to read the answer
        if self._admitted:
            self._admitted = False
            self._listener.release()

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
                self._task = asyncio.ensure_future(self._answer(event))
                self._tasks.add(self._task)
                self._task.add_done_callback(self._tasks.discard)
                return

    def _head_timed_out(self) -> None:
        if not self._answered:
            self._cut()

    def _cut(self) -> None:
        if self._transport is not None:
            self._transport.abort()

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
    host: str,
    port: int,
    handler: Handler,
    tasks: set[asyncio.Task[None]],
    *,
    reuse_port: bool = False,
    what: str = "plain HTTP",
    limits: Limits = Limits(),
) -> asyncio.Server:
    """Listen on ``host:port``; ``what`` names the listener in logs."""
    loop = asyncio.get_running_loop()
    listener = Listener(what, limits)
    return await loop.create_server(
        lambda: OneRequestConnection(handler, tasks, listener), host=host or None, port=port, reuse_port=reuse_port
    )
