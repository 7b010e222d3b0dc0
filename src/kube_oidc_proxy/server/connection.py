"""One client connection: TLS bytes in, exchanges (or a tunnel) out.

Callbacks stay synchronous and short: ``data_received`` feeds the request reader and dispatches events;
the awaiting happens in one task per exchange. Pipelined requests wait their turn in ``_pipeline`` with
reading paused, so a client cannot queue unbounded work. Reading is paused for named reasons (body
back-pressure, a pipelined request, an upgrade being set up) and resumes only when none is left.

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
from kube_oidc_proxy.http1.events import Body, MessageEnd, RequestHead, Upgraded
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


def peer_ip_of(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return "unknown"


class ClientConnection(asyncio.Protocol):
    __slots__ = (
        "_head_timer_armed",
        "_pause_reasons",
        "_pipeline",
        "_reading",
        "_timer",
        "closed",
        "current",
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

    # asyncio callbacks ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's SSL transport is not registered as an asyncio.Transport subclass: cast, don't check
        self.transport = cast(asyncio.Transport, transport)
        self.peer_ip = peer_ip_of(transport)
        tune_socket(transport)
        self.server.connection_opened(self)
        self._arm_idle_timer()

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.from_client(data)
            return
        reader = self.reader
        if reader is None:
            reader = self.reader = RequestReader()
        try:
            events = reader.feed(data)
        except ClientProtocolError as exc:
            self._protocol_error(exc)
            return
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
            elif type(event) is Upgraded:
                self._on_upgrade(event.tail)
        if reader.in_head and not self._head_timer_armed:
            self._arm_timer(HEADER_TIMEOUT_SECONDS)
            self._head_timer_armed = True

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
        if self.tunnel is not None:
            self.tunnel.client_paused(True)
        elif self.current is not None and self.current.upstream is not None:
            self.current.upstream.pause_reading()

    def resume_writing(self) -> None:
        if self.tunnel is not None:
            self.tunnel.client_paused(False)
        elif self.current is not None and self.current.upstream is not None:
            self.current.upstream.resume_reading()

    # requests ---------------------------------------------------------------------------------------

    def _on_head(self, head: RequestHead) -> None:
        self._cancel_timer()
        self._head_timer_armed = False
        exchange = Exchange(self, head)
        self._reading = exchange if not exchange.body_done else None
        if self.current is None:
            self._start(exchange)
        else:
            self._pipeline.append(exchange)
            self.pause_reading("pipeline")

    def _on_upgrade(self, tail: bytes) -> None:
        exchange = self._pipeline[-1] if self._pipeline else self.current
        if exchange is not None:
            exchange.upgrade_tail = tail
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
        if self._pipeline:
            self._start(self._pipeline.popleft())
            if not self._pipeline:
                self.resume_reading("pipeline")
        else:
            self._arm_idle_timer()

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
        if self._reading is None and not self._pipeline and self.reader is not None and not self.reader.in_head:
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

    def _protocol_error(self, exc: ClientProtocolError) -> None:
        self.server.access_log.malformed(self.peer_ip, exc.code, exc.detail)
        log.info("bad request from %s: %s", self.peer_ip, exc.detail)
        if self.current is None and self.tunnel is None:
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
                self.server.access_log.malformed(self.peer_ip, 408, "timed out reading the request header")
                self.write(status_response(408, "timed out reading the request header", close=True))
            self.close()
