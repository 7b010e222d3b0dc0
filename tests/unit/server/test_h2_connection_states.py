"""A stateful property test of one HTTP/2 client connection and its exchanges, without sockets.

The connection, its streams' sides, the exchanges and the relays are the real ones; the client is the h2
library's client side (so every frame the proxy writes is checked by an HTTP/2 implementation, flow control
included), the transport, the gate (everyone is admitted) and kube-apiserver's connections are fakes. The
client's stream windows are small, so responses wait for them. Hypothesis interleaves: streams opened (some
with a body sent in pieces), windows opened, streams reset, a client that stops reading and starts again,
a client that leaves; kube-apiserver's heads, bodies, ends and lost connections, for any stream. Whatever
the order:

- each stream gets only its own response bytes, in order, never more than its window allowed (the client
  library would raise), and a stream the proxy ends is never also failed;
- while the client is not reading, or a stream has more than ``HIGH_WATER`` waiting for its window,
  kube-apiserver's connection for it is not read;
- a connection goes back to the pool only with its request body all sent;
- nothing is left running once the client has gone; no exchange raised.
"""

from __future__ import annotations

import asyncio
import functools
import re
from typing import Any, Final, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from kube_oidc_proxy.errors import UpstreamError
from kube_oidc_proxy.http1.events import CHUNK_END, MESSAGE_END, Body, ResponseEvent, ResponseHead
from kube_oidc_proxy.server.h2_connection import H2ClientConnection
from kube_oidc_proxy.server.h2_side import HIGH_WATER
from tests.support.faketransport import FakeTransport
from tests.unit.server.test_connection_states import LOOP, EndlessPool, connection_server, settle
from tests.unit.server.test_exchange_without_sockets import FakeUpstream

# Hundreds of generated runs: seconds on a quiet machine, far longer on a loaded one (the usual guard is 60 s).
pytestmark = pytest.mark.timeout(600)

CLIENT_WINDOW: Final = 1000  # the client's stream windows: most responses wait for WINDOW_UPDATEs
MAX_STREAMS: Final = 4
CLIENT_RESET: Final = -1  # a stream the client reset (not an error code the proxy sent)


class StreamSeen:
    def __init__(self, number: int) -> None:
        self.number = number
        self.status = 0
        self.body = bytearray()
        self.ended = False
        self.reset: int | None = None
        self.body_owed = b""


class H2ConnectionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.errors: list[dict[str, Any]] = []
        LOOP.set_exception_handler(lambda _, context: self.errors.append(context))
        self.pool = EndlessPool()
        self.server = connection_server(self.pool)
        self.transport = FakeTransport()
        self.conn = H2ClientConnection(cast(Any, self.server), MAX_STREAMS)
        self.transport.conn = self.conn
        self.client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.client.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: CLIENT_WINDOW}
        )
        self.client.initiate_connection()
        self.read = 0  # bytes of the proxy's output the client has read
        self.streams: dict[int, StreamSeen] = {}
        self.opened = 0
        self.headed: list[FakeUpstream] = []
        self.relayed: dict[int, int] = {}  # by request number: body bytes kube-apiserver sent
        self.answered: set[int] = set()  # request numbers whose answer kube-apiserver ended
        self.goaway = False
        settle(lambda: self.conn.connection_made(cast(Any, self.transport)))
        self._exchange_frames()

    # the wire ---------------------------------------------------------------------------------------

    def _exchange_frames(self) -> None:
        """Client bytes to the proxy, the proxy's bytes to the client, until neither has more."""
        for _ in range(10):
            outgoing = self.client.data_to_send()
            if outgoing and not self.transport.closing:
                settle(functools.partial(self.conn.data_received, outgoing))
            incoming = bytes(self.transport.written[self.read :])
            self.read += len(incoming)
            if incoming:
                for event in self.client.receive_data(incoming):
                    self._seen(event)
            if not outgoing and not incoming:
                return

    def _seen(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = True
            return
        seen = self.streams.get(getattr(event, "stream_id", 0))
        if seen is None:
            return
        if isinstance(event, h2.events.ResponseReceived):
            seen.status = int(dict(event.headers)[b":status"])
        elif isinstance(event, h2.events.DataReceived):
            assert not seen.ended and seen.reset is None, "data after the stream's end"
            seen.body += event.data
        elif isinstance(event, h2.events.StreamEnded):
            seen.ended = True
        elif isinstance(event, h2.events.StreamReset):
            assert not seen.ended or event.error_code == h2.errors.ErrorCodes.NO_ERROR, "ended, then failed"
            seen.reset = int(event.error_code)

    def _open(self) -> list[int]:
        """Streams either side may still send on (an answer may end before its request's body does)."""
        return [sid for sid, s in self.streams.items() if s.reset is None and (not s.ended or s.body_owed)]

    def _usable(self) -> bool:
        return not self.transport.closing and not self.goaway

    # what the client does ---------------------------------------------------------------------------

    @initialize(posts=st.lists(st.booleans(), min_size=1, max_size=MAX_STREAMS))
    def open_streams(self, posts: list[bool]) -> None:
        for post in posts:
            self.open_stream(post)

    @precondition(lambda self: self._usable() and self.client.open_outbound_streams < MAX_STREAMS)
    @rule(post=st.booleans())
    def open_stream(self, post: bool) -> None:
        self.opened += 1
        stream_id = self.client.get_next_available_stream_id()
        seen = self.streams[stream_id] = StreamSeen(self.opened)
        target = b"/r%d" % self.opened
        fields = [(b":method", b"POST" if post else b"GET"), (b":scheme", b"https"), (b":authority", b"x")]
        fields.append((b":path", target))
        if post:
            seen.body_owed = self.pool.bodies[target] = b"body-%d" % self.opened
            fields.append((b"content-length", b"%d" % len(seen.body_owed)))
        self.client.send_headers(stream_id, fields, end_stream=not post)
        self._exchange_frames()

    @precondition(lambda self: self._usable() and any(self.streams[s].body_owed for s in self._open()))
    @rule(data=st.data(), size=st.integers(min_value=1, max_value=8))
    def send_body_piece(self, data: st.DataObject, size: int) -> None:
        stream_id = data.draw(st.sampled_from([s for s in self._open() if self.streams[s].body_owed]))
        seen = self.streams[stream_id]
        piece, seen.body_owed = seen.body_owed[:size], seen.body_owed[size:]
        self.client.send_data(stream_id, piece, end_stream=not seen.body_owed)
        self._exchange_frames()

    @precondition(lambda self: self._usable() and self._open())
    @rule(data=st.data())
    def client_resets(self, data: st.DataObject) -> None:
        stream_id = data.draw(st.sampled_from(self._open()))
        self.client.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
        self.streams[stream_id].reset = CLIENT_RESET
        self._exchange_frames()

    @precondition(lambda self: self._usable() and self._open())
    @rule(data=st.data(), size=st.integers(min_value=1, max_value=3 * CLIENT_WINDOW))
    def client_opens_a_window(self, data: st.DataObject, size: int) -> None:
        stream_id = data.draw(st.sampled_from(self._open()))
        self.client.increment_flow_control_window(size, stream_id)
        self.client.increment_flow_control_window(size)
        self._exchange_frames()

    @precondition(lambda self: not self.transport.closing)
    @rule(full=st.booleans())
    def client_reads(self, full: bool) -> None:
        if full != self.conn.client_full:
            settle(self.conn.pause_writing if full else self.conn.resume_writing)
            self._exchange_frames()

    @precondition(lambda self: not self.transport.closing and self.answered)  # (else most runs end at once)
    @rule()
    def client_leaves(self) -> None:
        settle(self.transport.close)

    @rule()
    def time_passes(self) -> None:
        settle()
        self._exchange_frames()

    # what kube-apiserver does -----------------------------------------------------------------------

    def _answering(self) -> list[FakeUpstream]:
        return [u for u in self.pool.made if u.sink is not None and not u.closed and u not in self.pool.released]

    def _headed(self, headed: bool) -> list[FakeUpstream]:
        return [u for u in self._answering() if (u in self.headed) == headed]

    def _deliver(self, upstream: FakeUpstream, events: list[ResponseEvent]) -> None:
        sink = upstream.sink
        assert sink is not None
        settle(lambda: sink.on_response_events(events))
        self._exchange_frames()

    @staticmethod
    def _number(upstream: FakeUpstream) -> int:
        target = re.match(rb"[A-Z]+ /r(\d+)", bytes(upstream.written))
        assert target is not None
        return int(target.group(1))

    @precondition(lambda self: self._headed(False))
    @rule(data=st.data())
    def upstream_answers(self, data: st.DataObject) -> None:
        upstream = data.draw(st.sampled_from(self._headed(False)))
        self.headed.append(upstream)
        head = ResponseHead(200, b"", "1.1", [(b"Content-Type", b"text/plain")], True, "chunked", None)
        self._deliver(upstream, [head])

    @precondition(lambda self: self._headed(True))
    @rule(data=st.data(), size=st.sampled_from([10, 3000, HIGH_WATER + CLIENT_WINDOW + 1]))
    def upstream_sends(self, data: st.DataObject, size: int) -> None:
        """Some bytes of the answer; the largest is more than a stream may hold waiting for its window."""
        upstream = data.draw(st.sampled_from(self._headed(True)))
        number = self._number(upstream)
        self.relayed[number] = self.relayed.get(number, 0) + size
        self._deliver(upstream, [Body(b"</r%d>" % number + b"." * (size - len(b"</r%d>" % number))), CHUNK_END])

    @precondition(lambda self: self._headed(True))
    @rule(data=st.data())
    def upstream_ends(self, data: st.DataObject) -> None:
        upstream = data.draw(st.sampled_from(self._headed(True)))
        self.answered.add(self._number(upstream))
        self._deliver(upstream, [MESSAGE_END])

    @precondition(lambda self: self._answering())
    @rule(data=st.data())
    def upstream_lost(self, data: st.DataObject) -> None:
        upstream = data.draw(st.sampled_from(self._answering()))
        sink = upstream.sink
        assert sink is not None
        upstream.closed, upstream.sink = True, None
        settle(lambda: sink.on_upstream_lost(UpstreamError("kube-apiserver closed the connection", "lost")))
        self._exchange_frames()

    # what must hold ---------------------------------------------------------------------------------

    @invariant()
    def each_stream_gets_only_its_own_bytes(self) -> None:
        for seen in self.streams.values():
            tags = set(re.findall(rb"<(/r\d+)>", bytes(seen.body)))
            assert tags <= {b"/r%d" % seen.number}, (seen.number, tags)

    @invariant()
    def a_full_client_or_stream_holds_kube_apiserver_back(self) -> None:
        if self.transport.closing:
            return
        for side in self.conn.sides.values():
            upstream = side.exchange.relay.upstream
            if upstream is not None and not side.reset and (self.conn.client_full or side.pending_bytes > HIGH_WATER):
                assert cast(FakeUpstream, upstream).read_paused, "kube-apiserver read for a stream that is full"

    @invariant()
    def no_exchange_raised(self) -> None:
        assert not self.errors, self.errors

    def teardown(self) -> None:
        if self._usable():  # the client reads and opens every window: every answer kube-apiserver ended arrives
            if self.conn.client_full:
                settle(self.conn.resume_writing)
            for _ in range(5):
                for stream_id in self._open():
                    self.client.increment_flow_control_window(1 << 20, stream_id)
                self.client.increment_flow_control_window(1 << 20)
                self._exchange_frames()
            for seen in self.streams.values():
                if seen.number in self.answered and seen.reset != CLIENT_RESET:
                    assert seen.ended, f"/r{seen.number} was answered but its stream never ended"
                    assert len(seen.body) == self.relayed.get(seen.number, 0), f"/r{seen.number} lost bytes"
        if not self.transport.closing:
            settle(self.transport.close)
        settle()
        assert all(u.closed or u in self.pool.released for u in self.pool.made), "upstream work left running"
        assert not [t for t in asyncio.all_tasks(LOOP) if not t.done()], "tasks left running"
        LOOP.set_exception_handler(None)
        self.server.access_log.close()  # its writer thread: hundreds of runs would leave hundreds polling


H2ConnectionMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=30, deadline=None)
test_one_h2_connection_whatever_client_and_kube_apiserver_do = H2ConnectionMachine.TestCase
