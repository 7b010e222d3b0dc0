"""Connections to kube-apiserver: a keep-alive pool for requests, dedicated connections for upgrades.

An ``UpstreamConnection`` parses responses and hands events to the current exchange's ``ResponseSink``,
synchronously, in the order they arrive: a watch event goes out to the client in the same callback that
read it. After a 101 it hands raw bytes to a tunnel instead. A connection goes back to the pool only
after a complete response to a completely sent request, on a connection both sides keep alive
(LIFO, bounded, idle time limited below kube-apiserver's own idle timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from typing import Final, Protocol, cast

from kube_oidc_proxy.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from kube_oidc_proxy.http1.events import ResponseEvent
from kube_oidc_proxy.http1.response import ResponseReader
from kube_oidc_proxy.kube.target import UpstreamTarget
from kube_oidc_proxy.server import readpause

CONNECT_TIMEOUT_SECONDS: Final = 10.0
# kube-apiserver closes idle connections after 90 s (Go http.Server IdleTimeout in k8s.io/apiserver);
# reusing one near that edge races its close, so we let ours go earlier.
IDLE_TTL_SECONDS: Final = 60.0
MAX_IDLE: Final = 128  # without a bound from the in-flight limits (inflight.idle_connections)
WRITE_HIGH_WATER: Final = 256 * 1024


class ResponseSink(Protocol):
    def on_response_events(self, events: list[ResponseEvent]) -> None: ...
    def on_upstream_lost(self, error: UpstreamError) -> None: ...


class RawSink(Protocol):
    """The tunnel side of an upgraded connection."""

    def from_upstream(self, data: bytes) -> None: ...
    def upstream_closed(self) -> None: ...
    def upstream_paused(self, paused: bool) -> None: ...


def tune_socket(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)


class UpstreamConnection(asyncio.Protocol):
    __slots__ = (
        "_drained",
        "_read_paused",
        "_write_paused",
        "closed",
        "idle_since",
        "raw",
        "reader",
        "received",
        "reused",
        "sink",
        "transport",
    )

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader = ResponseReader()
        self.sink: ResponseSink | None = None
        self.raw: RawSink | None = None
        self.closed = False
        self.reused = False
        self.received = False  # any byte of the current response
        self.idle_since = 0.0
        self._write_paused = False
        self._read_paused = False  # by the exchange, while its client is slower
        self._drained: asyncio.Future[None] | None = None

    # asyncio callbacks ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's SSL transport is not registered as an asyncio.Transport subclass: cast, don't check
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        tune_socket(transport)

    def data_received(self, data: bytes) -> None:
        if self.raw is not None:
            self.raw.from_upstream(data)
            return
        self.received = True
        sink = self.sink
        try:
            events = self.reader.feed(data)
        except UpstreamError as exc:
            self.close()  # also forgets the sink: it hears about this once, here
            if sink is not None:
                sink.on_upstream_lost(exc)
            return
        if sink is None:
            self.close()  # bytes nobody asked for on an idle connection
        elif events:
            sink.on_response_events(events)

    def eof_received(self) -> bool | None:
        if self.raw is None and self.sink is not None:
            events = self.reader.eof()
            if events:
                self.sink.on_response_events(events)
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._release_drain()
        if self.raw is not None:
            self.raw.upstream_closed()
        elif self.sink is not None and not self.reader.ended:
            sink, self.sink = self.sink, None
            detail = f"connection to kube-apiserver lost: {exc}" if exc else "kube-apiserver closed the connection"
            sink.on_upstream_lost(UpstreamError("kube-apiserver closed the connection", detail))

    def pause_writing(self) -> None:
        self._write_paused = True
        if self.raw is not None:
            self.raw.upstream_paused(True)

    def resume_writing(self) -> None:
        self._write_paused = False
        self._release_drain()
        if self.raw is not None:
            self.raw.upstream_paused(False)

    def _release_drain(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    # used by exchanges ----------------------------------------------------------------------------

    def begin(self, sink: ResponseSink, *, head_only: bool) -> None:
        self.sink = sink
        self.received = False
        self.reader.expect(head_only=head_only)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed and not self.transport.is_closing():
            self.transport.write(data)

    def writelines(self, data: list[bytes]) -> None:
        if self.transport is not None and not self.closed and not self.transport.is_closing():
            self.transport.writelines(data)

    async def drain(self) -> None:
        """Wait while the socket's send buffer is above the high-water mark."""
        if self._write_paused and not self.closed:
            if self._drained is None:
                self._drained = asyncio.get_running_loop().create_future()
            await self._drained

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed and not self._read_paused:
            self._read_paused = True
            readpause.pause_reading(self.transport)

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed and self._read_paused:
            self._read_paused = False
            readpause.resume_reading(self.transport)

    @property
    def read_paused(self) -> bool:
        return self._read_paused

    @property
    def reusable(self) -> bool:
        """Between two messages, both sides keeping the connection: never mid-response, never upgraded."""
        return not self.closed and self.reader.ended and not self.reader.must_close and not self.reader.upgraded

    def close(self) -> None:
        """Close and stop reporting to the current sink (whoever closes already knows)."""
        self.sink = None
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        self.sink = None
        if self.transport is not None:
            self.closed = True
            self.transport.abort()


class UpstreamPool:
    def __init__(self, target: UpstreamTarget, ssl_context: ssl.SSLContext | None, max_idle: int = MAX_IDLE) -> None:
        self.target = target
        self._ssl = ssl_context if target.scheme == "https" else None
        self.max_idle = max_idle
        self._idle: list[UpstreamConnection] = []
        self.opened = 0

    async def connect(self) -> UpstreamConnection:
        """A new connection, for one upgrade or for the pool."""
        loop = asyncio.get_running_loop()
        target = self.target
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    UpstreamConnection,
                    target.host,
                    target.port,
                    ssl=self._ssl,
                    server_hostname=target.server_hostname if self._ssl else None,
                ),
                CONNECT_TIMEOUT_SECONDS,
            )
        except TimeoutError:
            raise UpstreamTimeout(
                "timed out connecting to kube-apiserver", f"connect to {target.authority} timed out"
            ) from None
        except ConnectionRefusedError as exc:
            raise UpstreamUnavailable(
                "kube-apiserver is not accepting connections", f"connect to {target.authority}: {exc}"
            ) from None
        except ssl.SSLError as exc:
            raise UpstreamError(
                "TLS handshake with kube-apiserver failed", f"TLS with {target.authority}: {exc}"
            ) from None
        except OSError as exc:
            raise UpstreamError("cannot reach kube-apiserver", f"connect to {target.authority}: {exc}") from None
        self.opened += 1
        return conn

    async def acquire(self) -> UpstreamConnection:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_TTL_SECONDS:
                conn.reused = True
                return conn
            conn.close()
        return await self.connect()

    def release(self, conn: UpstreamConnection) -> None:
        """Keep ``conn`` for the next request if it stands between two messages; otherwise close it."""
        conn.sink = None
        # An idle connection must read: that is how it notices kube-apiserver closing it. The exchange
        # resumes a connection its client had paused before it lets go of it.
        assert not conn.read_paused, "a paused upstream connection was released to the pool"
        if not conn.reusable or len(self._idle) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()

    @property
    def idle_count(self) -> int:
        return len(self._idle)
