"""The requests of one HTTP/1.1 connection, in order: parsing, pipelining, and which request is the last.

Pipelined requests are answered in order, one at a time. A request that ends the connection (``Connection:
close``, or HTTP/1.0, whose connections the proxy does not keep) is its last: nothing after it is parsed or
answered (RFC 9112 §9.6: the server "MUST NOT process any further requests"; Go's server stops reading).
A request the parser refuses is answered (400 and the like, then the connection closed) after the ones it
completed before it; a request the error cut short gets no answer of its own.

Pipelining is bounded three ways, so a client that sends requests and never reads cannot make the proxy
hold more than a few: bytes go to the parser ``PARSE_PIECE`` at a time and stop once ``MAX_PIPELINED``
requests wait (the rest stay unparsed, reading paused); the next waiting request starts only while the
client takes what it is sent (``pause_writing``); and such a connection is closed after the idle timeout.
"""

from __future__ import annotations

import logging
from typing import Final, Protocol

from kube_oidc_proxy.errors import ClientProtocolError
from kube_oidc_proxy.http1.events import Body, MessageEnd, RequestEvent, RequestHead, Upgraded
from kube_oidc_proxy.http1.request import RequestReader
from kube_oidc_proxy.http1.serialize import status_response
from kube_oidc_proxy.server.contracts import ConnectionServer
from kube_oidc_proxy.server.exchange import Exchange
from kube_oidc_proxy.server.http1_side import Http1Connection, Http1Side
from kube_oidc_proxy.server.timers import ConnectionTimer
from kube_oidc_proxy.server.tunnel import Tunnel

log = logging.getLogger("kop.connection")

# Requests parsed and waiting behind the one being answered. Go's and Python's clients never pipeline;
# this only bounds what one connection can make the proxy hold.
MAX_PIPELINED: Final = 4
# Bytes handed to the parser at once: the requests parsed from one piece are queued together, so this
# bounds how far a burst of tiny pipelined requests can go past MAX_PIPELINED (~26 bytes each at least).
PARSE_PIECE: Final = 8 * 1024


class RequestsConnection(Http1Connection, Protocol):
    """What the request sequence needs of its connection (``connection.ClientConnection``)."""

    server: ConnectionServer
    timer: ConnectionTimer
    over_capacity: bool
    client_full: bool
    tunnel: Tunnel | None

    def is_closing(self) -> bool: ...
    def close(self) -> None: ...


class Http1Requests:
    __slots__ = (
        "_conn",
        "_last_request",
        "_pipeline",
        "_reading",
        "_refusal",
        "_unparsed",
        "_unparsed_at",
        "current",
        "over",
        "reader",
    )

    def __init__(self, conn: RequestsConnection) -> None:
        self._conn = conn
        self.reader: RequestReader | None = RequestReader()
        self.current: Http1Side | None = None  # whose response is being produced
        self._reading: Http1Side | None = None  # whose request body is being read
        # A list, not a deque: it holds a few (MAX_PIPELINED, more only for a burst of tiny requests), and an
        # empty deque is ~760 bytes for as long as the connection lives (a watch's connection: for hours).
        self._pipeline: list[Http1Side] = []
        self._unparsed = b""  # received, not yet given to the parser (a pipeline is full)
        self._unparsed_at = 0
        self._last_request = False  # the request being read ends the connection: its end ends the parsing
        self.over = False  # nothing more is read as a request on this connection
        self._refusal: ClientProtocolError | None = None  # answered once the requests before it are

    @property
    def in_head(self) -> bool:
        return self.reader is not None and self.reader.in_head

    @property
    def waiting(self) -> int:
        """Requests parsed and waiting behind the current one."""
        return len(self._pipeline)

    @property
    def all(self) -> list[Http1Side]:
        return [*([self.current] if self.current is not None else []), *self._pipeline]

    def feed(self, data: bytes) -> None:
        if self.over:
            return  # after the connection's last request, or a refused one: not a request, not an error
        if self._unparsed:  # reading is paused, but a transport may still deliver what it had read
            self._unparsed = self._unparsed[self._unparsed_at :] + data
            self._unparsed_at = 0
            return
        self._unparsed, self._unparsed_at = data, 0
        self._parse()

    def _parse(self) -> None:
        """Feed the parser what waits, a piece at a time, until it is all parsed or the pipeline is full."""
        conn = self._conn
        while self._unparsed and len(self._pipeline) < MAX_PIPELINED and not conn.closed and not self.over:
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
            conn.flow.pause("pipeline")
        elif self.in_head:
            conn.timer.head()

    def _dispatch(self, events: list[RequestEvent]) -> None:
        for event in events:
            if type(event) is Body:
                if self._reading is not None:
                    self._reading.exchange.body.receive(event.data)
            elif type(event) is RequestHead:
                self._on_head(event)
            elif type(event) is MessageEnd:
                if self._reading is not None:
                    self._reading.exchange.body.complete()
                    self._reading = None
                if self._last_request:
                    self.stop()
                    return  # what the same read held after it is not a request
            elif type(event) is Upgraded:
                self._on_upgrade(event.tail)

    def _on_head(self, head: RequestHead) -> None:
        conn = self._conn
        if conn.is_closing():
            return  # pipelined behind a request that closed the connection
        conn.timer.head_read()
        if conn.over_capacity:
            self._refuse_over_capacity(head)
            return
        side = Http1Side(conn, head)
        exchange = side.exchange = Exchange(conn.server, side, head)
        self._reading = side if not exchange.body.done else None
        # (an upgrade request's own rules: the bytes after it belong to its tunnel, or are dropped with it)
        self._last_request = not (head.keep_alive and head.http_version == "1.1") and not head.upgrade
        if self.current is None:
            self._start(side)
        else:
            self._pipeline.append(side)
            conn.flow.pause("pipeline")

    def _on_upgrade(self, tail: bytes) -> None:
        side = self._pipeline[-1] if self._pipeline else self.current
        if side is not None:
            side.upgrade_tail += tail
        self._conn.flow.pause("upgrade")

    def _start(self, side: Http1Side) -> None:
        self.current = side
        exchange = side.exchange
        exchange.task = self._conn.server.spawn(exchange.run())

    def finished(self, side: Http1Side) -> None:
        """An exchange ended: the connection goes on to the next request, waits for one, or ends."""
        if side is not self.current:
            return
        self.current = None
        conn = self._conn
        if conn.tunnel is not None:
            conn.flow.resume("upgrade")
            return
        if not side.reusable or conn.stopping or conn.closed:
            conn.close()
            return
        if not self._pipeline and self._refusal is not None:
            self._refuse(self._refusal)
        elif not self._pipeline:
            conn.timer.idle()
        elif conn.client_full:
            conn.timer.idle()  # resume_writing starts the next one; a client that never reads is let go
        else:
            self.start_next()

    def start_next(self) -> None:
        if self.current is not None or not self._pipeline or self._conn.closed:
            return
        self._conn.timer.cancel()
        self._start(self._pipeline.pop(0))
        self._parse()
        if not self._pipeline and not self._unparsed:
            self._conn.flow.resume("pipeline")

    def release_reader(self) -> None:
        """A long stream began: drop the idle parser (it is made again if the client sends more)."""
        reader = self.reader
        if self._reading is None and not self._pipeline and not self._unparsed and reader and not reader.in_head:
            self.reader = None

    def lost(self) -> None:
        """The client connection is gone: every exchange stops, those not started are cancelled."""
        for side in self.all:
            side.exchange.client_lost()
            task = side.exchange.task
            if task is not None and side is not self.current:
                task.cancel()
        self._pipeline.clear()

    def stop(self) -> None:
        """Nothing more is parsed as a request here; bytes that still arrive are dropped unread."""
        self.over = True
        self._unparsed, self._unparsed_at = b"", 0
        self.reader = None

    # refusals -------------------------------------------------------------------------------------

    def _refuse_over_capacity(self, head: RequestHead) -> None:
        conn = self._conn
        conn.server.connection_refused(conn.peer_ip, head.target)
        message = "this proxy is serving as many connections as it is allowed; retry shortly"
        conn.write(status_response(503, message, close=True, extra=[(b"Retry-After", b"1")]))
        self.reader = None
        self._unparsed = b""
        conn.close()

    def _protocol_error(self, exc: ClientProtocolError) -> None:
        if self.over:
            return  # bytes after the connection's last request (llhttp: "Data after `Connection: close`")
        conn = self._conn
        conn.server.access_log.refused(conn.peer_ip, exc.code, exc.detail)
        log.info("bad request from %s: %s", conn.peer_ip, exc.detail)
        self.stop()
        broken, self._reading = self._reading, None  # a request the error cut short: no answer of its own
        if broken is not None and broken is self.current:
            conn.close()  # its body is on its way upstream: both are cut, as if the client had left
            return
        if broken is not None and broken in self._pipeline:
            self._pipeline.remove(broken)  # never started
        if self.current is None and not self._pipeline and conn.tunnel is None:
            self._refuse(exc)
        else:
            self._refusal = exc  # after the answers to the requests before it (finished)

    def _refuse(self, exc: ClientProtocolError) -> None:
        self._conn.write(status_response(exc.code, exc.message, close=True))
        self._conn.close()
