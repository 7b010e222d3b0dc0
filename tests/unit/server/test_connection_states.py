"""A stateful property test of one HTTP/1.1 client connection and its exchanges, without sockets.

The connection, the request sequence, the exchange and the relay are the real ones; the transport, the
gate (everyone is admitted) and kube-apiserver's connections are fakes. Hypothesis interleaves what a
client and kube-apiserver can do: pipelined requests (some closing the connection, HTTP/1.0 ones, some
with a body sent in pieces), response heads, bodies and ends, a client that stops reading and starts
again, a client that leaves (mid-body too), kube-apiserver lost mid-response. Whatever the order:

- answers go out in the order of the requests, each at most once, and nothing after the connection closed;
- while the client is full, kube-apiserver's connection for the current answer is not read;
- a connection goes back to the pool only between two messages and reading (the fake pool asserts it):
  never with part of a request body still to send;
- once the request that closes the connection is over, so is the connection;
- nothing is left running once the client has gone; no exchange raised.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any, Final, cast

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from kube_oidc_proxy.errors import UpstreamError
from kube_oidc_proxy.http1.events import CHUNK_END, MESSAGE_END, Body, ResponseEvent, ResponseHead
from kube_oidc_proxy.server.connection import ClientConnection
from tests.support.faketransport import FakeTransport
from tests.unit.server.test_exchange_without_sockets import ADMITTED, FakePool, FakeServer, FakeUpstream

# Hundreds of generated runs: seconds on a quiet machine, far longer on a loaded one (the usual guard is 60 s).
pytestmark = pytest.mark.timeout(600)

LOOP: Final = asyncio.new_event_loop()
TURNS: Final = 8


class EndlessPool(FakePool):
    """A new upstream connection whenever one is asked for; the test sees them all."""

    def __init__(self) -> None:
        super().__init__()
        self.made: list[FakeUpstream] = []
        self.bodies: dict[bytes, bytes] = {}  # by request target: the body each request has

    async def acquire(self) -> FakeUpstream:
        upstream = FakeUpstream()
        self.made.append(upstream)
        return upstream

    def release(self, upstream: FakeUpstream) -> None:
        head, _, body = bytes(upstream.written).partition(b"\r\n\r\n")
        target = head.split(b" ")[1]
        assert body == self.bodies.get(target, b""), "released in the middle of a request body"
        super().release(upstream)


def connection_server(pool: EndlessPool) -> FakeServer:
    """The fake server, with what a client connection also tells it (nothing it needs to keep)."""
    server = FakeServer(ADMITTED, pool)
    server.connection_opened = lambda conn: None  # type: ignore[attr-defined]
    server.connection_closed = lambda conn: None  # type: ignore[attr-defined]
    server.connection_refused = lambda peer, target: None  # type: ignore[attr-defined]
    return server


def settle(action: Callable[[], object] = lambda: None) -> None:
    """Do ``action`` on the loop (as a transport's callback would), then let every task make progress."""

    async def turns() -> None:
        action()
        for _ in range(TURNS):
            await asyncio.sleep(0)

    LOOP.run_until_complete(turns())


class ConnectionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.errors: list[dict[str, Any]] = []
        LOOP.set_exception_handler(lambda _, context: self.errors.append(context))
        self.pool = EndlessPool()
        self.server = connection_server(self.pool)
        self.transport = FakeTransport()
        self.conn = ClientConnection(cast(Any, self.server))
        self.transport.conn = self.conn

        settle(lambda: self.conn.connection_made(cast(Any, self.transport)))
        self.sent = 0  # requests sent
        self.closing_sent = False  # a request that ends the connection was sent
        self.body_owed = b""  # what the last request's body still has to send
        self.headed: list[FakeUpstream] = []  # upstream connections whose response head came

    # what the client does -------------------------------------------------------------------------

    @precondition(
        lambda self: (
            self.transport.reading and not self.transport.closing and not self.closing_sent and not self.body_owed
        )
    )
    @rule(kind=st.sampled_from(["get", "closing", "http/1.0", "post"]))
    def send_request(self, kind: str) -> None:
        self.sent += 1
        n = self.sent
        if kind == "http/1.0":
            request = b"GET /r%d HTTP/1.0\r\n\r\n" % n
        elif kind == "post":
            self.body_owed = self.pool.bodies[b"/r%d" % n] = b"body-%d" % n
            request = b"POST /r%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (n, len(self.body_owed))
        else:
            request = b"GET /r%d HTTP/1.1\r\nHost: x\r\n%s\r\n" % (n, b"Connection: close\r\n" * (kind == "closing"))
        self.closing_sent = kind in ("closing", "http/1.0")
        settle(lambda: self.conn.data_received(request))

    @precondition(lambda self: self.body_owed and self.transport.reading and not self.transport.closing)
    @rule(size=st.integers(min_value=1, max_value=8))
    def send_body_piece(self, size: int) -> None:
        piece, self.body_owed = self.body_owed[:size], self.body_owed[size:]
        settle(lambda: self.conn.data_received(piece))

    @precondition(lambda self: not self.transport.closing)
    @rule(full=st.booleans())
    def client_reads(self, full: bool) -> None:
        if full != self.conn.client_full:
            settle(self.conn.pause_writing if full else self.conn.resume_writing)

    @precondition(lambda self: not self.transport.closing)
    @rule()
    def client_leaves(self) -> None:
        settle(self.transport.close)

    @rule()
    def time_passes(self) -> None:
        settle()

    # what kube-apiserver does ---------------------------------------------------------------------

    def _answering(self) -> FakeUpstream | None:
        live = [u for u in self.pool.made if u.sink is not None and not u.closed and u not in self.pool.released]
        return live[-1] if live else None

    @precondition(lambda self: self._answering() is not None)
    @rule(data=st.data())
    def upstream_sends(self, data: st.DataObject) -> None:
        upstream = self._answering()
        assert upstream is not None and upstream.sink is not None
        sink = upstream.sink
        target = re.match(rb"[A-Z]+ (\S+)", bytes(upstream.written))
        assert target is not None
        # as a real reader reports them: a head first, then body and end; a lost connection forgets its sink
        headed = upstream in self.headed
        what = data.draw(st.sampled_from(["body", "end", "lost"] if headed else ["head", "lost"]))
        head = ResponseHead(200, b"", "1.1", [(b"Content-Type", b"text/plain")], True, "chunked", None)
        events: dict[str, list[ResponseEvent]] = {
            "head": [head],
            "body": [Body(b"<" + target.group(1) + b">"), CHUNK_END],
            "end": [MESSAGE_END],
        }
        if what == "lost":
            upstream.closed, upstream.sink = True, None
            settle(lambda: sink.on_upstream_lost(UpstreamError("kube-apiserver closed the connection", "lost")))
        else:
            if what == "head":
                self.headed.append(upstream)
            settle(lambda: sink.on_response_events(events[what]))

    # what must hold -------------------------------------------------------------------------------

    @invariant()
    def answers_go_out_in_request_order(self) -> None:
        seen = [int(n) for n in re.findall(rb"</r(\d+)>", bytes(self.transport.written))]
        assert seen == sorted(seen), seen

    @invariant()
    def a_full_client_holds_kube_apiserver_back(self) -> None:
        upstream = self._answering()
        if self.conn.client_full and upstream is not None and not self.transport.closing:
            assert upstream.read_paused

    @invariant()
    def the_connection_ends_after_the_request_that_closes_it(self) -> None:
        if self.closing_sent and not self.conn.requests.all:
            assert self.transport.closing

    @invariant()
    def no_exchange_raised(self) -> None:
        assert not self.errors, self.errors

    def teardown(self) -> None:
        if not self.transport.closing:
            settle(self.transport.close)
        settle()
        assert all(u.closed or u in self.pool.released for u in self.pool.made), "upstream work left running"
        assert not [t for t in asyncio.all_tasks(LOOP) if not t.done()], "tasks left running"
        LOOP.set_exception_handler(None)
        self.server.access_log.close()  # its writer thread: hundreds of runs would leave hundreds polling


ConnectionMachine.TestCase.settings = settings(max_examples=400, stateful_step_count=30, deadline=None)
test_one_connection_whatever_client_and_kube_apiserver_do = ConnectionMachine.TestCase
