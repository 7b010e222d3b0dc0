"""After a 101: bytes both ways, unmodified, with back-pressure, until either side closes.

SPDY and WebSocket frame their own streams and closes, so the tunnel never parses. Back-pressure is
coupling: when one side's send buffer is full we stop reading the other side. TLS cannot half-close
(asyncio's SSL transports close on the peer's close_notify), so EOF from one side flushes what is
queued towards the other and then closes it; a plain-TCP upstream gets a real half-close (write_eof)
and keeps talking until it closes too.

The byte counts are plain integer additions per chunk; the metrics take what is ``uncounted`` every few
seconds and at close (``ProxyServer.count_tunnel_bytes``), so a long session shows as it flows at no cost
to the chunks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from kube_oidc_proxy.server.upstream import UpstreamConnection


class Tunnel:
    __slots__ = (
        "_on_closed",
        "_pause_client",
        "bytes_down",
        "bytes_up",
        "client",
        "closed",
        "counted_down",
        "counted_up",
        "description",
        "on_end",
        "started",
        "upstream",
        "upstream_transport",
    )

    def __init__(
        self,
        client: asyncio.Transport,
        upstream: UpstreamConnection,
        on_closed: Callable[[Tunnel], None],
        pause_client: Callable[[bool], None],
        *,
        description: str = "",
    ) -> None:
        assert upstream.transport is not None
        self.client = client
        self.upstream = upstream
        self.upstream_transport: asyncio.Transport = upstream.transport
        self.description = description
        self.started = time.monotonic()
        self.bytes_up = 0
        self.bytes_down = 0
        self.counted_up = 0  # the part of bytes_up the metrics already have
        self.counted_down = 0
        self.closed = False
        self._on_closed = on_closed
        self._pause_client = pause_client  # through the client connection's own reasons to pause
        self.on_end: Callable[[], None] | None = None  # the audit event when the stream is over
        upstream.raw = self

    def uncounted(self) -> tuple[int, int]:
        """Bytes up and down since the last call, now taken as counted."""
        up, down = self.bytes_up - self.counted_up, self.bytes_down - self.counted_down
        self.counted_up, self.counted_down = self.bytes_up, self.bytes_down
        return up, down

    # client side ----------------------------------------------------------------------------------

    def from_client(self, data: bytes) -> None:
        self.bytes_up += len(data)
        self.upstream_transport.write(data)

    def client_eof(self) -> None:
        if self.upstream_transport.can_write_eof() and not self.upstream.closed:
            self.upstream_transport.write_eof()
        else:
            self.close()

    def client_closed(self) -> None:
        self.close()

    def client_paused(self, paused: bool) -> None:
        """The client's send buffer is full (or drained): stop (or resume) reading upstream."""
        if paused:
            self.upstream.pause_reading()
        else:
            self.upstream.resume_reading()

    # upstream side (RawSink) ----------------------------------------------------------------------

    def from_upstream(self, data: bytes) -> None:
        self.bytes_down += len(data)
        self.client.write(data)

    def upstream_closed(self) -> None:
        self.close()

    def upstream_paused(self, paused: bool) -> None:
        if not self.client.is_closing():
            self._pause_client(paused)

    def close(self) -> None:
        """Close both sides; transports flush what is already queued before closing."""
        if self.closed:
            return
        self.closed = True
        self.upstream.close()
        self.client.close()
        self._on_closed(self)
        if self.on_end is not None:
            self.on_end()
