"""Fuzz target: pipelined client bytes through ``ClientConnection``, with a fake transport and fake exchanges.

The connection is the real one: it feeds the parser in pieces, queues pipelined requests, pauses and resumes
reading, and decides what is answered, in which order, and when the connection ends. The exchanges are fakes
that "forward" a request (record its target) once its body is complete and answer it at once; the transport
records what is written and delivers the client's bytes, cut at random points, only while reading is on.
What must hold, whatever the client sent (``test_fuzz_request_path``'s hostile requests, some with
``Connection: close``, HTTP/1.0, upgrades, corrupted bytes):

- every request the parser completed is forwarded once, in order, and answered in that order;
- nothing after a request that ends the connection (``Connection: close``, HTTP/1.0, an upgrade) is forwarded
  or answered, and no refusal is written for it: that request's answer is the last thing on the connection;
- a request the parser refuses is answered with its Status after the answers to every request before it,
  then the connection is closed (a request the error cut short, once started, may take the Status's place:
  its body was on its way upstream, so the connection is cut);
- the connection is closed when, and only when, one of those ends it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Final, cast
from unittest import mock

from hypothesis import strategies as st

from kube_oidc_proxy.errors import ClientProtocolError
from kube_oidc_proxy.http1.events import MESSAGE_END, RequestHead, Upgraded
from kube_oidc_proxy.http1.request import RequestReader
from kube_oidc_proxy.http1.serialize import status_response
from kube_oidc_proxy.server import http1_requests
from kube_oidc_proxy.server.connection import ClientConnection
from kube_oidc_proxy.server.http1_side import Http1Side
from tests.fuzz.runner import fuzz
from tests.fuzz.test_fuzz_request_path import connections, cut
from tests.support.faketransport import FakeTransport

# Loop turns that let every exchange that can make progress make it (each awaits a couple of times).
SETTLE_TURNS: Final = 8
LOOP: Final = asyncio.new_event_loop()


class FakeAccessLog:
    def refused(self, peer: str, code: int, detail: str) -> None:
        pass


class FakeServer:
    def __init__(self) -> None:
        self.access_log = FakeAccessLog()
        self.forwarded: list[bytes] = []

    def connection_opened(self, conn: ClientConnection) -> None:
        pass

    def connection_closed(self, conn: ClientConnection) -> None:
        pass

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(coroutine)


def answer(target: bytes) -> bytes:
    return b"<answer to " + target + b">"


class FakeBody:
    def __init__(self, exchange: FakeExchange, done: bool) -> None:
        self._exchange = exchange
        self.done = done

    def receive(self, data: bytes) -> None:
        pass

    def complete(self) -> None:
        self.done = True
        self._exchange.ready.set()


class FakeExchange:
    """Forwards its request once the body is complete, then answers whole, through its HTTP/1.1 side."""

    def __init__(self, server: FakeServer, client: Http1Side, head: RequestHead) -> None:
        self.server = server
        self.client = client
        self.head = head
        self.task: asyncio.Task[None] | None = None
        self.streaming = False
        self.ready = asyncio.Event()
        self.body = FakeBody(self, head.framing == "none")
        self._lost = False
        if self.body.done:
            self.ready.set()

    def client_lost(self) -> None:
        self._lost = True
        self.ready.set()

    def end_stream(self) -> None:
        pass

    async def run(self) -> None:
        try:
            await self.ready.wait()
            if not self._lost:
                self.server.forwarded.append(self.head.target)
                await asyncio.sleep(0)  # upstream's answer comes later
                self.client.send_body(answer(self.head.target))
                self.client.send_end()
        finally:
            self.client.finished()


async def settle() -> None:
    for _ in range(SETTLE_TURNS):
        await asyncio.sleep(0)


async def drive(pieces: list[bytes]) -> tuple[FakeServer, FakeTransport]:
    server = FakeServer()
    transport = FakeTransport()
    conn = ClientConnection(cast(Any, server))
    transport.conn = conn
    conn.connection_made(cast(Any, transport))
    waiting = list(pieces)
    while waiting and transport.reading and not transport.closing:
        conn.data_received(waiting.pop(0))
        await settle()
    await settle()
    if not transport.closing:  # the client leaves: whatever still waits for a body is dropped
        transport.closing = True
        conn.connection_lost(None)
    await settle()
    for task in asyncio.all_tasks():
        if task is not asyncio.current_task():
            task.cancel()
    return server, transport


def expected(data: bytes) -> tuple[list[bytes], bytes, bool, bool]:
    """What the connection must forward and answer, read by a fresh reader in one piece: the completed
    requests up to the one that ends the connection; the refusal's status, unless such a request came first;
    whether a request was cut short by the refusal; whether the connection must end."""
    reader = RequestReader()
    error: ClientProtocolError | None = None
    try:
        events = reader.feed(data)
    except ClientProtocolError as exc:
        events, error = reader.completed_before_error, exc
    targets: list[bytes] = []
    head: RequestHead | None = None
    for event in events:
        if isinstance(event, RequestHead):
            head = event
        elif event is MESSAGE_END:
            assert head is not None
            targets.append(head.target)
            if head.upgrade or not (head.keep_alive and head.http_version == "1.1"):
                return targets, b"", False, True
        elif isinstance(event, Upgraded):
            return targets, b"", False, True
    if error is None:
        return targets, b"", False, False
    return targets, status_response(error.code, error.message, close=True), _cut_short(data, len(targets)), True


def _cut_short(data: bytes, complete: int) -> bool:
    """Whether a request head beyond the ``complete`` ones was read before the refusal (fed byte by byte)."""
    reader = RequestReader()
    heads = 0
    try:
        for i in range(len(data)):
            heads += sum(isinstance(e, RequestHead) for e in reader.feed(data[i : i + 1]))
    except ClientProtocolError:
        pass
    return heads > complete


@fuzz(data=connections(), points=st.lists(st.integers(min_value=0, max_value=10_000), max_size=6))
def test_each_request_is_answered_once_in_order_and_nothing_after_the_last(data: bytes, points: list[int]) -> None:
    targets, refusal, cut_short, ends = expected(data)
    with mock.patch.object(http1_requests, "Exchange", FakeExchange):
        server, transport = LOOP.run_until_complete(drive(cut(data, points)))
    assert server.forwarded == targets
    answers = b"".join(map(answer, targets))
    written = bytes(transport.written)
    assert written.startswith(answers), (written, targets)
    rest = written[len(answers) :]
    if cut_short and rest == b"":
        pass  # the request the error cut short had started: the connection was cut instead of refused
    else:
        assert rest == refusal, rest  # after the last request nothing, not even a refusal of the bytes after it
    if ends:
        assert transport.closing
