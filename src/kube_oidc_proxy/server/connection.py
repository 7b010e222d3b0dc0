"""One client connection: TLS bytes in, exchanges (or a tunnel) out.

Callbacks stay synchronous and short: ``data_received`` feeds the request reader and dispatches events;
the awaiting happens in one task per exchange. Reading is paused for named reasons (body back-pressure, a
pipelined request, an upgrade being set up, a client that does not read its responses) and resumes only
when none is left.

Pipelined requests are answered in order, one at a time. A request that ends the connection (``Connection:
close``, or HTTP/1.0, whose connections the proxy does not keep) is its last: nothing after it is parsed or
answered (RFC 9112 §9.6: the server "MUST NOT process any further requests"; Go's server stops reading).
A request the parser refuses is answered (400 and the like, then the connection closed) after the ones it
completed before it; a request the error cut short gets no answer of its own.

Pipelining is bounded three ways, so a client that sends requests and never reads cannot make the proxy
hold more than a few: bytes go to the parser ``PARSE_PIECE`` at a time and stop once ``MAX_PIPELINED``
requests wait (the rest stay unparsed, reading paused); the next waiting request starts only while the
client takes what it is sent (``pause_writing``); and such a connection is closed after the idle timeout.

``--max-client-connections``: past it a connection's first request is answered 503 with ``Retry-After``
and the connection closed; past it by a sixteenth more (``proxy.OVER_CAPACITY_MINIMUM`` at least),
connections are closed unread.

Timers: an idle keep-alive connection closes after ``IDLE_TIMEOUT``; once a request head starts it must
complete within ``HEADER_TIMEOUT`` (slowloris). Responses and tunnels have no timeout: watches and exec
sessions may be quiet for hours.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Final, cast

from kube_oidc_proxy.errors import ClientProtocolError
from kube_oidc_proxy.http1.events import Body, MessageEnd, RequestEvent, RequestHead, Upgraded
from kube_oidc_proxy.http1.request import RequestReader
from kube_oidc_proxy.http1.serialize import status_response
from kube_oidc_proxy.server import readpause
from kube_oidc_proxy.server.exchange import Exchange
from kube_oidc_proxy.server.tunnel import Tunnel
from kube_oidc_proxy.server.upstream import tune_socket

if TYPE_CHECKING:
    from kube_oidc_proxy.server.proxy import ProxyServer

log = logging.getLogger("kop.connection")

# kube-apiserver: IdleTimeout 90 s, ReadHeaderTimeout 32 s (k8s.io/apiserver secure_serving.go).
IDLE_TIMEOUT_SECONDS: Final = 90.0
HEADER_TIMEOUT_SECONDS: Final = 32.0
# Requests parsed and waiting behind the one being answered. Go's and Python's clients never pipeline;
# this only bounds what one connection can make the proxy hold.
MAX_PIPELINED: Final = 4
# Bytes handed to the parser at once: the requests parsed from one piece are queued together, so this
# bounds how far a burst of tiny pipelined requests can go past MAX_PIPELINED (~26 bytes each at least).
PARSE_PIECE: Final = 8 * 1024
# A connection over --max-client-connections gets this long to send the request it is refused.
OVER_CAPACITY_HEADER_TIMEOUT_SECONDS: Final = 5.0


def peer_ip_of(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return "unknown"


class ClientConnection(asyncio.Protocol):
    __slots__ = (
        "_client_full",
        "_head_timer_armed",
        "_last_request",
        "_pause_reasons",
        "_pipeline",
        "_reading",
        "_refusal",
        "_requests_over",
        "_timer",
        "_unparsed",
        "_unparsed_at",
        "closed",
        "current",
        "over_capacity",
        "peer_ip",
        "reader",
        "server",
        "stopping",
        "transport",
        "tunnel",
    )

    def __init__(self, server: ProxyServer) -> None:
        self.server = server
        self.transport: asyncio.Transport  # set in connection_made, before any other callback
        self.peer_ip = ""
        self.reader: RequestReader | None = RequestReader()
        self.current: Exchange | None = None  # whose response is being produced
        self._reading: Exchange | None = None  # whose request body is being read
        self._pipeline: deque[Exchange] = deque()
        self.tunnel: Tunnel | None = None
        self.stopping = False
        self.closed = False
        self._pause_reasons: set[str] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._head_timer_armed = False
        self._unparsed = b""  # received, not yet given to the parser (a pipeline is full)
        self._unparsed_at = 0
        self._client_full = False  # the client is not reading what we send it
        self.over_capacity = False  # over --max-client-connections: the first request is refused
        self._last_request = False  # the request being read ends the connection: its end ends the parsing
        self._requests_over = False  # nothing more is read as a request on this connection
        self._refusal: ClientProtocolError | None = None  # answered once the requests before it are

    # asyncio callbacks ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's SSL transport is not registered as an asyncio.Transport subclass: cast, don't check
        self.transport = cast(asyncio.Transport, transport)
        self.peer_ip = peer_ip_of(transport)
        tune_socket(transport)
        self.server.connection_opened(self)
        if self.over_capacity:
            self._arm_timer(OVER_CAPACITY_HEADER_TIMEOUT_SECONDS)
        else:
            self._arm_idle_timer()

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.from_client(data)
            return
        if self._requests_over:
            return  # after the connection's last request, or a refused one: not a request, not an error
        if self._unparsed:  # reading is paused, but a transport may still deliver what it had read
            self._unparsed = self._unparsed[self._unparsed_at :] + data
            self._unparsed_at = 0
            return
        self._unparsed, self._unparsed_at = data, 0
        self._parse()

    def _parse(self) -> None:
        """Feed the parser what waits, a piece at a time, until it is all parsed or the pipeline is full."""
        while self._unparsed and len(self._pipeline) < MAX_PIPELINED and not self.closed and not self._requests_over:
            data, start = self._unparsed, self._unparsed_at
            end = min(start + PARSE_PIECE, len(data))
            if end == len(data):
                self._unparsed, self._unparsed_at = b"", 0
            else:
                self._unparsed_at = end
            piece = data if start == 0 and end == len(data) else memoryview(data)[start:end]
            reader = self.reader
            if reader is None:
                reader = self.reader = RequestReader()
            if reader.upgraded:  # bytes behind an upgrade request belong to its tunnel
                self._on_upgrade(bytes(piece))
                continue
            try:
                events = reader.feed(piece)
            except ClientProtocolError as exc:
                self._dispatch(reader.completed_before_error)  # answered first, in order
                self._protocol_error(exc)
                return
            self._dispatch(events)
        if self._unparsed:
            self.pause_reading("pipeline")
        elif self.reader is not None and self.reader.in_head and not self._head_timer_armed:
            self._arm_timer(HEADER_TIMEOUT_SECONDS)
            self._head_timer_armed = True

    def _dispatch(self, events: list[RequestEvent]) -> None:
        for event in events:
            if type(event) is Body:
                if self._reading is not None:
                    self._reading.receive_body(event.data)
            elif type(event) is RequestHead:
                self._on_head(event)
            elif type(event) is MessageEnd:
                if self._reading is not None:
                    self._reading.body_complete()
                    self._reading = None
                if self._last_request:
                    self._stop_reading_requests()
                    return  # what the same read held after it is not a request
            elif type(event) is Upgraded:
                self._on_upgrade(event.tail)

    def eof_received(self) -> bool | None:
        if self.tunnel is not None:
            self.tunnel.client_eof()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        self.server.connection_closed(self)
        if self.tunnel is not None:
            self.tunnel.client_closed()
        for exchange in (self.current, *self._pipeline):
            if exchange is not None:
                exchange.client_lost()
                if exchange.task is not None and exchange is not self.current:
                    exchange.task.cancel()
        self._pipeline.clear()

    def pause_writing(self) -> None:
        self._client_full = True
        if self.tunnel is not None:
            self.tunnel.client_paused(True)
            return
        self.pause_reading("client-full")  # more requests would only queue more answers
        if self.current is not None and self.current.upstream is not None:
            self.current.upstream.pause_reading()

    def resume_writing(self) -> None:
        self._client_full = False
        if self.tunnel is not None:
            self.tunnel.client_paused(False)
            return
        if self.current is not None and self.current.upstream is not None:
            self.current.upstream.resume_reading()
        elif self.current is None and self._pipeline and not self.closed:
            self._start_next()
        self.resume_reading("client-full")

    # requests ---------------------------------------------------------------------------------------

    def _on_head(self, head: RequestHead) -> None:
        if self.transport.is_closing():
            return  # pipelined behind a request that closed the connection
        self._cancel_timer()
        self._head_timer_armed = False
        if self.over_capacity:
            self._refuse_over_capacity(head)
            return
        exchange = Exchange(self, head)
        self._reading = exchange if not exchange.body_done else None
        # (an upgrade request's own rules: the bytes after it belong to its tunnel, or are dropped with it)
        self._last_request = not exchange.keep_alive and not head.upgrade
        if self.current is None:
            self._start(exchange)
        else:
            self._pipeline.append(exchange)
            self.pause_reading("pipeline")

    def _on_upgrade(self, tail: bytes) -> None:
        exchange = self._pipeline[-1] if self._pipeline else self.current
        if exchange is not None:
            exchange.upgrade_tail += tail
        self.pause_reading("upgrade")

    def _start(self, exchange: Exchange) -> None:
        self.current = exchange
        exchange.task = self.server.spawn(exchange.run())

    def exchange_finished(self, exchange: Exchange) -> None:
        if exchange is not self.current:
            return
        self.current = None
        if self.tunnel is not None:
            self.resume_reading("upgrade")
            return
        if not exchange.keep_alive or self.stopping or self.closed:
            self.close()
            return
        if not self._pipeline and self._refusal is not None:
            self._refuse(self._refusal)
        elif not self._pipeline:
            self._arm_idle_timer()
        elif self._client_full:
            self._arm_idle_timer()  # resume_writing starts the next one; a client that never reads is let go
        else:
            self._start_next()

    def _start_next(self) -> None:
        self._cancel_timer()
        self._start(self._pipeline.popleft())
        self._parse()
        if not self._pipeline and not self._unparsed:
            self.resume_reading("pipeline")

    def start_tunnel(self, tunnel: Tunnel) -> None:
        self.tunnel = tunnel
        self.reader = None
        self._cancel_timer()

    def tunnel_upstream_paused(self, paused: bool) -> None:
        """kube-apiserver's side of the tunnel is full (or drained): stop (or resume) reading the client."""
        if paused:
            self.pause_reading("tunnel")
        else:
            self.resume_reading("tunnel")

    def release_reader(self) -> None:
        """A long stream began: drop the idle parser (it is made again if the client sends more)."""
        reader = self.reader
        if self._reading is None and not self._pipeline and not self._unparsed and reader and not reader.in_head:
            self.reader = None

    # flow control and writing ---------------------------------------------------------------------

    def pause_reading(self, reason: str) -> None:
        if not self._pause_reasons and not self.closed:
            readpause.pause_reading(self.transport)
        self._pause_reasons.add(reason)

    def resume_reading(self, reason: str) -> None:
        if reason in self._pause_reasons:
            self._pause_reasons.discard(reason)
            if not self._pause_reasons and not self.closed:
                readpause.resume_reading(self.transport)

    def write(self, data: bytes) -> None:
        if not self.closed and not self.transport.is_closing():
            self.transport.write(data)

    def writelines(self, data: list[bytes]) -> None:
        if not self.closed and not self.transport.is_closing():
            self.transport.writelines(data)

    # endings ------------------------------------------------------------------------------------------

    def _refuse_over_capacity(self, head: RequestHead) -> None:
        self.server.connection_refused(self.peer_ip, head.target)
        message = "this proxy is serving as many connections as it is allowed; retry shortly"
        self.write(status_response(503, message, close=True, extra=[(b"Retry-After", b"1")]))
        self.reader = None
        self._unparsed = b""
        self.close()

    def _stop_reading_requests(self) -> None:
        """Nothing more is parsed as a request here; bytes that still arrive are dropped unread."""
        self._requests_over = True
        self._unparsed, self._unparsed_at = b"", 0
        self.reader = None

    def _protocol_error(self, exc: ClientProtocolError) -> None:
        if self._requests_over:
            return  # bytes after the connection's last request (llhttp: "Data after `Connection: close`")
        self.server.access_log.refused(self.peer_ip, exc.code, exc.detail)
        log.info("bad request from %s: %s", self.peer_ip, exc.detail)
        self._stop_reading_requests()
        broken, self._reading = self._reading, None  # a request the error cut short: no answer of its own
        if broken is not None and broken is self.current:
            self.close()  # its body is on its way upstream: both are cut, as if the client had left
            return
        if broken is not None and broken in self._pipeline:
            self._pipeline.remove(broken)  # never started
        if self.current is None and not self._pipeline and self.tunnel is None:
            self._refuse(exc)
        else:
            self._refusal = exc  # after the answers to the requests before it (exchange_finished)

    def _refuse(self, exc: ClientProtocolError) -> None:
        self.write(status_response(exc.code, exc.message, close=True))
        self.close()

    def shutdown(self) -> None:
        """Graceful stop: idle connections close now, busy ones after their response."""
        self.stopping = True
        if self.tunnel is not None:
            return  # cut by the server after the grace period
        if self.current is None:
            self.close()
        elif self.current.is_stream:
            self.current.end_stream()

    def close(self) -> None:
        if not self.closed:
            self._cancel_timer()
            self.transport.close()

    def abort(self) -> None:
        if not self.closed:
            self._cancel_timer()
            self.transport.abort()

    # timers -------------------------------------------------------------------------------------------

    def _arm_idle_timer(self) -> None:
        self._head_timer_armed = False
        self._arm_timer(IDLE_TIMEOUT_SECONDS)

    def _arm_timer(self, seconds: float) -> None:
        self._cancel_timer()
        self._timer = asyncio.get_running_loop().call_later(seconds, self._timed_out)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if self.current is None and self.tunnel is None and not self.closed:
            if self.reader is not None and self.reader.in_head:
                self.server.access_log.refused(self.peer_ip, 408, "timed out reading the request header")
                self.write(status_response(408, "timed out reading the request header", close=True))
            self.close()
