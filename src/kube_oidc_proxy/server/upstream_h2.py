"""Long-running requests (watches, followed logs) multiplexed over HTTP/2 to kube-apiserver.

client-go does the same: thousands of watches share a few connections instead of holding one TLS
connection each (~43 KB apiece here, measured: docs/benchmarks.md). Short requests keep using the
HTTP/1.1 pool (pure-Python HTTP/2 costs more CPU per request), and upgrades always use HTTP/1.1.

Flow control: the connection window is handed back at once, so one slow client never stalls the other
streams; a stream's window is handed back only while its client keeps up (``pause_reading``), which
stops kube-apiserver sending that watch more than one window ahead.

If kube-apiserver does not negotiate ``h2`` (ALPN), HTTP/2 is switched off for ``H2_RETRY_SECONDS`` and
streams go over HTTP/1.1. A connection that does not answer a PING within ``PING_TIMEOUT_SECONDS`` is
closed (its watches end and clients re-watch), like client-go's HTTP/2 health check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from typing import Final, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from kube_oidc_proxy.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from kube_oidc_proxy.http1.events import CHUNK_END, MESSAGE_END, Body, ResponseEvent, ResponseHead
from kube_oidc_proxy.http1.headers import Headers
from kube_oidc_proxy.kube.target import UpstreamTarget
from kube_oidc_proxy.server.upstream import CONNECT_TIMEOUT_SECONDS, ResponseSink, tune_socket

log = logging.getLogger("kop.h2")

STREAM_WINDOW: Final = 1024 * 1024  # per watch: at most this much in flight towards a slow client
CONNECTION_WINDOW: Final = 16 * 1024 * 1024
DEFAULT_MAX_STREAMS: Final = 100  # until the server's SETTINGS say otherwise (RFC 9113 recommends >= 100)
H2_RETRY_SECONDS: Final = 60.0
PING_INTERVAL_SECONDS: Final = 30.0  # client-go: HTTP2_READ_IDLE_TIMEOUT_SECONDS
PING_TIMEOUT_SECONDS: Final = 15.0  # client-go: HTTP2_PING_TIMEOUT_SECONDS
IDLE_CLOSE_SECONDS: Final = 60.0


class H2Stream:
    """One request on a multiplexed connection; to an exchange it looks like an upstream connection."""

    __slots__ = ("_paused", "_unacked", "closed", "conn", "received", "reused", "sink", "stream_id")

    def __init__(self, conn: H2Connection, stream_id: int, sink: ResponseSink) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.sink: ResponseSink | None = sink
        self.closed = False
        self.reused = False
        self.received = False
        self._paused = False
        self._unacked = 0

    def data(self, length: int) -> None:
        """``length`` flow-controlled bytes were delivered to the client."""
        if self._paused:
            self._unacked += length
        elif length:
            self.conn.ack_stream(self.stream_id, length)

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        self._paused = False
        if self._unacked and not self.closed:
            self.conn.ack_stream(self.stream_id, self._unacked)
            self._unacked = 0

    def finished(self) -> None:
        """The response ended: forget the stream."""
        self.closed = True
        self.sink = None
        self.conn.forget(self.stream_id)

    def close(self) -> None:
        """The client went away: cancel the stream on kube-apiserver (RST_STREAM CANCEL)."""
        if not self.closed:
            self.closed = True
            self.sink = None
            self.conn.cancel(self.stream_id)

    abort = close


class H2Connection(asyncio.Protocol):
    def __init__(self, pool: H2Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.streams: dict[int, H2Stream] = {}
        self.max_streams = DEFAULT_MAX_STREAMS
        self.closed = False
        self.going_away = False
        self.idle_since = time.monotonic()
        self._ping_task: asyncio.Task[None] | None = None
        self._pong: asyncio.Future[None] | None = None

    # asyncio callbacks ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        tune_socket(transport)
        self.h2.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            },
        )
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self._flush()
        self._ping_task = asyncio.ensure_future(self._keep_alive())

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._fail_all(UpstreamError("HTTP/2 protocol error from kube-apiserver", str(exc)))
            return
        for event in events:
            self._dispatch(event)
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._ping_task is not None:
            self._ping_task.cancel()
        self.pool.connection_closed(self)
        detail = f"HTTP/2 connection to kube-apiserver lost: {exc}" if exc else "kube-apiserver closed the connection"
        self._fail_all(UpstreamError("kube-apiserver closed the connection", detail))

    # protocol -------------------------------------------------------------------------------------

    def _dispatch(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.DataReceived):
            stream = self.streams.get(event.stream_id)
            if event.flow_controlled_length:  # connection level: handed back at once
                self.h2.increment_flow_control_window(event.flow_controlled_length)
            if stream is not None and stream.sink is not None:
                if event.data:
                    self._deliver(event.stream_id, [Body(event.data), CHUNK_END])
                stream.data(event.flow_controlled_length)
        elif isinstance(event, h2.events.ResponseReceived):
            self._deliver(event.stream_id, [_response_head(event.headers)])
        elif isinstance(event, h2.events.StreamEnded):
            self._deliver(event.stream_id, [MESSAGE_END])
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.pop(event.stream_id, None)
            if stream is not None and stream.sink is not None:
                sink, stream.sink = stream.sink, None
                sink.on_upstream_lost(
                    UpstreamError("kube-apiserver reset the stream", f"RST_STREAM {event.error_code}")
                )
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            changed = event.changed_settings.get(h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS)
            if changed is not None:
                self.max_streams = changed.new_value
        elif isinstance(event, h2.events.PingAckReceived):
            if self._pong is not None and not self._pong.done():
                self._pong.set_result(None)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.going_away = True
            refused = [s for sid, s in self.streams.items() if sid > (event.last_stream_id or 0)]
            for stream in refused:
                self._lose(stream, UpstreamError("kube-apiserver is going away", "GOAWAY"))
            if not self.streams and self.transport is not None:
                self.transport.close()

    def _deliver(self, stream_id: int, events: list[ResponseEvent]) -> None:
        stream = self.streams.get(stream_id)
        if stream is not None and stream.sink is not None:
            stream.received = True
            try:
                stream.sink.on_response_events(events)
            except Exception:  # a bug in one exchange must not take down every stream of the connection
                log.exception("error relaying HTTP/2 stream %d", stream_id)
                self.cancel(stream_id)

    def _lose(self, stream: H2Stream, error: UpstreamError) -> None:
        self.streams.pop(stream.stream_id, None)
        if stream.sink is not None:
            sink, stream.sink = stream.sink, None
            stream.closed = True
            sink.on_upstream_lost(error)

    def _fail_all(self, error: UpstreamError) -> None:
        for stream in list(self.streams.values()):
            self._lose(stream, error)
        if self.transport is not None and not self.closed:
            self.transport.close()

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.closed and not self.transport.is_closing():
            self.transport.write(data)

    async def _keep_alive(self) -> None:
        """Ping an otherwise quiet connection: a dead kube-apiserver must not leave watches hanging."""
        while not self.closed:
            await asyncio.sleep(PING_INTERVAL_SECONDS)
            if not self.streams:
                if time.monotonic() - self.idle_since > IDLE_CLOSE_SECONDS and self.transport is not None:
                    self.transport.close()
                    return
                continue
            self._pong = asyncio.get_running_loop().create_future()
            self.h2.ping(b"kop-ping")
            self._flush()
            try:
                await asyncio.wait_for(self._pong, PING_TIMEOUT_SECONDS)
            except TimeoutError:
                log.warning("kube-apiserver did not answer an HTTP/2 ping: closing the connection")
                self._fail_all(UpstreamTimeout("kube-apiserver stopped answering", "HTTP/2 ping timed out"))
                return

    # used by the pool and by streams --------------------------------------------------------------

    @property
    def has_room(self) -> bool:
        return not self.closed and not self.going_away and len(self.streams) < self.max_streams

    def open_stream(self, sink: ResponseSink, headers: Headers) -> H2Stream:
        stream_id = self.h2.get_next_available_stream_id()
        stream = H2Stream(self, stream_id, sink)
        self.streams[stream_id] = stream
        self.h2.send_headers(stream_id, headers, end_stream=True)
        self._flush()
        return stream

    def ack_stream(self, stream_id: int, length: int) -> None:
        if stream_id in self.streams and not self.closed:
            with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                self.h2.increment_flow_control_window(length, stream_id)
                self._flush()

    def forget(self, stream_id: int) -> None:
        self.streams.pop(stream_id, None)
        self._maybe_idle()

    def cancel(self, stream_id: int) -> None:
        if self.streams.pop(stream_id, None) is not None and not self.closed:
            with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                self.h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
                self._flush()
        self._maybe_idle()

    def _maybe_idle(self) -> None:
        if not self.streams:
            self.idle_since = time.monotonic()
            if self.going_away and self.transport is not None:
                self.transport.close()


def _response_head(headers: list[tuple[bytes, bytes]]) -> ResponseHead:
    status = 0
    out: Headers = []
    content_length: int | None = None
    for name, value in headers:
        if name == b":status":
            status = int(value)
        elif not name.startswith(b":"):
            out.append((name, value))
            if name == b"content-length":
                content_length = int(value)
    return ResponseHead(
        status=status,
        reason=b"",
        http_version="2",
        headers=out,
        keep_alive=True,
        framing="length" if content_length is not None else "chunked",
        content_length=content_length,
    )


class H2Pool:
    def __init__(self, target: UpstreamTarget, ssl_context: ssl.SSLContext) -> None:
        self.target = target
        self._ssl = ssl_context
        self.connections: list[H2Connection] = []
        self._connecting: asyncio.Future[H2Connection | None] | None = None
        self._disabled_until = 0.0
        self.opened = 0

    @property
    def available(self) -> bool:
        return self.target.scheme == "https" and time.monotonic() >= self._disabled_until

    async def open_stream(self, sink: ResponseSink, headers: Headers) -> H2Stream | None:
        """A new stream carrying this request, or None if kube-apiserver does not speak HTTP/2."""
        while True:
            for conn in self.connections:
                if conn.has_room:
                    return conn.open_stream(sink, headers)
            if not self.available:
                return None
            if self._connecting is None:
                self._connecting = asyncio.ensure_future(self._connect())
                self._connecting.add_done_callback(self._connected)
            fresh = await asyncio.shield(self._connecting)
            if fresh is None or fresh.max_streams < 1:
                return None  # no HTTP/2, or a server that allows no streams: use HTTP/1.1
            if fresh.has_room:
                return fresh.open_stream(sink, headers)
            # filled up by the others who waited for it: go round, find room or open another

    def _connected(self, _: object) -> None:
        self._connecting = None

    async def _connect(self) -> H2Connection | None:
        loop = asyncio.get_running_loop()
        target = self.target
        try:
            transport, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: H2Connection(self),
                    target.host,
                    target.port,
                    ssl=self._ssl,
                    server_hostname=target.server_hostname,
                ),
                CONNECT_TIMEOUT_SECONDS,
            )
        except TimeoutError:
            raise UpstreamTimeout("timed out connecting to kube-apiserver", "HTTP/2 connect timed out") from None
        except ConnectionRefusedError as exc:
            raise UpstreamUnavailable("kube-apiserver is not accepting connections", str(exc)) from None
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamError("cannot reach kube-apiserver", f"HTTP/2 connect: {exc}") from None
        sslobj = transport.get_extra_info("ssl_object")
        if sslobj is None or sslobj.selected_alpn_protocol() != "h2":
            log.info("kube-apiserver did not offer HTTP/2; long-running requests use HTTP/1.1")
            self._disabled_until = time.monotonic() + H2_RETRY_SECONDS
            transport.close()
            return None
        self.opened += 1
        self.connections.append(conn)
        return conn

    def connection_closed(self, conn: H2Connection) -> None:
        with contextlib.suppress(ValueError):
            self.connections.remove(conn)

    def close(self) -> None:
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.close()
        self.connections.clear()

    @property
    def stream_count(self) -> int:
        return sum(len(c.streams) for c in self.connections)
