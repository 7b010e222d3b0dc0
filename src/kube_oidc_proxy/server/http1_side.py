"""One request on an HTTP/1.1 client connection, as its exchange sees it (a ``ClientSide``).

Everything HTTP/1.1 about the answer lives here: the status line, re-chunking a body that kube-apiserver
sent without a length, ``Connection: close``, 100 Continue, the bytes an upgrade request brought with it.
The connection stays open for the next request only if this one got a complete response and both sides
kept the connection alive (``reusable``).
"""

from __future__ import annotations

from typing import Protocol

from kube_oidc_proxy.http1.events import Framing, RequestHead
from kube_oidc_proxy.http1.headers import Headers
from kube_oidc_proxy.http1.serialize import CONTINUE_100, LAST_CHUNK, chunk, response_head, status_response
from kube_oidc_proxy.server.exchange import Exchange
from kube_oidc_proxy.server.flow import FlowControl, PauseReason
from kube_oidc_proxy.server.relayed import http1_framing
from kube_oidc_proxy.server.tunnel import Tunnel
from kube_oidc_proxy.server.upstream import UpstreamConnection

PROTOCOL = "HTTP/1.1"


class Http1Connection(Protocol):
    """What a request needs of its connection (``connection.ClientConnection``)."""

    peer_ip: str
    closed: bool
    stopping: bool
    flow: FlowControl  # reading the client

    def write(self, data: bytes) -> None: ...
    def writelines(self, data: list[bytes]) -> None: ...
    def abort(self) -> None: ...
    def release_reader(self) -> None: ...
    def open_tunnel(self, upstream: UpstreamConnection, description: str) -> Tunnel: ...
    def exchange_finished(self, side: Http1Side) -> None: ...


class Http1Side:
    __slots__ = ("_chunked", "_complete", "_conn", "exchange", "head", "keep_alive", "peer_ip", "upgrade_tail")

    protocol = PROTOCOL

    def __init__(self, conn: Http1Connection, head: RequestHead) -> None:
        self._conn = conn
        self.head = head
        self.peer_ip = conn.peer_ip
        self.keep_alive = head.keep_alive and head.http_version == "1.1" and not head.upgrade
        self.upgrade_tail = b""  # client bytes that came after an upgrade request: its tunnel's first
        self._chunked = False
        self._complete = False
        self.exchange: Exchange  # set by the connection, which makes the two together

    @property
    def closed(self) -> bool:
        return self._conn.closed

    @property
    def stopping(self) -> bool:
        return self._conn.stopping

    @property
    def reusable(self) -> bool:
        """The next request on the connection may be read: this one was answered whole, keep-alive."""
        return self._complete and self.keep_alive

    def pause_reading(self, reason: PauseReason) -> None:
        self._conn.flow.pause(reason)

    def resume_reading(self, reason: PauseReason) -> None:
        self._conn.flow.resume(reason)

    def send_continue(self) -> None:
        self._conn.write(CONTINUE_100)

    def send_head(
        self, status: int, reason: bytes, headers: Headers, framing: Framing, *, request_read: bool, streaming: bool
    ) -> None:
        plan = http1_framing(
            framing,
            client_version=self.head.http_version,
            keep_alive=self.keep_alive,
            request_read=request_read,
            stopping=self._conn.stopping,
        )
        self.keep_alive = plan.keep_alive
        self._chunked = plan.chunked
        if streaming:
            self._conn.release_reader()
        self._conn.write(response_head(status, reason, headers + plan.headers))

    def send_switch(self, reason: bytes, headers: Headers) -> None:
        self.keep_alive = False
        self._conn.write(response_head(101, reason, headers))

    def send_body(self, data: bytes) -> None:
        if self._chunked:
            self._conn.writelines(chunk(data))
        else:
            self._conn.write(data)

    def send_end(self) -> None:
        if self._chunked:
            self._conn.write(LAST_CHUNK)
        self._complete = True

    def can_end_early(self) -> bool:
        return self._chunked

    def send_status(self, code: int, message: str, *, request_read: bool, extra: Headers | None = None) -> None:
        if not request_read:
            self.keep_alive = False
        self._conn.write(status_response(code, message, close=not self.keep_alive, extra=extra))
        self._complete = True

    def send_response(self, code: int, headers: Headers, body: bytes, *, request_read: bool) -> None:
        if not request_read:
            self.keep_alive = False
        if not self.keep_alive:
            headers = [*headers, (b"Connection", b"close")]
        self._conn.writelines([response_head(code, b"", headers), body])
        self._complete = True

    def cut(self) -> None:
        self.keep_alive = False
        self._conn.abort()

    def start_tunnel(self, upstream: UpstreamConnection, upstream_tail: bytes, description: str) -> Tunnel:
        tunnel = self._conn.open_tunnel(upstream, description)
        if upstream_tail:
            tunnel.from_upstream(upstream_tail)
        if self.upgrade_tail:
            tunnel.from_client(self.upgrade_tail)
        return tunnel

    def finished(self) -> None:
        self._conn.exchange_finished(self)
        # The exchange and this side refer to each other: undone here, the two (and the exchange's body,
        # relay and records) are freed as soon as the exchange returns, not by a cyclic garbage collection.
        del self.exchange
