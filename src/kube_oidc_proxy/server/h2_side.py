"""One request on an HTTP/2 client connection, as its exchange sees it (a ``ClientSide``).

Each stream has its own flow control in both directions, so one slow reader never holds back the others:

- request body: the client's bytes are handed back to its window (``WINDOW_UPDATE``) as the exchange's
  ``RequestBody`` takes them; while it holds more than its high-water mark nothing is handed back, and the
  client stops at the end of its window.
- response: what kube-apiserver sends waits here until the client's window for the stream has room; past
  ``HIGH_WATER`` waiting, kube-apiserver's connection or stream is paused for this exchange alone. The same
  happens for every stream while the client does not read the connection at all.

An HTTP/2 stream is never upgraded (``h2_request`` refuses exec, attach and port-forward), so a 101 or a
tunnel never reaches this side.
"""

from __future__ import annotations

from collections import deque
from typing import Final, Protocol

from kube_oidc_proxy.http1.events import Framing
from kube_oidc_proxy.http1.headers import Headers
from kube_oidc_proxy.http1.serialize import status_headers
from kube_oidc_proxy.server.exchange import Exchange
from kube_oidc_proxy.server.flow import PauseReason
from kube_oidc_proxy.server.tunnel import Tunnel
from kube_oidc_proxy.server.upstream import UpstreamConnection
from kube_oidc_proxy.status import status_body

PROTOCOL: Final = "HTTP/2"
# Response bytes waiting for the client's window before kube-apiserver is paused for the stream.
HIGH_WATER: Final = 64 * 1024


class H2Streams(Protocol):
    """What a stream needs of its connection (``h2_connection.H2ClientConnection``)."""

    peer_ip: str
    closed: bool
    stopping: bool
    client_full: bool

    def send_informational(self, side: H2Side) -> None: ...
    def send_head(self, side: H2Side, status: int, headers: Headers, *, end: bool) -> None: ...
    def send_pending(self, side: H2Side) -> None: ...
    def acknowledge(self, side: H2Side, length: int) -> None: ...
    def reset(self, side: H2Side) -> None: ...
    def exchange_finished(self, side: H2Side) -> None: ...


class H2Side:
    __slots__ = (
        "_blocked",
        "_conn",
        "_reading_paused",
        "_unacknowledged",
        "client_ended",
        "end_pending",
        "exchange",
        "exchange_over",
        "peer_ip",
        "pending",
        "pending_bytes",
        "reset",
        "response_ended",
        "stream_id",
    )

    protocol = PROTOCOL

    def __init__(self, conn: H2Streams, stream_id: int) -> None:
        self._conn = conn
        self.stream_id = stream_id
        self.peer_ip = conn.peer_ip
        # Response bytes waiting for the client's window; made by the first of them (an idle watch has none).
        self.pending: deque[bytes] | None = None
        self.pending_bytes = 0
        self.end_pending = False  # the response is complete once what waits has gone
        self.response_ended = False  # END_STREAM sent
        self.client_ended = False  # the client sent END_STREAM: its request is whole
        self.reset = False  # the stream was reset, by either side
        self.exchange_over = False  # the exchange finished; the stream lingers while its end waits to be sent
        self._reading_paused = False
        self._unacknowledged = 0  # request body bytes received while paused: handed back on resume
        self._blocked = False  # kube-apiserver is paused for this stream
        self.exchange: Exchange  # set by the connection, which makes the two together

    # from the connection --------------------------------------------------------------------------

    def received(self, data: bytes, flow_controlled: int) -> None:
        """Request body bytes (and their size with padding, for the window)."""
        if data:
            self.exchange.body.receive(data)  # may pause reading: then the window is handed back later
        if self._reading_paused:
            self._unacknowledged += flow_controlled
        else:
            self._conn.acknowledge(self, flow_controlled)

    def release_window(self) -> None:
        """The stream is over: request body bytes it had not acknowledged (its reading paused) are handed back,
        for they hold the connection's window too, which every other stream's body needs."""
        self._reading_paused = False
        if self._unacknowledged:
            length, self._unacknowledged = self._unacknowledged, 0
            self._conn.acknowledge(self, length)

    def update_blocked(self) -> None:
        """Pause or resume kube-apiserver for this stream from what waits and whether the client reads."""
        blocked = self._conn.client_full or self.pending_bytes > HIGH_WATER
        if blocked != self._blocked:
            self._blocked = blocked
            self.exchange.relay.client_full(blocked)

    # ClientSide -----------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self.reset or self._conn.closed

    @property
    def stopping(self) -> bool:
        return self._conn.stopping

    def pause_reading(self, reason: PauseReason) -> None:
        self._reading_paused = True

    def resume_reading(self, reason: PauseReason) -> None:
        self._reading_paused = False
        if self._unacknowledged:
            length, self._unacknowledged = self._unacknowledged, 0
            self._conn.acknowledge(self, length)

    def send_continue(self) -> None:
        self._conn.send_informational(self)

    def send_head(
        self, status: int, reason: bytes, headers: Headers, framing: Framing, *, request_read: bool, streaming: bool
    ) -> None:
        self._conn.send_head(self, status, headers, end=False)

    def send_switch(self, reason: bytes, headers: Headers) -> None:
        raise AssertionError("an HTTP/2 request is never an upgrade")

    def send_body(self, data: bytes) -> None:
        if data and not self.closed:
            if self.pending is None:
                self.pending = deque()
            self.pending.append(data)
            self.pending_bytes += len(data)
            self._conn.send_pending(self)

    def send_end(self) -> None:
        self.end_pending = True
        self._conn.send_pending(self)

    def can_end_early(self) -> bool:
        return True

    def send_status(self, code: int, message: str, *, request_read: bool, extra: Headers | None = None) -> None:
        body = status_body(code, message)
        self._conn.send_head(self, code, status_headers(body) + (extra or []), end=False)
        self.send_body(body)
        self.send_end()

    def send_response(self, code: int, headers: Headers, body: bytes, *, request_read: bool) -> None:
        self._conn.send_head(self, code, headers, end=False)
        self.send_body(body)
        self.send_end()

    def cut(self) -> None:
        self._conn.reset(self)

    def start_tunnel(self, upstream: UpstreamConnection, upstream_tail: bytes, description: str) -> Tunnel:
        raise AssertionError("an HTTP/2 request is never an upgrade")

    def finished(self) -> None:
        self._conn.exchange_finished(self)
