"""One HTTP/1.1 client connection: TLS bytes in, requests (``http1_requests``) or a tunnel out.

Callbacks stay synchronous and short: ``data_received`` feeds the request sequence, which starts one task
per exchange. Reading is paused for named reasons (``flow``: body back-pressure, a pipelined request, an
upgrade being set up, a full tunnel, a client that does not read its responses) and resumes only when none
is left.

``--max-client-connections``: past it a connection's first request is answered 503 with ``Retry-After``
and the connection closed; past it by a sixteenth more (``proxy.OVER_CAPACITY_MINIMUM`` at least),
connections are closed unread.

Timers (``timers``): an idle keep-alive connection closes after ``IDLE_TIMEOUT_SECONDS``; once a request
head starts it must complete within ``HEADER_TIMEOUT_SECONDS`` (slowloris).
"""

from __future__ import annotations

import asyncio
from typing import Final, cast

from kube_oidc_proxy.http1.serialize import status_response
from kube_oidc_proxy.server import readpause
from kube_oidc_proxy.server.contracts import ConnectionServer
from kube_oidc_proxy.server.flow import FlowControl
from kube_oidc_proxy.server.http1_requests import Http1Requests
from kube_oidc_proxy.server.http1_side import Http1Side
from kube_oidc_proxy.server.timers import ConnectionTimer
from kube_oidc_proxy.server.tunnel import Tunnel
from kube_oidc_proxy.server.upstream import UpstreamConnection, tune_socket

# A connection over --max-client-connections gets this long to send the request it is refused.
OVER_CAPACITY_HEADER_TIMEOUT_SECONDS: Final = 5.0


def peer_ip_of(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return "unknown"


class ClientConnection(asyncio.Protocol):
    __slots__ = (
        "client_full",
        "closed",
        "flow",
        "over_capacity",
        "peer_ip",
        "requests",
        "server",
        "stopping",
        "timer",
        "transport",
        "tunnel",
    )

    def __init__(self, server: ConnectionServer) -> None:
        self.server = server
        self.transport: asyncio.Transport  # set in connection_made, before any other callback
        self.peer_ip = ""
        self.requests = Http1Requests(self)
        self.tunnel: Tunnel | None = None
        self.flow = FlowControl(self._pause_transport, self._resume_transport)
        self.timer = ConnectionTimer(self._timed_out)
        self.stopping = False
        self.closed = False
        self.client_full = False  # the client is not reading what we send it
        self.over_capacity = False  # over --max-client-connections: the first request is refused

    # asyncio callbacks ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's SSL transport is not registered as an asyncio.Transport subclass: cast, don't check
        self.transport = cast(asyncio.Transport, transport)
        self.peer_ip = peer_ip_of(transport)
        tune_socket(transport)
        self.server.connection_opened(self)
        if self.over_capacity:
            self.timer.arm(OVER_CAPACITY_HEADER_TIMEOUT_SECONDS)
        else:
            self.timer.idle()

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.from_client(data)
        else:
            self.requests.feed(data)

    def eof_received(self) -> bool | None:
        if self.tunnel is not None:
            self.tunnel.client_eof()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.timer.cancel()
        self.server.connection_closed(self)
        if self.tunnel is not None:
            self.tunnel.client_closed()
        self.requests.lost()

    def pause_writing(self) -> None:
        self.client_full = True
        if self.tunnel is not None:
            self.tunnel.client_paused(True)
            return
        self.flow.pause("client-full")  # more requests would only queue more answers
        current = self.requests.current
        if current is not None:
            current.exchange.relay.client_full(True)

    def resume_writing(self) -> None:
        self.client_full = False
        if self.tunnel is not None:
            self.tunnel.client_paused(False)
            return
        current = self.requests.current
        if current is not None:
            current.exchange.relay.client_full(False)
        else:
            self.requests.start_next()
        self.flow.resume("client-full")

    # for the requests and their exchanges ---------------------------------------------------------

    @property
    def streaming(self) -> bool:
        """A watch or a followed log is being relayed."""
        current = self.requests.current
        return current is not None and current.exchange.streaming

    @property
    def watches(self) -> int:
        return 1 if self.streaming else 0

    def exchange_finished(self, side: Http1Side) -> None:
        self.requests.finished(side)

    def release_reader(self) -> None:
        self.requests.release_reader()

    def open_tunnel(self, upstream: UpstreamConnection, description: str) -> Tunnel:
        """After a 101: from now on the client's bytes go to ``upstream`` unparsed, and back."""
        tunnel = Tunnel(self.transport, upstream, self.server.tunnel_closed, self._tunnel_full, description=description)
        self.tunnel = tunnel
        self.requests.stop()
        self.timer.cancel()
        return tunnel

    def _tunnel_full(self, paused: bool) -> None:
        """kube-apiserver's side of the tunnel is full (or drained): stop (or resume) reading the client."""
        if paused:
            self.flow.pause("tunnel")
        else:
            self.flow.resume("tunnel")

    def write(self, data: bytes) -> None:
        if not self.closed and not self.transport.is_closing():
            self.transport.write(data)

    def writelines(self, data: list[bytes]) -> None:
        if not self.closed and not self.transport.is_closing():
            self.transport.writelines(data)

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def _pause_transport(self) -> None:
        if not self.closed:
            readpause.pause_reading(self.transport)

    def _resume_transport(self) -> None:
        if not self.closed:
            readpause.resume_reading(self.transport)

    # endings ------------------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Graceful stop: idle connections close now, busy ones after their response."""
        self.stopping = True
        if self.tunnel is not None:
            return  # cut by the server after the grace period
        current = self.requests.current
        if current is None:
            self.close()
        elif current.exchange.streaming:
            current.exchange.end_stream()

    def close(self) -> None:
        if not self.closed:
            self.timer.cancel()
            self.transport.close()

    def abort(self) -> None:
        if not self.closed:
            self.timer.cancel()
            self.transport.abort()

    def _timed_out(self) -> None:
        if self.requests.current is None and self.tunnel is None and not self.closed:
            if self.requests.in_head:
                self.server.access_log.refused(self.peer_ip, 408, "timed out reading the request header")
                self.write(status_response(408, "timed out reading the request header", close=True))
            self.close()
